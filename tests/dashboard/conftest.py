"""Fixtures for the dashboard: seeded sites on SQLite and PostgreSQL, an empty one, and
a helper that opens a page with Streamlit's `AppTest` as a signed-in principal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import dashboard
from dashboard.session import KEY_STATE
from governance.config import ENV_CONFIG_PATH
from tests.conftest import _migrated
from tests.dashboard.site import Site, make_keys, seed, write_config
from tests.support.audit_keys import write_audit_keys

APP = Path(dashboard.__file__).parent / "app.py"
Open = Callable[..., AppTest]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """A seeded site, once per backend and test module."""
    directory = tmp_path_factory.mktemp("site")
    for url in _migrated(request, tmp_path_factory, "dashboard"):
        yield seed(url, directory, write_audit_keys(directory / "keys"))


@pytest.fixture(scope="module")
def empty_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """A migrated SQLite database with keys and nothing else."""
    directory = tmp_path_factory.mktemp("empty")
    for url in _migrated(request, tmp_path_factory, "empty", backend="sqlite"):
        config = write_config(directory, url, write_audit_keys(directory / "keys"))
        yield Site(url, config, make_keys(url))


@pytest.fixture
def open_page(monkeypatch: pytest.MonkeyPatch) -> Open:
    """``open_page(site, role, page=None, direct=False)``: the app run as ``role``'s key,
    switched to ``page`` (a script under dashboard/, e.g. ``views/spend.py``) when given;
    with ``direct``, the page script run on its own, as a URL typed by hand would reach it
    past the navigation."""

    def run(site: Site, role: str | None, page: str | None = None, direct: bool = False) -> AppTest:
        monkeypatch.setenv(ENV_CONFIG_PATH, str(site.config))
        if direct:
            assert page is not None
            app = AppTest.from_file(str(APP.parent / page), default_timeout=60)
            if role is not None:
                app.session_state[KEY_STATE] = site.keys[role]
            return app.run()
        app = AppTest.from_file(str(APP), default_timeout=60)
        if role is not None:
            app.session_state[KEY_STATE] = site.keys[role]
        app.run()
        if page is not None:
            app.switch_page(page).run()
        return app

    return run


def texts(app: AppTest) -> str:
    """Every piece of text the run rendered (titles, markdown, captions, metrics, alerts)."""
    parts: list[str] = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "info",
        "warning",
        "error",
        "success",
    ):
        parts.extend(str(e.value) for e in getattr(app, kind))
    parts.extend(f"{m.label}: {m.value}" for m in app.metric)
    parts.extend(str(e.label) for e in app.expander)
    return "\n".join(parts)
