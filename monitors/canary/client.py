"""Canary traffic goes through the proxy like any other traffic: the official ``openai``
client, the canary app's key, so every probe is policy-checked, audited and costed."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import openai

from monitors.canary.prompts import CanaryItem
from monitors.canary.stats import CanarySample

TOP_LOGPROBS = 5


@dataclass(frozen=True)
class Probe:
    """The fixed parameters every batch of one canary job uses."""

    model: str
    samples: int
    max_tokens: int
    temperature: float
    logprobs: bool


@dataclass(frozen=True)
class Answered:
    """One completion of one canary item, with what the upstream said about itself."""

    item: CanaryItem
    index: int
    sample: CanarySample
    request_id: str | None
    response_model: str | None
    system_fingerprint: str | None


@dataclass(frozen=True)
class Failed:
    item: CanaryItem
    error: str


class CanaryClient(Protocol):
    def ask(self, items: Sequence[CanaryItem], probe: Probe) -> tuple[list[Answered], list[Failed]]:
        """``probe.samples`` completions of every item."""
        ...


class ProxyCanaryClient:
    """Asks through the proxy's ``/v1/chat/completions`` with ``n`` samples per request."""

    def __init__(
        self, base_url: str, api_key: str, *, concurrency: int = 4, timeout_s: float = 120.0
    ) -> None:
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=2
        )
        self._concurrency = concurrency

    def ask(self, items: Sequence[CanaryItem], probe: Probe) -> tuple[list[Answered], list[Failed]]:
        answered: list[Answered] = []
        failed: list[Failed] = []
        with ThreadPoolExecutor(max_workers=self._concurrency) as pool:
            for result in pool.map(lambda item: self._one(item, probe), items):
                if isinstance(result, Failed):
                    failed.append(result)
                else:
                    answered.extend(result)
        return answered, failed

    def close(self) -> None:
        self._client.close()

    def _one(self, item: CanaryItem, probe: Probe) -> list[Answered] | Failed:
        extra: dict[str, Any] = {}
        if probe.logprobs:
            extra = {"logprobs": True, "top_logprobs": TOP_LOGPROBS}
        try:
            raw = self._client.chat.completions.with_raw_response.create(
                model=probe.model,
                messages=[{"role": "user", "content": item.prompt}],
                n=probe.samples,
                temperature=probe.temperature,
                max_tokens=probe.max_tokens,
                **extra,
            )
            response = raw.parse()
        except openai.APIError as exc:
            return Failed(item, f"{type(exc).__name__}: {exc}")
        request_id = raw.headers.get("x-request-id")
        out: list[Answered] = []
        for choice in response.choices:
            out.append(
                Answered(
                    item=item,
                    index=choice.index,
                    sample=_sample(item.id, choice),
                    request_id=request_id,
                    response_model=response.model,
                    system_fingerprint=response.system_fingerprint,
                )
            )
        if len(out) != probe.samples:
            return Failed(
                item, f"asked for {probe.samples} samples (n), the upstream returned {len(out)}"
            )
        return out


def _sample(prompt_id: str, choice: Any) -> CanarySample:
    text = choice.message.content or ""
    content = choice.logprobs.content if choice.logprobs is not None else None
    if not content:
        return CanarySample(prompt_id=prompt_id, text=text)
    tokens = tuple(float(t.logprob) for t in content)
    top = tuple((str(t.token), float(t.logprob)) for t in content[0].top_logprobs or ())
    return CanarySample(
        prompt_id=prompt_id, text=text, token_logprobs=tokens, top_logprobs=top or None
    )
