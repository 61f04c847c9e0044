"""A deterministic OpenAI-compatible model server that speaks vLLM's dialect.

It is a demo model, not a language model: answers are derived from the prompt by fixed
rules, so runs are reproducible. Like vLLM it reports ``system_fingerprint``, puts
usage in a final chunk when ``stream_options.include_usage`` is set, and supports
``n``, tool calls, text completions and embeddings (float or base64).

Subclasses (the test suite's faulty upstream) override `FakeModelServer.handle` or
`FakeModelServer.send_stream` to inject failures.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import re
import socket
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

CREATED = 1_767_225_600  # fixed so answers are reproducible
CACHE_BLOCK = 16  # prefix-cache block size, in tokens
_WORDS = re.compile(r"\w+|[^\w\s]")
_PIECES = re.compile(r"\s*\S+")


def count_tokens(text: str) -> int:
    """The demo model's tokenizer: words and punctuation marks."""
    return len(_WORDS.findall(text))


def _digest(*parts: Any) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _sample_arguments(parameters: dict[str, Any] | None) -> str:
    examples = {"string": "demo", "number": 1.5, "integer": 1, "boolean": True}
    props = (parameters or {}).get("properties") or {}
    args = {name: examples.get(spec.get("type", "string"), "demo") for name, spec in props.items()}
    return orjson.dumps(args).decode()


class FakeModelServer:
    def __init__(
        self,
        *,
        models: Sequence[str] = ("demo-llama",),
        fingerprint: str = "fp_demo01",
        embedding_dimensions: int = 16,
    ) -> None:
        self.models = list(models)
        self.fingerprint = fingerprint
        self.embedding_dimensions = embedding_dimensions

    # -- aiohttp wiring ------------------------------------------------------------
    def application(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._entry)
        app.router.add_post("/v1/completions", self._entry)
        app.router.add_post("/v1/embeddings", self._entry)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        return app

    async def _entry(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        return await self.handle(request, body)

    async def _models(self, request: web.Request) -> web.Response:
        data = [
            {"id": m, "object": "model", "created": CREATED, "owned_by": "demo"}
            for m in self.models
        ]
        return _json({"object": "list", "data": data})

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    # -- behaviour -----------------------------------------------------------------
    async def handle(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        """Answer one request; the hook fault-injecting subclasses override."""
        if body.get("model") not in self.models:
            return _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
        path = request.path
        if path.endswith("/embeddings"):
            return _json(self.embeddings(body))
        chat = path.endswith("/chat/completions")
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self.send_stream(request, self.stream_events(body, chat, include_usage))
        return _json(self.chat(body) if chat else self.completion(body))

    async def send_stream(self, request: web.Request, events: list[bytes]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in events:
            await response.write(b"data: " + event + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def answer(self, body: dict[str, Any], chat: bool) -> Answer:
        answer = self._answer(body, chat)
        if chat:  # a long system prompt is served from the prefix cache, as vLLM reports
            first = (body.get("messages") or [{}])[0]
            system = text_of(first.get("content")) if first.get("role") == "system" else ""
            tokens = count_tokens(system)
            if tokens >= CACHE_BLOCK:
                answer = dataclasses.replace(answer, cached=tokens // CACHE_BLOCK * CACHE_BLOCK)
        return answer

    def _answer(self, body: dict[str, Any], chat: bool) -> Answer:
        if chat:
            messages = body.get("messages") or []
            prompt = "\n".join(text_of(m.get("content")) for m in messages)
            last = messages[-1] if messages else {}
            tools = body.get("tools") or []
            if tools and body.get("tool_choice") != "none" and last.get("role") == "user":
                function = tools[0]["function"]
                return Answer(
                    prompt,
                    "",
                    "tool_calls",
                    function["name"],
                    _sample_arguments(function.get("parameters")),
                )
            if last.get("role") == "tool":
                text = f"The tool returned: {text_of(last.get('content'))[:200]}"
            else:
                said = " ".join(text_of(last.get("content")).split()[:40])
                text = f"This is the Tollhouse demo model, not a real LLM. You said: {said}"
        else:
            raw = body.get("prompt")
            prompt = raw if isinstance(raw, str) else " ".join(str(p) for p in raw or [])
            text = f" and so the demo model continues: {' '.join(prompt.split()[:20])}"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        finish = "stop"
        if isinstance(limit, int) and count_tokens(text) > limit:
            text = "".join(_PIECES.findall(text)[:limit])
            finish = "length"
        return Answer(prompt, text, finish, None, None)

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.answer(body, chat=True)
        n = body.get("n") or 1
        choices = []
        for index in range(n):
            message: dict[str, Any] = {"role": "assistant", "content": answer.text or None}
            if answer.tool_name:
                message["tool_calls"] = [answer.tool_call(index)]
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": answer.finish,
                }
            )
        return {
            "id": f"chatcmpl-{_digest(body.get('messages'), n)}",
            "object": "chat.completion",
            "created": CREATED,
            "model": body["model"],
            "system_fingerprint": self.fingerprint,
            "choices": choices,
            "usage": answer.usage(n),
        }

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.answer(body, chat=False)
        n = body.get("n") or 1
        return {
            "id": f"cmpl-{_digest(body.get('prompt'), n)}",
            "object": "text_completion",
            "created": CREATED,
            "model": body["model"],
            "system_fingerprint": self.fingerprint,
            "choices": [
                {"index": i, "text": answer.text, "logprobs": None, "finish_reason": answer.finish}
                for i in range(n)
            ],
            "usage": answer.usage(n),
        }

    def stream_events(self, body: dict[str, Any], chat: bool, include_usage: bool) -> list[bytes]:
        """Every ``data`` payload of a streamed answer, usage chunk included when asked."""
        answer = self.answer(body, chat)
        n = body.get("n") or 1
        if chat:
            ident = f"chatcmpl-{_digest(body.get('messages'), n)}"
            obj = "chat.completion.chunk"
        else:
            ident = f"cmpl-{_digest(body.get('prompt'), n)}"
            obj = "text_completion"
        base = {
            "id": ident,
            "object": obj,
            "created": CREATED,
            "model": body["model"],
            "system_fingerprint": self.fingerprint,
        }
        events: list[dict[str, Any]] = []
        for index in range(n):
            if chat:
                first: dict[str, Any] = {"role": "assistant", "content": ""}
                events.append(
                    {
                        **base,
                        "choices": [
                            {
                                "index": index,
                                "delta": first,
                                "logprobs": None,
                                "finish_reason": None,
                            }
                        ],
                    }
                )
            if answer.tool_name:
                call = answer.tool_call(index)
                opening = {
                    **call,
                    "index": 0,
                    "function": {"name": call["function"]["name"], "arguments": ""},
                }
                events.append(
                    {
                        **base,
                        "choices": [
                            {
                                "index": index,
                                "delta": {"tool_calls": [opening]},
                                "finish_reason": None,
                            }
                        ],
                    }
                )
                for piece in re.findall(r".{1,8}", call["function"]["arguments"]):
                    delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                    events.append(
                        {
                            **base,
                            "choices": [{"index": index, "delta": delta, "finish_reason": None}],
                        }
                    )
            for piece in _PIECES.findall(answer.text):
                choice: dict[str, Any] = {"index": index, "logprobs": None, "finish_reason": None}
                if chat:
                    choice["delta"] = {"content": piece}
                else:
                    choice["text"] = piece
                events.append({**base, "choices": [choice]})
            last: dict[str, Any] = {
                "index": index,
                "logprobs": None,
                "finish_reason": answer.finish,
            }
            if chat:
                last["delta"] = {}
            else:
                last["text"] = ""
            events.append({**base, "choices": [last]})
        if include_usage:
            events.append({**base, "choices": [], "usage": answer.usage(n)})
        return [orjson.dumps(e) for e in events]

    def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("input")
        inputs = (
            [raw] if isinstance(raw, str) or (raw and isinstance(raw[0], int)) else list(raw or [])
        )
        dims = body.get("dimensions") or self.embedding_dimensions
        data = []
        tokens = 0
        for index, item in enumerate(inputs):
            text = item if isinstance(item, str) else " ".join(map(str, item))
            tokens += count_tokens(text) if isinstance(item, str) else len(item)
            vector = self.embed(text, dims)
            encoded: Any = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        return {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    @staticmethod
    def embed(text: str, dims: int) -> list[float]:
        """A unit vector derived from the text's hash (float32-exact values)."""
        seed = hashlib.sha256(text.encode()).digest()
        raw = [((seed[i % 32] + 31 * i) % 256) / 255.0 - 0.5 for i in range(dims)]
        norm = sum(x * x for x in raw) ** 0.5 or 1.0
        return [struct.unpack("<f", struct.pack("<f", x / norm))[0] for x in raw]


@dataclass(frozen=True, slots=True)
class Answer:
    prompt: str
    text: str
    finish: str
    tool_name: str | None
    tool_arguments: str | None
    cached: int = 0  # prompt tokens served from the prefix cache

    def usage(self, n: int) -> dict[str, Any]:
        prompt = count_tokens(self.prompt)
        completion = (count_tokens(self.text) + count_tokens(self.tool_arguments or "")) * n
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if self.cached:
            usage["prompt_tokens_details"] = {"cached_tokens": min(self.cached, prompt)}
        return usage

    def tool_call(self, index: int) -> dict[str, Any]:
        return {
            "id": f"call_{_digest(self.prompt, index)[:16]}",
            "type": "function",
            "function": {"name": self.tool_name, "arguments": self.tool_arguments},
        }


def _json(payload: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _error(status: int, message: str, kind: str) -> web.Response:
    return _json(
        {"object": "error", "message": message, "type": kind, "param": None, "code": status}, status
    )


class ServerThread:
    """Runs an aiohttp app on loopback in a daemon thread with its own event loop."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app = app
        self.host = host
        self.port = port or free_port(host)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"model-server-{self.port}", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the model server did not start")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def main() -> None:
    """``python -m tollhouse.demo.model_server --port N``: serve the demo model alone."""
    import argparse

    parser = argparse.ArgumentParser(description="Tollhouse's demo model (not a real LLM).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--models", default="demo-llama", help="comma-separated model names")
    args = parser.parse_args()
    server = FakeModelServer(models=args.models.split(","))
    web.run_app(
        server.application(), host=args.host, port=args.port, access_log=None, print=lambda *_: None
    )


if __name__ == "__main__":
    main()
