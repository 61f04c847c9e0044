"""The demo's dashboard: an admin principal to sign in as, and Streamlit in a child process."""

from __future__ import annotations

import getpass
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from governance.access import Principal, Role
from governance.access.principals import PrincipalService
from governance.config import Settings
from governance.db import make_engine, session_factory
from governance.errors import NotFoundError
from governance.keys import KeyService
from tollhouse.commands.dashboard import launch


@dataclass
class DemoDashboard:
    address: str
    key: str  # an admin's key, to sign in with
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def stop_on_sigterm() -> None:
    """Make SIGTERM (a service manager, a test) stop the demo as Ctrl-C does, so its
    cleanup runs and the dashboard's process does not outlive it."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def start_dashboard(settings: Settings, config_path: Path, port: int) -> DemoDashboard:
    """The dashboard on the demo database, and an admin principal to sign in as."""
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    operator = Principal.operator(getpass.getuser())
    name = "demo-admin"
    try:
        PrincipalService(sessions).get(name)
    except NotFoundError:
        PrincipalService(sessions).create(name, [Role.ADMIN], actor=operator)
    key = KeyService(sessions).create(name, "tollhouse demo dashboard", actor=operator).secret
    engine.dispose()
    process = launch(settings, config_path, "127.0.0.1", port)
    return DemoDashboard(f"http://127.0.0.1:{port}", key, process)
