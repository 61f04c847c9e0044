"""The demo: everything on an embedded SQLite database under ``./.tollhouse/``."""

from __future__ import annotations

import datetime as dt
import getpass
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import yaml
from sqlalchemy import select

import migrations
from governance.access import Principal
from governance.audit.checkpoint import (
    Checkpointer,
    generate_signing_key,
    key_id_of,
    load_signing_key,
)
from governance.audit.vault import MasterKey
from governance.audit.verify import verify_trail
from governance.config import Settings
from governance.config.loader import settings_from_mapping
from governance.db import AuditRecord, make_engine, session_factory
from governance.keys import KeyService
from governance.policy.document import parse_policy
from governance.policy.store import PolicyStore
from governance.spend.report import spend_report
from proxy.app import create_app
from proxy.serving import BackgroundServer
from tollhouse.demo.dashboard import start_dashboard, stop_on_sigterm
from tollhouse.demo.model_server import FakeModelServer, ServerThread, free_port
from tollhouse.table import render_table

DEMO_DIR = Path(".tollhouse")


POLICY_FILE = Path(__file__).with_name("hybrid-policy.yaml")


def demo_config(
    internal_url: str, external_url: str, database_url: str, port: int
) -> dict[str, Any]:
    """Two demo upstreams: one plays an internal vLLM server, one an external provider."""
    common = {"kind": "openai_compatible", "timeout_s": 30}
    return {
        "database_url": database_url,
        "server": {"host": "127.0.0.1", "port": port},
        "upstreams": [
            {"name": "demo-vllm", "base_url": internal_url, "destination": "internal", **common},
            {"name": "demo-cloud", "base_url": external_url, "destination": "external", **common},
        ],
        "models": [
            {
                "name": "chat-default",
                "deployments": [{"upstream": "demo-cloud", "model": "demo-llama"}],
            },
            {
                "name": "chat-internal",
                "deployments": [{"upstream": "demo-vllm", "model": "demo-llama"}],
            },
            {
                "name": "embed-default",
                "deployments": [{"upstream": "demo-vllm", "model": "demo-embed"}],
            },
        ],
        "policy": {"name": "hybrid"},
        # One person runs the demo: publishing approves the version (no second approver).
        "access": {"four_eyes": False},
    }


def monitors_config(directory: Path, port: int) -> dict[str, Any]:
    """A fingerprint watch over both upstreams and a canary job on the external model
    (the demo model answers by fixed rules, so its canaries never change)."""
    return {
        "reports_dir": str((directory / "reports").resolve()),
        "proxy_url": f"http://127.0.0.1:{port}/v1",
        "embeddings": {"kind": "off"},
        "jobs": [
            {"name": "fingerprints", "kind": "fingerprints", "interval_s": 300},
            {
                "name": "canary-cloud",
                "kind": "canary",
                "model": "chat-default",
                "prompts": 10,
                "samples": 3,
                "interval_s": 3600,
            },
        ],
    }


# The external model at a list price (cached input at half price); the internal one at
# a rate derived from what its GPU costs per hour and what it serves per second.
DEMO_PRICES: dict[str, Any] = {
    "currency": "USD",
    "prices": [
        {
            "upstream": "demo-cloud",
            "model": "demo-llama",
            "effective_from": "2026-01-01",
            "input": "0.10",
            "cached_input": "0.05",
            "output": "0.40",
        },
        {
            "upstream": "demo-vllm",
            "model": "demo-llama",
            "effective_from": "2026-01-01",
            "internal": {
                "gpu_hour_cost": "2.50",
                "gpus": 1,
                "input_tokens_per_s": 12000,
                "output_tokens_per_s": 1500,
            },
        },
        {
            "upstream": "demo-vllm",
            "model": "demo-embed",
            "effective_from": "2026-01-01",
            "input": "0.02",
            "output": "0",
        },
    ],
}


def price_file(directory: Path) -> str:
    path = directory / "prices.yaml"
    path.write_text(yaml.safe_dump(DEMO_PRICES, sort_keys=False), encoding="utf-8")
    return str(path.resolve())


def audit_keys(directory: Path) -> dict[str, str]:
    """The demo's checkpoint signing key and content master key, made once and reused."""
    signing, master = directory / "signing.pem", directory / "master.key"
    if not signing.exists():
        private, public = generate_signing_key()
        signing.touch(mode=0o600)
        signing.write_bytes(private)
        signing.with_name("signing.pem.pub").write_bytes(public)
    if not master.exists():
        master.touch(mode=0o600)
        master.write_text(MasterKey.generate() + "\n", encoding="ascii")
    return {"signing_key_file": str(signing.resolve()), "master_key_file": str(master.resolve())}


@dataclass
class DemoStack:
    settings: Settings
    config_path: Path
    key: str
    setup: str  # who published and activated what, and how it was approved
    internal: ServerThread
    external: ServerThread
    proxy: BackgroundServer

    def stop(self) -> None:
        self.proxy.stop()
        self.internal.stop()
        self.external.stop()


def start(directory: Path, port: int) -> DemoStack:
    directory.mkdir(parents=True, exist_ok=True)
    models = ["demo-llama", "demo-embed"]
    internal = ServerThread(FakeModelServer(models=models, fingerprint="fp_vllm").application())
    external = ServerThread(FakeModelServer(models=models, fingerprint="fp_cloud").application())
    internal.start()
    external.start()
    database_url = f"sqlite:///{(directory / 'demo.db').resolve()}"
    raw = demo_config(internal.url, external.url, database_url, port)
    raw["audit"] = audit_keys(directory)
    raw["spend"] = {"prices_file": price_file(directory)}
    raw["monitors"] = monitors_config(directory, port)
    config_path = directory / "demo.yaml"
    config_path.write_text("# written by `tollhouse demo`\n" + yaml.safe_dump(raw, sort_keys=False))
    settings = settings_from_mapping(raw, {}, source=str(config_path))
    migrations.upgrade(database_url)
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    source = POLICY_FILE.read_text()
    operator = Principal.operator(getpass.getuser())
    store = PolicyStore(sessions, four_eyes=settings.access.four_eyes)
    version = store.publish(parse_policy(source, str(POLICY_FILE)), source, operator)
    store.activate(version.name, version.version, operator, "demo start-up")
    keys = KeyService(sessions)
    key = keys.create_for_app("demo-app", "demo-team", "tollhouse demo", actor=operator).secret
    engine.dispose()
    setup = (
        f"Policy {version.ref} published and activated by {operator.name}; approved by "
        f"{', '.join(store.get(version.name, version.version).approved_by)} on publication, "
        "since four-eyes approval is off in this single-person demo (access.four_eyes: false)"
    )
    proxy = BackgroundServer(create_app(settings), "127.0.0.1", port).start()
    return DemoStack(settings, config_path, key, setup, internal, external, proxy)


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
    return sent + send_governed_traffic(client)


# Synthetic personal data only (names from no real person, reserved example domains).
GOVERNED_PROMPTS = [
    "Draft a thank-you note to Maria Jansen (maria.jansen@example.com) for the workshop.",
    "Patient MRN 12345678 needs a follow-up letter about the lab results.",
    "Please update my file, my SSN is 536-22-1847.",
    "Charge the order to card 4111 1111 1111 1111.",
]


def send_governed_traffic(client: openai.OpenAI) -> int:
    """Requests with (synthetic) personal data that show the policy at work."""
    for prompt in GOVERNED_PROMPTS:
        try:
            answer = client.chat.completions.create(
                model="chat-default", messages=[{"role": "user", "content": prompt}]
            )
        except openai.BadRequestError as error:
            print(f"  refused ({error.code}): {prompt}")
            continue
        print(f"  answered by {answer.model}: {answer.choices[0].message.content}")
    return len(GOVERNED_PROMPTS)


def decisions_table(settings: Settings, limit: int = len(GOVERNED_PROMPTS)) -> str:
    """The policy decisions of the last requests, from the audit trail."""
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            rows = list(
                session.scalars(
                    select(AuditRecord)
                    .where(AuditRecord.kind == "completed", AuditRecord.app == "demo-app")
                    .order_by(AuditRecord.id.desc())
                    .limit(limit)
                )
            )
    finally:
        engine.dispose()
    table = []
    for row in reversed(rows):
        decision = row.decision or {}
        redaction = decision.get("redaction", {}).get(row.destination or "", {})
        table.append(
            [
                f"{row.policy_name}@{row.policy_version}",
                decision.get("action", "?"),
                decision.get("model", "?"),
                row.destination or "-",
                ", ".join(f"{k} x{v}" for k, v in decision.get("pii", {}).items()) or "-",
                ", ".join(f"{k}:{v}" for k, v in redaction.items()) or "-",
            ]
        )
    return render_table(["policy", "action", "model", "destination", "PII found", "sent as"], table)


def summary_table(settings: Settings) -> str:
    """Spend per model alias from the daily rollups (what `tollhouse spend report` shows)."""
    engine = make_engine(settings.database_url)
    try:
        rows = spend_report(
            session_factory(engine), "model", dt.date.min, actor=Principal.operator("demo")
        )
    finally:
        engine.dispose()
    return render_table(
        ["model", "requests", "ok", "input tokens", "output tokens", "cost"],
        [
            [
                r.name,
                r.requests,
                r.succeeded,
                r.input_tokens,
                r.output_tokens,
                f"{r.cost:f} {r.currency}".strip(),
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


def trail_status(settings: Settings) -> str:
    """Sign the chain heads now and verify the whole trail, in one line."""
    assert settings.audit.signing_key_file is not None
    engine = make_engine(settings.database_url)
    try:
        key = load_signing_key(settings.audit.signing_key_file)
        checkpoint = Checkpointer(engine, key).write()
        public = key.public_key()
        report = verify_trail(engine, {key_id_of(public): public})
    finally:
        engine.dispose()
    signed = f"checkpoint #{checkpoint.id} signed" if checkpoint else "no new checkpoint"
    verdict = "every chain verifies" if report.ok else f"FAILED: {report.first}"
    return (
        f"Audit trail: {report.records} records in {report.chains} hash chains, {signed}; {verdict}"
    )


def run(directory: Path, port: int | None, wait: bool, dashboard_port: int | None = None) -> int:
    stack = start(directory, port or free_port())
    base_url = f"{stack.proxy.url}/v1"
    try:
        print(
            f"Demo upstreams: internal {stack.internal.url}, external {stack.external.url} "
            "(a demo model, not a real LLM: it answers by fixed rules)"
        )
        print(f"Tollhouse proxy: {base_url}   config: {stack.config_path}")
        print(stack.setup)
        print("\nRequests with synthetic personal data, through the hybrid policy:")
        sent = send_traffic(base_url, stack.key)
        print(
            f"\nSent {sent} requests with the official openai client "
            "(chat, streaming chat, a tool call, embeddings, personal data).\n"
        )
        print("Policy decisions for the requests with personal data (from the audit trail):")
        print(decisions_table(stack.settings))
        print(f"\nPolicy: {POLICY_FILE}")
        print("Spend by model (all requests in this demo database):")
        print(summary_table(stack.settings))
        print("\nTry it yourself:")
        print(curl_example(base_url, stack.key))
        print(f"\n{trail_status(stack.settings)}")
        print(f"Audit trail: tollhouse audit tail --config {stack.config_path}")
        print(f"Verify it:   tollhouse audit verify --config {stack.config_path}")
        print(f"Monitors:    tollhouse monitors run fingerprints --config {stack.config_path}")
        print(
            f"             TOLLHOUSE_CANARY_KEY={stack.key} "
            f"tollhouse monitors run canary-cloud --config {stack.config_path}"
        )
        if wait:
            dashboard = start_dashboard(
                stack.settings, stack.config_path, dashboard_port or free_port()
            )
            print(f"\nDashboard:   {dashboard.address}  (sign in with the key {dashboard.key})")
            print("The proxy and the dashboard keep running; press Ctrl-C to stop.", flush=True)
            stop_on_sigterm()
            try:
                threading.Event().wait()
            finally:
                dashboard.stop()
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        stack.stop()
    return 0
