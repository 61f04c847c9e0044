"""A governed Tollhouse set up for benchmarks: a migrated SQLite database, audit keys, an
active policy (content rules, full content kept encrypted; budgets and rate limits that
are never reached with ``limits``) and an app key. Shared by the bench scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def prepare(
    work: Path,
    upstream_url: str,
    upstream_model: str = "demo-llama",
    alias: str = "chat",
    limits: bool = False,
    extra: dict[str, Any] | None = None,
) -> tuple[Path, str]:
    """Write ``work/bench.yaml`` (plus ``extra`` settings), set the database up, and
    return the config path and an app key's secret."""
    work.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    config = work / "bench.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": f"sqlite:///{work}/bench.db",
                "upstreams": [
                    {
                        "name": "demo",
                        "base_url": upstream_url,
                        "destination": "internal",
                    }
                ],
                "models": [
                    {"name": alias, "deployments": [{"upstream": "demo", "model": upstream_model}]}
                ],
                "spend": {"prices_file": str(work / "prices.yaml")},
                "policy": {"name": "bench"},
                # PII analysis is off in this policy; don't load the NER model at all.
                "pii": {"preload": False},
                # Full content is encrypted; checkpoints are signed every minute.
                "audit": {
                    "master_key_file": str(work / "master.key"),
                    "signing_key_file": str(work / "signing.pem"),
                },
                "access": {"four_eyes": False},  # one operator sets the bench up
                **(extra or {}),
            }
        )
    )
    (work / "prices.yaml").write_text(
        yaml.safe_dump(
            {
                "prices": [
                    {
                        "upstream": "demo",
                        "model": upstream_model,
                        "input": "0.10",
                        "output": "0.40",
                        "effective_from": "2026-01-01",
                    }
                ]
            }
        )
    )
    limit_rules = {
        "budgets": [
            {"name": "app-daily", "scope": "app", "period": "daily", "cost": "1000000"},
            {"name": "key-monthly", "scope": "key", "period": "monthly", "tokens": 10**12},
        ],
        "rate_limits": [
            {"scope": "key", "requests_per_minute": 10**9},
            {"scope": "app", "tokens_per_minute": 10**12},
        ],
    }
    # A governed configuration: content rules on every request, full content kept.
    policy = work / "bench-policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "name": "bench",
                "defaults": {
                    "models": [alias],
                    "content": {"blocked_keywords": ["nightjar"], "secrets": "block"},
                    "audit": {"content": "full"},
                    **(limit_rules if limits else {}),
                },
            }
        )
    )
    cli = [python, "-m", "tollhouse"]
    subprocess.run(
        [*cli, "db", "upgrade", "--config", str(config)], env=env, check=True, capture_output=True
    )
    for option in ("--master-key", "--signing-key"):
        target = work / ("master.key" if option == "--master-key" else "signing.pem")
        subprocess.run(
            [*cli, "audit", "keygen", option, str(target)], env=env, check=True, capture_output=True
        )
    for step in (["publish", str(policy)], ["activate", "bench@1"]):
        subprocess.run(
            [*cli, "policy", *step, "--config", str(config)],
            env=env,
            check=True,
            capture_output=True,
        )
    key = (
        subprocess.run(
            [*cli, "keys", "create", "--app", "bench", "--config", str(config)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    return config, key
