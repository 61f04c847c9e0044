"""A test upstream that samples: each prompt has its own fixed word distribution, and
every completion draws words from it at a temperature, with logprobs as vLLM returns
them (of the raw model, before temperature). ``temperature_scale`` is the silent change
a provider might make behind the same model name and fingerprint."""

from __future__ import annotations

import hashlib
import math
import random
from typing import Any

from aiohttp import web

from tests.upstream.faulty import FaultyUpstream
from tollhouse.demo.model_server import text_of

WORDS = [
    "amber",
    "basil",
    "cedar",
    "delta",
    "ember",
    "fjord",
    "grove",
    "harbor",
    "iris",
    "juniper",
    "kelp",
    "lumen",
    "meadow",
    "nectar",
    "orchid",
    "pebble",
    "quartz",
    "river",
    "saffron",
    "thistle",
    "umber",
    "violet",
    "willow",
    "yarrow",
]
TOP = 5


class SamplingUpstream(FaultyUpstream):
    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.temperature_scale = 1.0
        self.version_header = "2026-01"  # sent as x-model-version, as some providers do
        self._rng = random.Random(1234)

    async def handle(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        response = await super().handle(request, body)
        if not response.prepared:
            response.headers["x-model-version"] = self.version_header
        return response

    @staticmethod
    def distribution(prompt: str) -> list[float]:
        """The prompt's own word probabilities: Zipf-like, in a prompt-specific order."""
        seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")
        order = list(range(len(WORDS)))
        random.Random(seed).shuffle(order)
        weights = [0.0] * len(WORDS)
        for rank, index in enumerate(order):
            weights[index] = 1.0 / (rank + 1) ** 1.3
        total = sum(weights)
        return [w / total for w in weights]

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages") or []
        prompt = "\n".join(text_of(m.get("content")) for m in messages)
        probs = self.distribution(prompt)
        temperature = float(body.get("temperature", 1.0)) * self.temperature_scale
        tempered = [p ** (1.0 / max(temperature, 1e-3)) for p in probs]
        total = sum(tempered)
        tempered = [t / total for t in tempered]
        length = min(int(body.get("max_tokens") or 8), 8)
        n = int(body.get("n") or 1)
        top = sorted(range(len(WORDS)), key=lambda i: -probs[i])[:TOP]
        choices = []
        for index in range(n):
            picks = self._rng.choices(range(len(WORDS)), weights=tempered, k=length)
            logprobs = None
            if body.get("logprobs"):
                logprobs = {
                    "content": [
                        {
                            "token": WORDS[i] + " ",
                            "logprob": math.log(probs[i]),
                            "bytes": None,
                            "top_logprobs": [
                                {
                                    "token": WORDS[t] + " ",
                                    "logprob": math.log(probs[t]),
                                    "bytes": None,
                                }
                                for t in top
                            ],
                        }
                        for i in picks
                    ]
                }
            choices.append(
                {
                    "index": index,
                    "message": {"role": "assistant", "content": " ".join(WORDS[i] for i in picks)},
                    "logprobs": logprobs,
                    "finish_reason": "length",
                }
            )
        return {
            "id": f"chatcmpl-sampled-{self._rng.getrandbits(48):x}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": body["model"],
            "system_fingerprint": self.fingerprint,
            "choices": choices,
            "usage": {
                "prompt_tokens": max(1, len(prompt.split())),
                "completion_tokens": length * n,
                "total_tokens": max(1, len(prompt.split())) + length * n,
            },
        }
