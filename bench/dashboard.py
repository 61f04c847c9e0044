"""How long each dashboard page takes to render with a million audit records.

Seeds a site the way the dashboard tests do (``tests/dashboard/site.py``; this script
imports the test helpers ``tests.dashboard.site``, ``tests.support.traffic``,
``tests.support.policies``, ``tests.support.audit_keys`` and ``tests.support.pg``):
a migrated database, one key per role, the test policy with budgets, ``--records``
audit records (an admitted and a completed record per request, synthetic traffic from
``tests.support.traffic``) spread over the last 30 days and written through the real
`AuditWriter` with the spend and traffic ledgers, monitor runs, an alert, model
fingerprints and a signed checkpoint. A SQLite database at ``--db`` is reused when its
record count matches (``--reseed`` to start again; the 30 days are those before it was
seeded). ``--postgres-url`` seeds a database ``tollhouse_bench_dashboard`` created on
that server (kept and reused like the SQLite one); ``--postgres`` starts a throwaway
cluster (``initdb``/``pg_ctl`` on PATH, run as the ``postgres`` user when root) and
seeds it.

Then opens every page as the admin key (who sees everything) with Streamlit's `AppTest`:
per page, a fresh session renders it once ("cold": the first render of that page in a
session; the process's very first render, which also builds the cached services, is
reported as "startup") and then ``--rounds`` more times ("warm": median and max). The
audit log is also rendered with filters that use the tag index (decision, PII entity),
the app and end-user indexes, and a sort over 30 days. `AppTest` runs the script in
this process, so a figure is the server-side render (the queries and the script), not
the browser's drawing of it. Prints a table per backend; exits 1 when a page raised an
exception or a warm median is 2 s or more.

    .venv/bin/python bench/dashboard.py [--records 1000000] [--rounds 5]
        [--db .tollhouse/bench-dashboard/dashboard.db] [--reseed] [--no-sqlite]
        [--postgres | --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

The target is under 2 s per page (warm median).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.exc import SQLAlchemyError  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

import dashboard  # noqa: E402
import migrations  # noqa: E402
from dashboard.session import KEY_STATE  # noqa: E402
from governance.audit.checkpoint import Checkpointer, load_signing_key  # noqa: E402
from governance.config import ENV_CONFIG_PATH  # noqa: E402
from governance.db import make_engine, session_factory  # noqa: E402
from governance.db.models import AuditRecord  # noqa: E402
from tests.dashboard.site import POLICY, _monitors, make_keys, write_config  # noqa: E402
from tests.support import traffic  # noqa: E402
from tests.support.audit_keys import write_audit_keys  # noqa: E402
from tests.support.policies import activate  # noqa: E402

APP = Path(dashboard.__file__).parent / "app.py"
DEFAULT_DB = ROOT / ".tollhouse" / "bench-dashboard" / "dashboard.db"
PG_DATABASE = "tollhouse_bench_dashboard"
TARGET_S = 2.0
SPAN = dt.timedelta(days=30)
PAGES = {
    "overview": "views/overview.py",
    "audit log": "views/audit_log.py",
    "spend": "views/spend.py",
    "drift": "views/drift.py",
    "policies": "views/policies.py",
    "upstreams": "views/upstreams.py",
}

Setter = Callable[[AppTest], None]


def _select(key: str, value: str) -> Setter:
    def setter(app: AppTest) -> None:
        app.selectbox(key=key).select(value)

    return setter


def _type(key: str, value: str) -> Setter:
    def setter(app: AppTest) -> None:
        app.text_input(key=key).input(value)

    return setter


THIRTY_DAYS = _select("f-window", "Last 30 days")
# Audit log renders with filters: (name, widget settings applied before submitting).
FILTERED: dict[str, list[Setter]] = {
    "audit: 30 days": [THIRTY_DAYS],
    "audit: decision=block, 30 d": [THIRTY_DAYS, _select("f-action", "block")],
    "audit: PII=EMAIL, 30 d": [THIRTY_DAYS, _select("f-pii", "EMAIL_ADDRESS")],
    "audit: app=claims, 30 d": [THIRTY_DAYS, _select("f-app", "claims")],
    "audit: end user, 30 d": [THIRTY_DAYS, _type("f-user", "user-007")],
    "audit: app+PII+block, 30 d": [
        THIRTY_DAYS,
        _select("f-app", "support-bot"),
        _select("f-pii", "PERSON"),
        _select("f-action", "block"),
    ],
    "audit: slowest first, 30 d": [THIRTY_DAYS],
}
SORTS = {"audit: slowest first, 30 d": "Slowest first"}


@dataclass
class Site:
    url: str
    config: Path
    keys: dict[str, str]
    records: int
    seeded_at: str
    seed_s: float = 0.0

    def save(self, path: Path) -> None:
        raw = {
            "url": self.url,
            "config": str(self.config),
            "keys": self.keys,
            "records": self.records,
            "seeded_at": self.seeded_at,
            "seed_s": self.seed_s,
        }
        path.write_text(json.dumps(raw, indent=2))

    @classmethod
    def load(cls, path: Path) -> Site | None:
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        return cls(
            raw["url"],
            Path(raw["config"]),
            raw["keys"],
            raw["records"],
            raw["seeded_at"],
            raw.get("seed_s", 0.0),
        )


@dataclass
class Timing:
    name: str
    cold: float
    warm: list[float] = field(default_factory=list)
    error: str | None = None
    matching: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.warm) if self.warm else self.cold

    @property
    def slowest(self) -> float:
        return max(self.warm) if self.warm else self.cold


def audit_count(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(AuditRecord)) or 0)
    except SQLAlchemyError:  # no database or no schema yet: seed it
        return -1
    finally:
        engine.dispose()


def seed(url: str, directory: Path, records: int) -> Site:
    """Migrate ``url`` and seed it; the site (its config and keys) is saved in
    ``directory/site.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    migrations.upgrade(url)
    config = write_config(directory, url, write_audit_keys(directory / "keys"))
    keys = make_keys(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    now = dt.datetime.now(dt.UTC)
    activate(sessions, POLICY)
    requests = records // 2
    print(f"  writing {requests:,} requests ({2 * requests:,} records) ...", flush=True)
    t0 = time.perf_counter()
    written = traffic.write(
        engine,
        traffic.requests(requests, now - SPAN, now - dt.timedelta(minutes=5)),
        batch=5000,
    )
    write_s = time.perf_counter() - t0
    print(
        f"  wrote {written:,} records in {write_s:.0f} s "
        f"({written / write_s:,.0f} records/s, audit chain + spend and traffic ledgers)",
        flush=True,
    )
    _monitors(engine, directory, now)
    Checkpointer(engine, load_signing_key(str(directory / "keys" / "signing.pem"))).write()
    engine.dispose()
    site = Site(url, config, keys, written, now.isoformat(timespec="seconds"), write_s)
    site.save(directory / "site.json")
    print(f"  seeded in {time.perf_counter() - started:.0f} s", flush=True)
    return site


def prepare(url: str, directory: Path, records: int, reseed: bool) -> Site:
    saved = Site.load(directory / "site.json")
    if (
        not reseed
        and saved is not None
        and saved.url == url
        and saved.records == records
        and audit_count(url) >= records
    ):
        print(f"  reusing the database seeded at {saved.seeded_at} ({records:,} records)")
        return saved
    if make_url(url).get_backend_name() == "sqlite":
        path = Path(make_url(url).database or "")
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)
    return seed(url, directory, records)


def postgres_database(server_url: str, reseed: bool) -> str:
    """The bench database on ``server_url`` (created, or recreated with ``reseed``)."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": PG_DATABASE}
        )
        if exists and reseed:
            connection.execute(text(f'DROP DATABASE "{PG_DATABASE}" WITH (FORCE)'))
            exists = None
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{PG_DATABASE}"'))
    admin.dispose()
    return make_url(server_url).set(database=PG_DATABASE).render_as_string(hide_password=False)


def _open(site: Site) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.session_state[KEY_STATE] = site.keys["admin"]
    return app


def _failure(app: AppTest) -> str | None:
    if app.exception:
        return "; ".join(str(e.message) for e in app.exception)[:300]
    return None


def _matching(app: AppTest) -> str:
    """The audit log's "Matching records" figure, to show that a filter applied."""
    return next((str(m.value) for m in app.metric if m.label == "Matching records"), "")


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure_page(site: Site, name: str, script: str, rounds: int) -> Timing:
    app = _open(site)
    app.run()
    app.switch_page(script)
    timing = Timing(name, _timed(app.run))
    timing.error = _failure(app)
    timing.matching = _matching(app)
    for _ in range(rounds):
        timing.warm.append(_timed(app.run))
        timing.error = timing.error or _failure(app)
    return timing


def measure_filtered(site: Site, name: str, setters: list[Setter], rounds: int) -> Timing:
    app = _open(site)
    app.run()
    app.switch_page(PAGES["audit log"]).run()
    for setter in setters:
        setter(app)
    if name in SORTS:
        app.selectbox(key="sort").select(SORTS[name])
    submit = next(b for b in app.button if b.label == "Apply filters")
    timing = Timing(name, _timed(lambda: submit.click().run()))
    timing.error = _failure(app)
    timing.matching = _matching(app)
    for _ in range(rounds):
        timing.warm.append(_timed(app.run))
        timing.error = timing.error or _failure(app)
    return timing


def measure(site: Site, rounds: int) -> tuple[float, list[Timing]]:
    os.environ[ENV_CONFIG_PATH] = str(site.config)
    app = _open(site)
    startup = _timed(app.run)
    if error := _failure(app):
        print(f"  startup render raised: {error}")
    timings = [measure_page(site, name, script, rounds) for name, script in PAGES.items()]
    timings += [measure_filtered(site, name, s, rounds) for name, s in FILTERED.items()]
    return startup, timings


def report(backend: str, site: Site, startup: float, timings: list[Timing]) -> list[str]:
    print()
    print(
        f"{backend}: {site.records:,} audit records seeded {site.seeded_at}; "
        f"server-side render (queries + script, AppTest in-process), seconds"
    )
    print(f"  startup (first render, builds the services): {startup:.2f}")
    print(f"  {'page':<30} {'cold':>6} {'median':>7} {'max':>6} {'matching':>9}  result")
    failed: list[str] = []
    for t in timings:
        verdict = "ok"
        if t.error:
            verdict = f"EXCEPTION: {t.error}"
            failed.append(f"{backend} {t.name}: exception")
        elif t.median >= TARGET_S:
            verdict = f"SLOW (>= {TARGET_S:.0f} s)"
            failed.append(f"{backend} {t.name}: median {t.median:.2f} s")
        print(
            f"  {t.name:<30} {t.cold:>6.2f} {t.median:>7.2f} {t.slowest:>6.2f} "
            f"{t.matching:>9}  {verdict}"
        )
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", type=Path, default=DEFAULT_DB)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true", help="measure PostgreSQL only")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--postgres-url", help="a server URL; the bench database is made there")
    group.add_argument("--postgres", action="store_true", help="start a throwaway cluster")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore", module="altair")  # Decimal columns in charts

    failed: list[str] = []
    backends: list[tuple[str, str, Path]] = []
    if not args.no_sqlite:
        db = args.db.resolve()
        db.parent.mkdir(parents=True, exist_ok=True)
        backends.append(("sqlite", f"sqlite:///{db}", db.parent / "sqlite"))
    cluster = None
    if args.postgres:
        from tests.support.pg import TempCluster

        cluster = TempCluster().init()
        args.postgres_url = cluster.url
    if args.postgres_url:
        url = postgres_database(args.postgres_url, args.reseed or cluster is not None)
        backends.append(("postgresql", url, args.db.resolve().parent / "postgresql"))
    try:
        for backend, url, directory in backends:
            print(f"{backend}: preparing {args.records:,} records", flush=True)
            site = prepare(url, directory, args.records, args.reseed)
            startup, timings = measure(site, args.rounds)
            failed += report(backend, site, startup, timings)
    finally:
        if cluster is not None:
            cluster.destroy()
    print()
    if failed:
        print("FAILED: " + "; ".join(failed))
        return 1
    print(f"every page rendered in under {TARGET_S:.0f} s (warm median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
