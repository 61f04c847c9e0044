"""Running the shared gateway harness (../shared/tools/gatewaybench) with Tollhouse in it.

Shared by `gateway.py` (Tollhouse next to the peers) and `gateway_telemetry.py` (plain
against traced). The harness passes durations as floats (``-d10.0s``), which Debian's
wrk 4.1 refuses; a wrapper first on the harness's PATH passes whole seconds on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from governed_setup import ROOT

HARNESS = ROOT.parent / "shared" / "tools" / "gatewaybench"
STUB_PORT = 18000
MODEL = "bench-model"
UPSTREAM = f"http://127.0.0.1:{STUB_PORT}/v1"

WRK_WRAPPER = """#!/usr/bin/env bash
args=()
for a in "$@"; do
  if [[ $a =~ ^(-d|--timeout=)([0-9]+)\\.0*s$ ]]; then a="${BASH_REMATCH[1]}${BASH_REMATCH[2]}s"; fi
  args+=("$a")
done
exec %s "${args[@]}"
"""


def tollhouse_target(name: str, config: Path, key: str, **extra: Any) -> dict[str, Any]:
    """A harness target running ``tollhouse serve`` on ``config`` (one worker)."""
    tollhouse = str(Path(sys.executable).with_name("tollhouse"))
    return {
        "name": name,
        "port": 18200,
        "path": "/v1/chat/completions",
        "headers": {"Authorization": f"Bearer {key}"},
        "model": MODEL,
        "ready_path": "/healthz",
        "ready_timeout": 60,
        "cmd": f"exec {tollhouse} serve --config {config} --port {{port}}",
        "version_cmd": f"{tollhouse} --version",
        **extra,
    }


def run_harness(work: Path, targets: list[dict[str, Any]], args: list[str], setup: bool) -> Path:
    """Run the harness with ``targets`` (a targets file) and ``args``; return its
    results folder. ``setup`` lets the harness install what it is missing (wrk, LiteLLM,
    Portkey under /tmp/gwb), which needs the package registries."""
    wrk = shutil.which("wrk")
    if wrk is None and not setup:
        sys.exit("wrk is missing: apt-get install wrk (or run without --no-setup)")
    bin_dir = work / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    if setup:
        subprocess.run(["bash", str(HARNESS / "setup.sh"), "all"], check=True)
        wrk = shutil.which("wrk")
    assert wrk is not None
    wrapper = bin_dir / "wrk"
    wrapper.write_text(WRK_WRAPPER % wrk)
    wrapper.chmod(0o755)
    targets_file = work / "targets.json"
    targets_file.write_text(json.dumps(targets))
    results = work / "results"
    shutil.rmtree(results, ignore_errors=True)
    subprocess.run(
        [
            "python3",
            str(HARNESS / "run.py"),
            "--targets-file",
            str(targets_file),
            "--results-dir",
            str(results),
            "--model",
            MODEL,
            *args,
        ],
        check=True,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    return results


def by_level(results: dict[str, Any], target: str, field: str) -> dict[str, float]:
    """``{"chat c1": value, ...}`` of one field for one target of one harness run."""
    return {
        f"{run['scenario']} c{run['concurrency']}": float(run[field])
        for run in results["runs"]
        if run.get("target") == target and run.get(field) is not None
    }
