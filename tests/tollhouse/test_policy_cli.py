"""``tollhouse policy ...`` against a real database, as an operator would use it."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from governance.audit import AuditEntry, AuditWriter, RecordKind
from governance.db import AuditRecord, make_engine, session_factory
from governance.policy.schema import Policy
from tollhouse.cli import main
from tollhouse.commands.context import KEY_VARIABLE

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = f"local:{getpass.getuser()}"  # who acts without $TOLLHOUSE_KEY


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "tollhouse.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database_url": database_url,
                "upstreams": [
                    {"name": "u", "base_url": "http://127.0.0.1:9/v1", "destination": "internal"}
                ],
                "models": [
                    {"name": "m", "deployments": [{"upstream": "u", "model": "x"}]},
                    {"name": "m2", "deployments": [{"upstream": "u", "model": "y"}]},
                ],
            }
        )
    )
    return path


@pytest.fixture
def name() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


def write(tmp_path: Path, name: str, body: str, file: str = "policy.yaml") -> Path:
    path = tmp_path / file
    path.write_text(f"name: {name}\n{body}")
    return path


V1 = "defaults:\n  models: [m]\n  pii:\n    entities: {PERSON: mask}\n"
V2 = "# now routes\ndefaults:\n  models: [m, m2]\n  pii:\n    entities: {PERSON: mask}\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def key_for(capsys: pytest.CaptureFixture[str], config: Path, name: str, *roles: str) -> str:
    """Create a principal with ``roles`` and a key for it (as the local operator)."""
    flags = [part for role in roles for part in ("--role", role)]
    cfg = ["--config", str(config)]
    assert main(["principals", "create", name, *flags, *cfg]) == 0
    assert main(["keys", "create", "--principal", name, *cfg]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_validate(
    tmp_path: Path,
    config: Path,
    name: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = write(tmp_path, name, V1)
    code, out, _ = run(capsys, "policy", "validate", str(good), "--config", str(config))
    assert code == 0 and out.startswith(f"ok: {good}: policy '{name}'")
    assert f"checked against {config}" in out

    bad = write(tmp_path, name, "defaults:\n  pii:\n    entities: {PERSON: shred}\n", "bad.yaml")
    code, out, err = run(capsys, "policy", "validate", str(bad), "--config", str(config))
    assert code == 2 and out == ""
    assert str(bad) in err and "defaults.pii.entities.PERSON.internal" in err

    broken = write(tmp_path, name, "defaults: [\n", "broken.yaml")
    code, _, err = run(capsys, "policy", "validate", str(broken), "--config", str(config))
    assert code == 2 and f"{broken}: not valid YAML" in err

    unknown = write(
        tmp_path,
        name,
        "defaults:\n  models: [m]\noverrides:\n  - name: o\n    match: {apps: [a]}\n"
        "    rules:\n      routes: [{name: r, when_entities: [PERSON], route_to: nope}]\n",
        "unknown.yaml",
    )
    code, _, err = run(capsys, "policy", "validate", str(unknown), "--config", str(config))
    assert code == 2 and str(unknown) in err
    assert "overrides[0].rules.routes[0].route_to: unknown model alias 'nope'" in err

    missing = tmp_path / "missing.yaml"
    code, _, err = run(capsys, "policy", "validate", str(missing), "--config", str(config))
    assert code == 2 and f"{missing}: cannot read" in err

    # Without a configuration the document is still checked; aliases cannot be.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("TOLLHOUSE_CONFIG", raising=False)
    code, out, _ = run(capsys, "policy", "validate", str(unknown))
    assert code == 0 and "not checked: no config" in out


def test_publish_list_show_diff(
    tmp_path: Path, config: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = ["--config", str(config)]
    first = write(tmp_path, name, V1)
    code, out, _ = run(capsys, "policy", "publish", str(first), "-m", "initial", *cfg)
    assert code == 0 and out.startswith(f"published {name}@1 (sha256 ")
    assert f"by {OPERATOR}" in out and f"tollhouse policy approve {name}@1" in out
    code, out, _ = run(capsys, "policy", "publish", str(first), *cfg)
    assert code == 0 and f"the same policy as {name}@1; nothing published" in out
    second = write(tmp_path, name, V2, "second.yaml")
    code, out, _ = run(capsys, "policy", "publish", str(second), *cfg)
    assert code == 0 and f"published {name}@2" in out
    unknown = write(tmp_path, name, "defaults:\n  models: [zzz]\n", "unknown.yaml")
    code, _, err = run(capsys, "policy", "publish", str(unknown), *cfg)
    assert code == 2 and "defaults.models[0]: unknown model alias 'zzz'" in err

    code, out, _ = run(capsys, "policy", "list", name, *cfg)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == [
        "policy",
        "version",
        "status",
        "sha256",
        "author",
        "approved",
        "by",
        "created",
        "(UTC)",
        "comment",
    ]
    assert len(lines) == 4 and "initial" in lines[2] and OPERATOR in lines[3]
    assert f"no (needs an approver other than {OPERATOR})" in lines[3]
    code, out, _ = run(capsys, "policy", "list", *cfg)
    assert code == 0 and name in out

    code, out, _ = run(capsys, "policy", "show", name, *cfg)
    assert code == 0 and out.startswith(f"# policy {name} v2\n")
    assert out.endswith(second.read_text())  # the source exactly as published
    code, out, _ = run(capsys, "policy", "show", f"{name}@1", *cfg)
    assert code == 0 and "# comment initial" in out and first.read_text() in out
    assert f"# approved no (needs an approver other than {OPERATOR})" in out
    code, _, err = run(capsys, "policy", "show", f"{name}@7", *cfg)
    assert code == 2 and "no version 7 (latest is 2)" in err

    code, out, _ = run(capsys, "policy", "diff", f"{name}@1", f"{name}@2", *cfg)
    assert code == 0
    assert f"--- {name}@1\n+++ {name}@2\n" in out and "+  - m2\n" in out
    assert "now routes" not in out  # the canonical rendering, not the sources
    code, out, _ = run(capsys, "policy", "diff", f"{name}@2", str(second), *cfg)
    assert code == 0 and out == f"no differences between {name}@2 and {second}\n"
    code, _, err = run(capsys, "policy", "diff", name, f"{name}@2", *cfg)
    assert code == 2 and "give the version as NAME@V" in err


def test_activate_rollback_shadow_history(
    tmp_path: Path,
    config: Path,
    name: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = ["--config", str(config)]
    assert main(["policy", "publish", str(write(tmp_path, name, V1)), *cfg]) == 0
    assert main(["policy", "publish", str(write(tmp_path, name, V2, "b.yaml")), *cfg]) == 0
    ann = f"ann-{name}"
    monkeypatch.setenv(KEY_VARIABLE, key_for(capsys, config, ann, "policy_approver"))
    for version in (1, 2):
        code, out, _ = run(capsys, "policy", "approve", f"{name}@{version}", *cfg)
        assert code == 0 and out == f"approved {name}@{version} by {ann}\n"

    code, out, _ = run(capsys, "policy", "activate", f"{name}@1", "-m", "go", *cfg)
    assert code == 0 and f"policy {name}: v1 is now active (was -)" in out
    code, out, _ = run(capsys, "policy", "activate", f"{name}@1", *cfg)
    assert code == 0 and "v1 was already active; nothing changed" in out
    code, _, err = run(capsys, "policy", "activate", name, *cfg)
    assert code == 2 and "NAME@V" in err
    code, _, err = run(capsys, "policy", "activate", f"{name}@5", *cfg)
    assert code == 2 and "no version 5" in err

    code, out, _ = run(capsys, "policy", "shadow", f"{name}@2", *cfg)
    assert code == 0 and "v2 attached as shadow" in out and "active v1, shadow v2" in out
    code, out, _ = run(capsys, "policy", "list", name, *cfg)
    assert " active " in out.splitlines()[2] and " shadow " in out.splitlines()[3]
    code, out, _ = run(capsys, "policy", "show", name, *cfg)
    assert out.startswith(f"# policy {name} v2 (shadow)")
    code, out, _ = run(capsys, "policy", "shadow", name, "--off", *cfg)
    assert code == 0 and "shadow v2 detached" in out
    code, out, _ = run(capsys, "policy", "shadow", name, "--off", *cfg)
    assert code == 0 and "no shadow was attached" in out
    code, _, err = run(capsys, "policy", "shadow", f"{name}@1", *cfg)
    assert code == 2 and "v1 is the active version" in err

    code, out, _ = run(capsys, "policy", "activate", f"{name}@2", *cfg)
    assert code == 0 and "v2 is now active (was v1)" in out
    code, out, _ = run(capsys, "policy", "rollback", name, "-m", "oops", *cfg)
    assert code == 0 and "rolled back: v1 is active again (was v2)" in out
    code, _, err = run(capsys, "policy", "rollback", name, *cfg)
    assert code == 2 and "nothing to roll back to" in err

    code, out, _ = run(capsys, "policy", "history", name, *cfg)
    rows = [line.split()[2:5] for line in out.splitlines()[2:-1]]
    assert code == 0 and rows == [
        ["activate", "v1", "-"],
        ["shadow_on", "v2", "-"],
        ["shadow_off", "-", "v2"],
        ["activate", "v2", "v1"],
        ["rollback", "v1", "v2"],
    ]
    assert ann in out and "oops" in out
    assert out.splitlines()[-1] == "now: active v1, shadow -, generation 5"
    code, _, err = run(capsys, "policy", "history", "never-published", *cfg)
    assert code == 2 and "no policy named 'never-published'" in err


def test_four_eyes_with_keys(
    tmp_path: Path,
    config: Path,
    database_url: str,
    name: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A policy author publishes; only another principal, an approver, can approve and
    activate. Each acts with its own key in $TOLLHOUSE_KEY."""
    cfg = ["--config", str(config)]
    author, approver = f"author-{name}", f"approver-{name}"
    author_key = key_for(capsys, config, author, "policy_author")
    approver_key = key_for(capsys, config, approver, "policy_approver")
    policy_file = str(write(tmp_path, name, V1))

    monkeypatch.setenv(KEY_VARIABLE, author_key)
    code, out, _ = run(capsys, "policy", "publish", policy_file, "-m", "first", *cfg)
    assert code == 0 and f"published {name}@1" in out and f"by {author}" in out
    code, _, err = run(capsys, "policy", "approve", f"{name}@1", *cfg)
    assert code == 2 and f"{author} (roles: policy_author) may not policy:approve" in err
    code, _, err = run(capsys, "policy", "activate", f"{name}@1", *cfg)
    assert code == 2 and "may not policy:approve" in err
    code, out, _ = run(capsys, "policy", "shadow", f"{name}@1", *cfg)  # no approval needed
    assert code == 0 and "v1 attached as shadow" in out
    code, _, err = run(capsys, "principals", "create", "x", "--role", "admin", *cfg)
    assert code == 2 and "principals:manage" in err

    monkeypatch.setenv(KEY_VARIABLE, approver_key)
    code, _, err = run(capsys, "policy", "activate", f"{name}@1", *cfg)
    assert code == 2 and err == (
        f"tollhouse: policy {name!r}: v1 has no approval; ask a policy approver other than "
        f"{author} to run `tollhouse policy approve {name}@1`\n"
    )
    code, out, _ = run(capsys, "policy", "approve", f"{name}@1", "-m", "checked", *cfg)
    assert code == 0 and out == f"approved {name}@1 by {approver}\n"
    code, out, _ = run(capsys, "policy", "approve", f"{name}@1", *cfg)
    assert code == 0 and f"was already approved by {approver}" in out
    code, out, _ = run(capsys, "policy", "activate", f"{name}@1", *cfg)
    assert code == 0 and f"policy {name}: v1 is now active" in out
    code, out, _ = run(capsys, "policy", "list", name, *cfg)
    assert approver in out.splitlines()[2] and author in out.splitlines()[2]
    code, out, _ = run(capsys, "policy", "show", name, *cfg)
    assert f"# approved by {approver} at " in out and ": checked" in out

    # An author who is also an approver still cannot approve their own version.
    monkeypatch.delenv(KEY_VARIABLE)
    both = ["--role", "policy_author", "--role", "policy_approver"]
    assert main(["principals", "roles", author, *both, *cfg]) == 0
    monkeypatch.setenv(KEY_VARIABLE, author_key)
    second = write(tmp_path, name, V2, "second.yaml")
    assert main(["policy", "publish", str(second), *cfg]) == 0
    code, _, err = run(capsys, "policy", "approve", f"{name}@2", *cfg)
    assert code == 2 and f"was authored by {author}, who may not approve it" in err

    monkeypatch.setenv(KEY_VARIABLE, author_key + "x")
    code, _, err = run(capsys, "policy", "activate", f"{name}@1", *cfg)
    assert code == 2 and f"{KEY_VARIABLE}: the key is unknown, revoked or expired" in err

    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        records = list(
            session.scalars(
                select(AuditRecord)
                .where(AuditRecord.kind == "admin", AuditRecord.policy_name == name)
                .order_by(AuditRecord.id)
            )
        )
    engine.dispose()
    assert [(r.endpoint, (r.decision or {})["actor"]) for r in records] == [
        ("policy.publish", author),
        ("policy.shadow_on", author),
        ("policy.approve", approver),
        ("policy.activate", approver),
        ("policy.shadow_off", approver),  # activating the shadowed version detaches it
        ("policy.publish", author),
    ]


def test_four_eyes_off(
    tmp_path: Path, config: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A single-person setup: publishing approves, the operator activates."""
    settings = yaml.safe_load(config.read_text())
    relaxed = tmp_path / "relaxed.yaml"
    relaxed.write_text(yaml.safe_dump({**settings, "access": {"four_eyes": False}}))
    cfg = ["--config", str(relaxed)]
    code, out, _ = run(capsys, "policy", "publish", str(write(tmp_path, name, V1)), *cfg)
    assert code == 0 and "approved on publication (access.four_eyes is off)" in out
    code, out, _ = run(capsys, "policy", "activate", f"{name}@1", *cfg)
    assert code == 0 and "v1 is now active" in out
    code, out, _ = run(capsys, "policy", "list", name, *cfg)
    assert OPERATOR in out.splitlines()[2].split(" active ")[1]


def test_shadow_report(
    config: Path, database_url: str, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = ["--config", str(config)]
    code, out, _ = run(capsys, "policy", "shadow-report", name, *cfg)
    assert code == 0 and "no requests were evaluated" in out
    now = dt.datetime.now(dt.UTC)
    decision = {"action": "allow", "model": "m", "destinations": ["internal"], "rules": []}
    entries = [
        AuditEntry(
            request_id=f"req_{name}_{i}",
            kind=RecordKind.ADMITTED,
            recorded_at=now,
            app="billing" if i % 2 else "search",
            team=None,
            key_id="k",
            endpoint="chat.completions",
            status="admitted",
            content_retention="none",
            policy_name=name,
            policy_version=1,
            decision=decision,
            shadow={**decision, "version": 2, "action": "block" if i < 3 else "allow"},
        )
        for i in range(5)
    ]
    engine = make_engine(database_url)
    writer = AuditWriter(engine)
    writer.start()
    try:
        writer.write_blocking(entries, timeout_s=10)
    finally:
        writer.close()
        engine.dispose()

    code, out, _ = run(capsys, "policy", "shadow-report", name, "--since", "2000-01-01", *cfg)
    assert code == 0
    assert "evaluated 5, would change 3 (60.0%), shadow failed 0" in out
    assert "allow -> block           3" in out and "allow -> allow           2" in out
    assert "billing  2          1" in out and "search   3          2" in out
    assert f"  req_{name}_2\n  req_{name}_1\n  req_{name}_0\n" in out
    code, out, _ = run(capsys, "policy", "shadow-report", name, "--since", "2999-01-01", *cfg)
    assert code == 0 and "no requests were evaluated" in out
    with pytest.raises(SystemExit):
        main(["policy", "shadow-report", name, "--since", "yesterday", *cfg])


def test_schema_is_published_and_current(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/policy.schema.json is what the models generate (regenerate it with
    ``tollhouse policy schema -o docs/policy.schema.json``)."""
    committed = (ROOT / "docs" / "policy.schema.json").read_text(encoding="utf-8")
    assert json.loads(committed) == Policy.model_json_schema()
    code, out, _ = run(capsys, "policy", "schema")
    assert code == 0 and out == committed
    target = tmp_path / "schema.json"
    code, _, err = run(capsys, "policy", "schema", "-o", str(target))
    assert code == 0 and target.read_text(encoding="utf-8") == committed
    assert f"wrote {target}" in err
