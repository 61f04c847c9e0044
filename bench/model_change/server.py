"""OpenAI-compatible HTTP server for the character model and its silently changed variants.

    python bench/model_change/server.py [--host 127.0.0.1] [--port 8011] [--variant null]

Endpoints: ``POST /v1/chat/completions`` (the last message's content is the text to continue)
and ``POST /v1/completions`` (``prompt`` a string or a list of strings), ``GET /v1/models``.
Supported request fields: ``n``, ``temperature``, ``top_p``, ``seed``, ``max_tokens``, ``stop``
(single characters; others are ignored), ``logprobs`` and ``top_logprobs`` (chat) or ``logprobs``
as an integer (completions). Logprobs are those of the raw model, as vLLM returns by default;
a choice that ended on its stop character keeps that character's entry, as vLLM does for EOS.

Variant selection: the model name ``canary-lm`` serves the variant chosen with ``--variant``;
``canary-lm:<variant>`` (e.g. ``canary-lm:temp-1.2``) serves that variant for this request
only. The client asks for the same parameters either way: the variant is what the provider
does behind them. With ``seed`` the output is reproducible; without it each request draws a
fresh seed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from typing import Any

import model as lm
import orjson
import torch
from aiohttp import web
from sampling import Completion, sample
from torch import nn

MODEL_ID = "canary-lm"


class Engine:
    """The loaded weight sets and the default variant; one generation at a time."""

    def __init__(self, weights: dict[str, nn.Module], default_variant: str) -> None:
        self.weights = weights
        self.default_variant = default_variant
        self.lock = asyncio.Lock()

    def variant(self, model_name: str) -> lm.Variant:
        base, _, suffix = model_name.partition(":")
        if base != MODEL_ID:
            raise web.HTTPNotFound(reason=f"model {model_name!r} not found; use {MODEL_ID!r}")
        name = suffix or self.default_variant
        if name not in lm.VARIANTS:
            raise web.HTTPNotFound(reason=f"unknown variant {name!r}; known: {sorted(lm.VARIANTS)}")
        return lm.VARIANTS[name]

    def generate(
        self, variant: lm.Variant, prompt: str, params: dict[str, Any]
    ) -> list[Completion]:
        """Sample ``n`` choices; with a sibling share, each choice is routed independently."""
        n = int(params.get("n") or 1)
        seed = params.get("seed")
        gen = torch.Generator().manual_seed(
            int(seed) if seed is not None else random.getrandbits(62)
        )
        requested_t = float(
            params.get("temperature", 1.0) if params.get("temperature") is not None else 1.0
        )
        requested_p = float(params.get("top_p") if params.get("top_p") is not None else 1.0)
        stop = params.get("stop")
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        stop_char = next((s for s in stops if len(s) == 1 and s in lm.CHAR_ID), None)
        kwargs: dict[str, Any] = {
            "temperature": requested_t * variant.temperature_factor,
            "top_p": min(requested_p, variant.top_p_cap),
            "max_tokens": int(params.get("max_tokens") or 16),
            "stop_char": stop_char,
            "top_k": int(params.get("_top_k", 0)),
            "gen": gen,
        }
        if variant.sibling_share <= 0.0:
            return sample(self.weights[variant.weights], prompt, n, **kwargs)
        routed = (torch.rand(n, generator=gen) < variant.sibling_share).tolist()
        k = sum(routed)
        sib = sample(self.weights["sibling"], prompt, k, **kwargs) if k else []
        own = sample(self.weights[variant.weights], prompt, n - k, **kwargs) if n - k else []
        sib_iter, own_iter = iter(sib), iter(own)
        return [next(sib_iter) if r else next(own_iter) for r in routed]


def _chat_logprobs(c: Completion) -> dict[str, Any]:
    content = []
    tops = c.top_ids or [[] for _ in c.ids]
    top_lps = c.top_logprobs or [[] for _ in c.ids]
    for tok, lp, tids, tlps in zip(c.ids, c.logprobs, tops, top_lps, strict=True):
        content.append(
            {
                "token": lm.VOCAB[tok],
                "logprob": lp,
                "bytes": [ord(lm.VOCAB[tok])],
                "top_logprobs": [
                    {"token": lm.VOCAB[t], "logprob": v, "bytes": [ord(lm.VOCAB[t])]}
                    for t, v in zip(tids, tlps, strict=True)
                ],
            }
        )
    return {"content": content}


def _usage(prompt_tokens: int, completions: list[Completion]) -> dict[str, int]:
    out = sum(len(c.ids) for c in completions)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": out,
        "total_tokens": prompt_tokens + out,
    }


def _json(data: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


async def chat_completions(request: web.Request) -> web.Response:
    engine: Engine = request.app["engine"]
    body = await request.json(loads=orjson.loads)
    variant = engine.variant(str(body.get("model", MODEL_ID)))
    messages = body.get("messages") or []
    if not messages:
        raise web.HTTPBadRequest(reason="messages must not be empty")
    prompt = str(messages[-1].get("content", ""))
    want_lp = bool(body.get("logprobs"))
    params = dict(body, _top_k=int(body.get("top_logprobs") or 0) if want_lp else 0)
    async with engine.lock:
        choices = await asyncio.to_thread(engine.generate, variant, prompt, params)
    return _json(
        {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", MODEL_ID),
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": lm.decode(c.text_ids)},
                    "logprobs": _chat_logprobs(c) if want_lp else None,
                    "finish_reason": c.finish_reason,
                }
                for i, c in enumerate(choices)
            ],
            "usage": _usage(len(prompt), choices),
        }
    )


async def completions(request: web.Request) -> web.Response:
    engine: Engine = request.app["engine"]
    body = await request.json(loads=orjson.loads)
    variant = engine.variant(str(body.get("model", MODEL_ID)))
    prompts = body.get("prompt", "")
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    top_k = body.get("logprobs")
    params = dict(body, _top_k=int(top_k or 0))
    out: list[dict[str, Any]] = []
    every: list[Completion] = []
    async with engine.lock:
        for prompt in prompts:
            choices = await asyncio.to_thread(engine.generate, variant, str(prompt), params)
            every.extend(choices)
            for c in choices:
                lp = None
                if top_k is not None:
                    lp = {
                        "tokens": [lm.VOCAB[t] for t in c.ids],
                        "token_logprobs": c.logprobs,
                        "top_logprobs": [
                            {lm.VOCAB[t]: v for t, v in zip(tids, tlps, strict=True)}
                            for tids, tlps in zip(c.top_ids, c.top_logprobs, strict=True)
                        ]
                        or None,
                        "text_offset": list(range(len(prompt), len(prompt) + len(c.ids))),
                    }
                out.append(
                    {
                        "index": len(out),
                        "text": lm.decode(c.text_ids),
                        "logprobs": lp,
                        "finish_reason": c.finish_reason,
                    }
                )
    return _json(
        {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.get("model", MODEL_ID),
            "choices": out,
            "usage": _usage(sum(len(str(p)) for p in prompts), every),
        }
    )


async def models(request: web.Request) -> web.Response:
    names = [MODEL_ID] + [f"{MODEL_ID}:{v}" for v in lm.VARIANTS]
    return _json(
        {
            "object": "list",
            "data": [{"id": m, "object": "model", "owned_by": "bench"} for m in names],
        }
    )


def create_app(weights: dict[str, nn.Module], default_variant: str = "null") -> web.Application:
    """The aiohttp application serving ``weights`` (see ``model.load_weights``)."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app["engine"] = Engine(weights, default_variant)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--variant", default="null", choices=sorted(lm.VARIANTS))
    args = parser.parse_args()
    web.run_app(create_app(lm.load_weights(), args.variant), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
