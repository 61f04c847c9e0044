"""``tollhouse dashboard``: the Streamlit dashboard for a configuration file."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dashboard
from governance.config import ENV_CONFIG_PATH, Settings
from governance.errors import ConfigError
from tollhouse.commands.context import load

APP = Path(dashboard.__file__).resolve().parent / "app.py"  # the package holds no imports


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "dashboard",
        parents=[common],
        help="serve the dashboard (audit log, spend, drift and alerts, policies, upstreams)",
    )
    parser.add_argument("--host", help="address to listen on (default: dashboard.host)")
    parser.add_argument("--port", type=int, help="port (default: dashboard.port)")
    parser.set_defaults(handler=handle)


def command_line(settings: Settings, host: str, port: int) -> list[str]:
    """The ``streamlit run`` command for the dashboard: headless, no usage statistics
    (nothing leaves the machine), no file watching, the SSO secrets file when set."""
    arguments = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.headless=true",
        f"--server.address={host}",
        f"--server.port={port}",
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
        "--browser.gatherUsageStats=false",
        "--global.developmentMode=false",
        "--client.toolbarMode=minimal",
        "--theme.base=light",
    ]
    oidc = settings.dashboard.oidc
    if oidc is not None:
        arguments.append(f"--secrets.files={Path(oidc.secrets_file).resolve()}")
    return arguments


def environment(config_path: Path) -> dict[str, str]:
    return {**os.environ, ENV_CONFIG_PATH: str(config_path.resolve())}


def check(settings: Settings) -> None:
    """Fail before starting Streamlit when the dashboard could not work: an unreachable or
    out-of-date database, a missing SSO secrets file."""
    from dashboard.services import open_services

    oidc = settings.dashboard.oidc
    if oidc is not None and not Path(oidc.secrets_file).is_file():
        raise ConfigError(
            f"dashboard.oidc.secrets_file: {oidc.secrets_file} does not exist; it must hold "
            "Streamlit's [auth] section (redirect_uri, cookie_secret, client_id, "
            "client_secret, server_metadata_url)"
        )
    open_services(settings).close()


def launch(settings: Settings, config_path: Path, host: str, port: int) -> subprocess.Popen[bytes]:
    """Start the dashboard in a child process (what ``tollhouse demo`` does)."""
    check(settings)
    return subprocess.Popen(
        command_line(settings, host, port),
        env=environment(config_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def handle(args: argparse.Namespace) -> int:
    settings = load(args)
    config_path = Path(args.config or os.environ.get(ENV_CONFIG_PATH) or "tollhouse.yaml")
    check(settings)
    host = args.host or settings.dashboard.host
    port = args.port or settings.dashboard.port
    print(f"Tollhouse dashboard: http://{host}:{port}", flush=True)
    # Streamlit takes over this process (its signals, its exit status); no shell involved.
    os.execve(sys.executable, command_line(settings, host, port), environment(config_path))  # noqa: S606
