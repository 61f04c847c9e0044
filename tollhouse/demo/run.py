"""The demo: everything on an embedded SQLite database under ``./.tollhouse/``."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import yaml

import migrations
from governance.config import Settings
from governance.config.loader import settings_from_mapping
from governance.db import make_engine, session_factory
from governance.keys import KeyService
from governance.spend.summary import spend_by_model
from proxy.app import create_app
from proxy.serving import BackgroundServer
from tollhouse.demo.model_server import FakeModelServer, ServerThread, free_port
from tollhouse.table import render_table

DEMO_DIR = Path(".tollhouse")


def demo_config(upstream_url: str, database_url: str, port: int) -> dict[str, Any]:
    return {
        "database_url": database_url,
        "server": {"host": "127.0.0.1", "port": port},
        "upstreams": [
            {
                "name": "demo-local",
                "kind": "openai_compatible",
                "base_url": upstream_url,
                "destination": "internal",
                "timeout_s": 30,
            },
        ],
        "models": [
            {
                "name": "chat-default",
                "deployments": [{"upstream": "demo-local", "model": "demo-llama"}],
            },
            {
                "name": "embed-default",
                "deployments": [{"upstream": "demo-local", "model": "demo-embed"}],
            },
        ],
        "pricing": [
            {
                "model": "chat-default",
                "input": "0.10",
                "output": "0.40",
                "effective_from": "2026-01-01",
            },
            {
                "model": "embed-default",
                "input": "0.02",
                "output": "0",
                "effective_from": "2026-01-01",
            },
        ],
        "apps": [{"name": "demo-app", "audit_content": "full"}],
    }


@dataclass
class DemoStack:
    settings: Settings
    config_path: Path
    key: str
    model_server: ServerThread
    proxy: BackgroundServer

    def stop(self) -> None:
        self.proxy.stop()
        self.model_server.stop()


def start(directory: Path, port: int) -> DemoStack:
    directory.mkdir(parents=True, exist_ok=True)
    model_server = ServerThread(FakeModelServer(models=["demo-llama", "demo-embed"]).application())
    model_server.start()
    database_url = f"sqlite:///{(directory / 'demo.db').resolve()}"
    raw = demo_config(model_server.url, database_url, port)
    config_path = directory / "demo.yaml"
    config_path.write_text("# written by `tollhouse demo`\n" + yaml.safe_dump(raw, sort_keys=False))
    settings = settings_from_mapping(raw, {}, source=str(config_path))
    migrations.upgrade(database_url)
    engine = make_engine(database_url)
    key = (
        KeyService(session_factory(engine)).create("demo-app", "demo-team", "tollhouse demo").secret
    )
    engine.dispose()
    proxy = BackgroundServer(create_app(settings), "127.0.0.1", port).start()
    return DemoStack(settings, config_path, key, model_server, proxy)


def send_traffic(base_url: str, key: str) -> int:
    """A short scripted mix through the official client; returns the number of requests."""
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
    prompts = [
        "Summarise our travel policy in one sentence.",
        "Which regions does the platform team support?",
        "Draft a polite reminder about the quarterly report.",
    ]
    sent = 0
    for prompt in prompts:
        client.chat.completions.create(
            model="chat-default", messages=[{"role": "user", "content": prompt}], user="demo-user"
        )
        sent += 1
    for prompt in prompts[:2]:
        stream = client.chat.completions.create(
            model="chat-default",
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )
        for _ in stream:
            pass
        sent += 1
    client.chat.completions.create(
        model="chat-default",
        messages=[{"role": "user", "content": "What is the weather in Lisbon?"}],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
    )
    sent += 1
    client.embeddings.create(model="embed-default", input=prompts)
    client.embeddings.create(model="embed-default", input="one more document")
    sent += 2
    return sent


def summary_table(settings: Settings) -> str:
    engine = make_engine(settings.database_url)
    try:
        rows = spend_by_model(session_factory(engine))
    finally:
        engine.dispose()
    return render_table(
        ["model", "requests", "ok", "input tokens", "output tokens", "cost"],
        [
            [
                r.model,
                r.requests,
                r.succeeded,
                r.input_tokens,
                r.output_tokens,
                f"{r.cost:f} {r.currency or ''}".strip(),
            ]
            for r in rows
        ],
    )


def curl_example(base_url: str, key: str) -> str:
    return (
        f"curl -s {base_url}/chat/completions \\\n"
        f"  -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n"
        """  -d '{"model": "chat-default", "messages": [{"role": "user", "content": "Hello"}]}'"""
    )


def run(directory: Path, port: int | None, wait: bool) -> int:
    stack = start(directory, port or free_port())
    base_url = f"{stack.proxy.url}/v1"
    try:
        print(
            f"Demo upstream: {stack.model_server.url} (a demo model, not a real LLM: "
            "it answers by fixed rules)"
        )
        print(f"Tollhouse proxy: {base_url}   config: {stack.config_path}")
        sent = send_traffic(base_url, stack.key)
        print(
            f"\nSent {sent} requests with the official openai client "
            "(chat, streaming chat, a tool call, embeddings).\n"
        )
        print("Spend by model (all requests in this demo database):")
        print(summary_table(stack.settings))
        print("\nTry it yourself:")
        print(curl_example(base_url, stack.key))
        print(f"\nAudit trail: tollhouse audit tail --config {stack.config_path}")
        if wait:
            print("\nThe proxy keeps running; press Ctrl-C to stop.", flush=True)
            threading.Event().wait()
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        stack.stop()
    return 0
