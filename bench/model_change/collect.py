"""Canary prompts and the sample pools, collected through the OpenAI-compatible HTTP server.

Each prompt is a few lines of held-out stdlib code followed by the start of the next line;
the canary asks for the rest of that line (``stop="\\n"``, at most ``MAX_TOKENS`` characters).
Per sample the canary makes two requests (batched with ``n``): the completion with per-token
logprobs, and a one-token probe with the first position's top-5 logprobs (Chauvin et al.'s
probe; asking for top-5 on every position of every completion would cost ~3x more to encode).
A provider serving a mixture routes the two independently, as it would two separate requests.
A pool holds, per variant and prompt, many such samples; trials draw disjoint batches from it.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import orjson

from monitors.canary.stats import CanarySample

MAX_TOKENS = 32
TOP_K = 5
CHUNK = 250  # choices per request (the server samples them as one batch)


def canary_prompts(held_out: str, count: int = 25) -> list[str]:
    """``count`` prompts at evenly spaced, non-trivial code lines of the held-out text."""
    lines = held_out.replace("\t", "    ").split("\n")
    candidates = []
    for i in range(3, len(lines)):
        line = lines[i]
        body = line.strip()
        if 30 <= len(line) <= 70 and body[:1].isalpha() and line.isascii():
            candidates.append(i)
    picks = [candidates[int(j * len(candidates) / count)] for j in range(count)]
    prompts = []
    for i in picks:
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        context = "\n".join(lines[i - 3 : i])[-160:]
        prompts.append(f"{context}\n{line[: indent + 6]}")
    return prompts


@dataclass
class Pool:
    """Completions of one prompt under one variant, stored compactly as arrays."""

    texts: list[str] = field(default_factory=list)
    logprobs: list[np.ndarray] = field(default_factory=list)
    top_tokens: list[tuple[str, ...]] = field(default_factory=list)
    top_logprobs: list[np.ndarray] = field(default_factory=list)

    def add(self, choice: dict[str, Any], probe: dict[str, Any]) -> None:
        """One sampled completion and the first-position top-k of one one-token probe."""
        self.texts.append(choice["message"]["content"])
        content = choice["logprobs"]["content"]
        self.logprobs.append(np.array([e["logprob"] for e in content], dtype=np.float32))
        first = probe["logprobs"]["content"][0]["top_logprobs"]
        self.top_tokens.append(tuple(t["token"] for t in first))
        self.top_logprobs.append(np.array([t["logprob"] for t in first], dtype=np.float32))

    def samples(self, prompt_id: str, start: int, stop: int) -> list[CanarySample]:
        return [
            CanarySample(
                prompt_id=prompt_id,
                text=self.texts[i],
                token_logprobs=tuple(self.logprobs[i].tolist()),
                top_logprobs=tuple(
                    zip(self.top_tokens[i], self.top_logprobs[i].tolist(), strict=True)
                ),
            )
            for i in range(start, stop)
        ]


def _seed(*parts: object) -> int:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:6], "big")


async def _request(
    session: aiohttp.ClientSession, url: str, payload: dict[str, Any]
) -> list[dict[str, Any]]:
    async with session.post(
        f"{url}/v1/chat/completions",
        data=orjson.dumps(payload),
        headers={"content-type": "application/json"},
    ) as resp:
        resp.raise_for_status()
        body = orjson.loads(await resp.read())
    return body["choices"]  # type: ignore[no-any-return]


def _payloads(model: str, prompt: str, n: int, seed: int) -> tuple[dict[str, Any], ...]:
    """The canary's two requests: n sampled completions, and n one-token top-k probes."""
    common = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "n": n,
        "temperature": 1.0,
        "top_p": 1.0,
        "logprobs": True,
    }
    sampled = {**common, "max_tokens": MAX_TOKENS, "stop": ["\n"], "seed": seed}
    probe = {**common, "max_tokens": 1, "top_logprobs": TOP_K, "seed": seed + 1}
    return sampled, probe


async def collect(
    urls: list[str], variant: str, prompts: list[str], per_prompt: int, tag: str = ""
) -> list[Pool]:
    """``per_prompt`` samples per prompt from ``canary-lm:<variant>``, spread over ``urls``."""
    pools = [Pool() for _ in prompts]
    jobs = [
        (p, start, min(CHUNK, per_prompt - start))
        for p in range(len(prompts))
        for start in range(0, per_prompt, CHUNK)
    ]
    gates = [asyncio.Semaphore(2) for _ in urls]
    results: dict[tuple[int, int], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(k: int, p: int, start: int, n: int) -> None:
            sampled, probe = _payloads(
                f"canary-lm:{variant}", prompts[p], n, _seed(variant, tag, p, start)
            )
            async with gates[k % len(urls)]:
                url = urls[k % len(urls)]
                results[(p, start)] = (
                    await _request(session, url, sampled),
                    await _request(session, url, probe),
                )

        await asyncio.gather(*(one(k, *job) for k, job in enumerate(jobs)))
    for p, start, _ in jobs:
        for choice, probe in zip(*results[(p, start)], strict=True):
            pools[p].add(choice, probe)
    return pools
