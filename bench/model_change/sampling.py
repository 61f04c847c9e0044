"""Batched sampling from the character model, with the logprobs an OpenAI-style server returns.

Logprobs are those of the *raw* model (log-softmax of the logits, before temperature and top-p),
as vLLM returns them by default: a changed sampling temperature does not move the logprob of a
given token, only which tokens get sampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from model import CHAR_ID, encode
from torch import nn


@dataclass
class Completion:
    """One choice: sampled ids, their raw logprobs, and the raw top-k at every position.

    Like vLLM with an end-of-sequence token, a choice that ended on the stop character keeps that
    character's logprob entry (it was sampled), though the text leaves it out.
    """

    ids: list[int]
    logprobs: list[float]
    top_ids: list[list[int]]
    top_logprobs: list[list[float]]
    finish_reason: str

    @property
    def text_ids(self) -> list[int]:
        """The ids that make the text: a final stop character is not part of it."""
        return self.ids[:-1] if self.finish_reason == "stop" else self.ids


@torch.no_grad()
def sample(
    model: nn.Module,
    prompt: str,
    n: int,
    *,
    temperature: float,
    top_p: float,
    max_tokens: int,
    stop_char: str | None,
    top_k: int,
    gen: torch.Generator,
) -> list[Completion]:
    """``n`` independent continuations of ``prompt``; a stop character ends a choice."""
    ids = torch.tensor([encode(prompt)], dtype=torch.long)
    logits, state = model(ids)
    logits = logits[:, -1].expand(n, -1)
    state = state.expand(-1, n, -1).contiguous()
    active = torch.arange(n)
    stop_id = CHAR_ID[stop_char] if stop_char is not None else -1
    out = [Completion([], [], [], [], "length") for _ in range(n)]
    for _ in range(max_tokens):
        raw = torch.log_softmax(logits, dim=-1)
        chosen = _choose(logits, temperature, top_p, gen)
        chosen_lp = raw.gather(1, chosen[:, None])[:, 0]
        keep = chosen != stop_id
        rows = zip(active.tolist(), keep.tolist(), chosen.tolist(), chosen_lp.tolist(), strict=True)
        for idx, kept, tok, lp in rows:
            c = out[idx]
            if not kept:
                c.finish_reason = "stop"
            c.ids.append(tok)
            c.logprobs.append(lp)
        if top_k:  # converting top-k lists is the costly part; skip it when not asked for
            top_lp, top_id = raw.topk(top_k, dim=-1)
            for idx, tids, tlps in zip(
                active.tolist(), top_id.tolist(), top_lp.tolist(), strict=True
            ):
                out[idx].top_ids.append(tids)
                out[idx].top_logprobs.append(tlps)
        if not bool(keep.all()):
            active, chosen, state = active[keep], chosen[keep], state[:, keep]
        if active.numel() == 0:
            break
        step_logits, state = model(chosen[:, None], state)
        logits = step_logits[:, -1]
    return out


def _choose(
    logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator
) -> torch.Tensor:
    if temperature <= 0.0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(dim=-1) - sorted_p
        sorted_p = torch.where(before < top_p, sorted_p, torch.zeros_like(sorted_p))
        probs = torch.zeros_like(probs).scatter(1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=gen)[:, 0]
