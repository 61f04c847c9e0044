"""Every dashboard page through Streamlit's AppTest, against seeded SQLite and PostgreSQL:
what it shows is what the database holds, and roles see only what they may."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from governance.db import AlertRecord, AuditRecord, make_engine, session_factory
from governance.db.traffic_models import AuditTag
from tests.dashboard.conftest import Open, texts
from tests.dashboard.site import Site

PAGE_CONTENT = {
    "views/overview.py": ["Requests today", "Spend this month", "Firing alerts", "Records"],
    "views/audit_log.py": ["Matching records", "Chain status"],
    "views/spend.py": ["Budgets", "Top consumers this month", "Chargeback"],
    "views/drift.py": ["Monitor runs", "Drift signals", "Model fingerprints", "Alerts"],
    "views/policies.py": ["Versions", "Activation history", "Active version: 1"],
    "views/upstreams.py": ["Health (last hour)", "Latency and errors"],
}


def clean(app: AppTest) -> AppTest:
    """The run raised nothing and showed no error box."""
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    return app


def submit(app: AppTest, label: str) -> AppTest:
    [button] = [b for b in app.button if b.label == label]
    return button.click().run()


def count(site: Site, *where: object) -> int:
    engine = make_engine(site.url)
    try:
        with engine.connect() as connection:
            return int(
                connection.scalar(select(func.count()).select_from(AuditRecord).where(*where)) or 0
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("page", list(PAGE_CONTENT))
def test_every_page_renders_for_an_admin(site: Site, open_page: Open, page: str) -> None:
    app = clean(open_page(site, "admin", page))
    shown = texts(app)
    for expected in PAGE_CONTENT[page]:
        assert expected in shown, f"{page} lacks {expected!r}"


def test_overview_counts_are_the_databases(site: Site, open_page: Open) -> None:
    app = clean(open_page(site, "admin"))
    metrics = {m.label: m.value for m in app.metric}
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    completed_today = count(site, AuditRecord.kind == "completed", AuditRecord.recorded_at >= today)
    refused_today = count(
        site,
        AuditRecord.kind == "completed",
        AuditRecord.recorded_at >= today,
        AuditRecord.status == "rejected",
    )
    assert metrics["Requests today"] == f"{completed_today:,}"
    assert metrics["Refused today"] == f"{refused_today:,}"
    assert metrics["Records"] == f"{count(site):,}"
    assert metrics["Firing alerts"] == "1"


def test_audit_log_filters_by_decision_in_the_database(site: Site, open_page: Open) -> None:
    app = clean(open_page(site, "auditor", "views/audit_log.py"))
    app.selectbox(key="f-window").select("Last 30 days")
    app.selectbox(key="f-action").select("block")
    clean(submit(app, "Apply filters"))
    engine = make_engine(site.url)
    with engine.connect() as connection:
        blocked = connection.scalar(
            select(func.count())
            .select_from(AuditTag)
            .join(
                AuditRecord,
                (AuditRecord.chain_id == AuditTag.chain_id) & (AuditRecord.seq == AuditTag.seq),
            )
            .where(AuditTag.tag == "action:block", AuditRecord.kind == "completed")
        )
    engine.dispose()
    assert blocked
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Matching records"] == f"{blocked:,}"
    [table] = [t for t in app.dataframe if t.key == "records"]
    assert set(table.value["status"]) == {"rejected"}


def test_audit_log_detail_content_and_export_are_audited(site: Site, open_page: Open) -> None:
    engine = make_engine(site.url)
    with session_factory(engine)() as session:
        request_id = session.scalar(
            select(AuditRecord.request_id)
            .where(AuditRecord.content_retention == "redacted", AuditRecord.kind == "completed")
            .limit(1)
        )
    engine.dispose()
    assert request_id
    reads_before = count(site, AuditRecord.kind == "admin", AuditRecord.endpoint == "audit.read")
    app = clean(open_page(site, "auditor", "views/audit_log.py"))
    app.selectbox(key="f-window").select("Last 30 days")
    app.text_input(key="f-request").input(request_id)
    app.selectbox(key="f-kind").select("(any)")
    clean(submit(app, "Apply filters"))
    assert f"Request {request_id}" in texts(app)
    assert count(site, AuditRecord.kind == "admin", AuditRecord.endpoint == "audit.read") == (
        reads_before
    ), "the trace alone is metadata; it is not a content read"
    clean(app.button(key=f"open-{request_id}").click().run())
    assert "content: `present`" in texts(app)
    assert count(site, AuditRecord.kind == "admin", AuditRecord.endpoint == "audit.read") == (
        reads_before + 1
    )
    exports_before = count(site, AuditRecord.endpoint == "audit.export")
    clean(app.button(key="x-go").click().run())
    name, data = app.session_state["x-data"]
    assert name.endswith(".csv") and request_id.encode() in data
    assert len(data.splitlines()) == 1 + 2  # header, the admitted and the completed record
    assert count(site, AuditRecord.endpoint == "audit.export") == exports_before + 1


def test_an_sre_sees_no_audit_log_and_no_content(site: Site, open_page: Open) -> None:
    app = clean(open_page(site, "sre"))
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        app.switch_page("views/audit_log.py")
    shown = texts(app)
    assert "Requests today" in shown and "Firing alerts" in shown  # ops:read
    denied = open_page(site, "sre", "views/audit_log.py", direct=True)
    assert not denied.dataframe and "audit:read" in texts(denied)


@pytest.mark.parametrize(
    ("role", "page", "permission"),
    [
        ("finance", "views/audit_log.py", "audit:read"),
        ("finance", "views/drift.py", "ops:read"),
        ("policy_author", "views/spend.py", "spend:read"),
        ("auditor", "views/upstreams.py", "ops:read"),
        ("sre", "views/policies.py", "policy:read"),
    ],
)
def test_a_page_refuses_a_role_without_its_permission(
    site: Site, open_page: Open, role: str, page: str, permission: str
) -> None:
    app = open_page(site, role, page, direct=True)
    assert not app.exception
    assert [w.value for w in app.warning if permission in w.value]
    assert not app.dataframe and not app.metric


def test_finance_overview_shows_spend_only(site: Site, open_page: Open) -> None:
    shown = texts(clean(open_page(site, "finance")))
    assert "Spend this month" in shown
    assert "Requests today" not in shown and "Firing alerts" not in shown


def test_an_app_key_cannot_use_the_dashboard(site: Site, open_page: Open) -> None:
    app = clean(open_page(site, "app"))
    assert "has no role that uses the dashboard" in texts(app)


def test_sign_in_refuses_a_wrong_key_and_accepts_a_right_one(site: Site, open_page: Open) -> None:
    app = clean(open_page(site, None))
    assert "API key" in [t.label for t in app.text_input]
    app.text_input[0].input("th_nope_0000000000000000")
    app = submit(app, "Sign in")
    assert [e.value for e in app.error if "unknown, revoked or expired" in e.value]
    app.text_input[0].input(site.keys["auditor"])
    app = clean(submit(app, "Sign in"))
    assert "Signed in as `auditor@example.test` (auditor)" in texts(app)


def test_acknowledging_an_alert_is_recorded(site: Site, open_page: Open) -> None:
    app = clean(open_page(site, "sre", "views/drift.py"))
    app = clean(submit(app, "Acknowledge"))
    assert [s.value for s in app.success if "acknowledged" in s.value]
    engine = make_engine(site.url)
    with session_factory(engine)() as session:
        alert = session.scalars(select(AlertRecord)).one()
    engine.dispose()
    assert alert.acknowledged_by == "sre@example.test"


def test_spend_chargeback_is_the_spend_report(site: Site, open_page: Open) -> None:
    app = clean(open_page(site, "finance", "views/spend.py"))
    labels = [b.label for b in app.get("download_button")]
    assert any(label.startswith("Download chargeback CSV") for label in labels)
    [budgets] = [d.value for d in app.dataframe if "budget" in d.value.columns]
    assert len(budgets) and set(budgets["budget"]) <= {"app-monthly", "user-daily"}
    app_rows = budgets[budgets["budget"] == "app-monthly"]
    assert set(app_rows["subject"]) == {"support-bot", "claims", "search"}  # the seeded apps
    assert app_rows["spent"].gt(0).all() and app_rows["limit"].eq(5.0).all()


@pytest.mark.parametrize("page", list(PAGE_CONTENT))
def test_every_page_says_when_there_is_no_data(
    empty_site: Site, open_page: Open, page: str
) -> None:
    app = clean(open_page(empty_site, "admin", page))
    assert app.info, f"{page} shows no empty-state message"
