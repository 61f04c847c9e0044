"""The admin API: every route against every role, the OpenAPI schema, audited content reads,
and the command-line commands that read content, against a real proxy on loopback."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from governance.access import Principal, Role
from governance.access.principals import PrincipalService
from governance.db import AuditRecord
from governance.keys import KeyService
from governance.pii import TextAnalyzer
from tests.proxy.conftest import Harness, running_proxy
from tests.upstream.faulty import FaultyUpstream
from tollhouse.cli import main

OPERATOR = Principal.operator("matrix-setup")
ROLES = ("admin", "policy_author", "policy_approver", "auditor", "sre", "app")
READERS = {"admin", "policy_author", "policy_approver", "auditor"}

# (method, path, body, roles that may) -- the specification this test holds the API to.
# {uid}, {request}, {key} and {victim} are filled in per run.
MATRIX: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
    ("GET", "/admin/principals", None, {"admin"}),
    ("POST", "/admin/principals", {"name": "new-{uid}-{role}", "roles": ["sre"]}, {"admin"}),
    ("PUT", "/admin/principals/{victim}/roles", {"roles": ["sre"]}, {"admin"}),
    ("POST", "/admin/principals/{victim}/disable", None, {"admin"}),
    ("GET", "/admin/keys", None, {"admin"}),
    ("POST", "/admin/keys", {"principal": "{victim}"}, {"admin"}),
    ("POST", "/admin/keys/{key}/rotate", {"overlap_s": 60}, {"admin"}),
    ("POST", "/admin/keys/{key}/revoke", None, {"admin"}),
    ("GET", "/admin/policies", None, READERS),
    ("POST", "/admin/policies", {"source": "name: matrix-{uid}\n"}, {"admin", "policy_author"}),
    ("GET", "/admin/policies/matrix-{uid}/versions/1", None, READERS),
    ("POST", "/admin/policies/matrix-{uid}/versions/1/approve", {}, {"admin", "policy_approver"}),
    ("POST", "/admin/policies/matrix-{uid}/activate", {"version": 1}, {"admin", "policy_approver"}),
    ("POST", "/admin/policies/matrix-{uid}/rollback", {}, {"admin", "policy_approver"}),
    ("GET", "/admin/policies/matrix-{uid}/history", None, READERS),
    ("GET", "/admin/audit/records?app=suite&limit=5", None, {"admin", "auditor"}),
    ("GET", "/admin/audit/records/{request}", None, {"admin", "auditor"}),
    ("GET", "/admin/audit/export?app=suite", None, {"admin", "auditor"}),
    ("GET", "/admin/audit/export?app=suite&content=true", None, {"admin", "auditor"}),
    ("GET", "/admin/audit/verify", None, {"admin", "auditor", "sre"}),
    ("GET", "/admin/audit/checkpoints", None, {"admin", "auditor", "sre"}),
    ("POST", "/admin/audit/checkpoints", None, {"admin"}),
    ("POST", "/admin/audit/forget", {"app": "nobody-{uid}"}, {"admin"}),
    ("POST", "/admin/audit/purge", {"older_than_days": 36500}, {"admin"}),
    ("GET", "/admin/upstreams", None, {"admin", "sre"}),
    ("GET", "/v1/models", None, {"app"}),
    (
        "POST",
        "/v1/chat/completions",
        {"model": "chat-default", "messages": [{"role": "user", "content": "hi"}]},
        {"app"},
    ),
]


def call(
    base: str, method: str, path: str, key: str | None, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


@pytest.fixture(scope="module")
def admin_proxy(
    database_url: str, upstreams: tuple[FaultyUpstream, FaultyUpstream], analyzer: TextAnalyzer
) -> Iterator[tuple[Harness, dict[str, str], str]]:
    uid = uuid.uuid4().hex[:8]
    with running_proxy(database_url, upstreams, analyzer) as proxy:
        principals = PrincipalService(proxy.sessions)
        keys = KeyService(proxy.sessions)
        secrets: dict[str, str] = {}
        for role in ROLES:
            name = f"{role}-{uid}"
            extra = {"app": f"matrix-app-{uid}", "team": "qa"} if role == "app" else {}
            principals.create(name, [Role(role)], actor=OPERATOR, **extra)
            secrets[role] = keys.create(name, actor=OPERATOR).secret
        yield proxy, secrets, uid


def base_of(proxy: Harness) -> str:
    return proxy.url.removesuffix("/v1")


def test_openapi_schema_lists_every_admin_route(
    admin_proxy: tuple[Harness, dict[str, str], str],
) -> None:
    proxy, _, _ = admin_proxy
    status, schema = call(base_of(proxy), "GET", "/admin/openapi.json", None)
    assert status == 200 and schema["openapi"].startswith("3.")
    documented = {
        (method.upper(), "/admin" + path)
        for path, operations in schema["paths"].items()
        for method in operations
    }
    tested = {
        (method, "/admin" + _template(path.removeprefix("/admin")))
        for method, path, _, _ in MATRIX
        if path.startswith("/admin")
    }
    assert documented == tested  # the matrix below covers every route, and only routes


def _template(path: str) -> str:
    """A matrix path as its OpenAPI template (``/principals/{name}/roles``)."""
    path = path.split("?")[0]
    replacements = {
        "/principals/{victim}": "/principals/{name}",
        "/keys/{key}": "/keys/{key}",
        "/policies/matrix-{uid}": "/policies/{name}",
        "/versions/1": "/versions/{version}",
        "/records/{request}": "/records/{request_id}",
    }
    for concrete, template in replacements.items():
        path = path.replace(concrete, template)
    return path


def test_each_role_gets_exactly_what_it_should(
    admin_proxy: tuple[Harness, dict[str, str], str],
) -> None:
    proxy, secrets, uid = admin_proxy
    base = base_of(proxy)
    request_id = (
        proxy.client()
        .chat.completions.with_raw_response.create(
            model="chat-default", messages=[{"role": "user", "content": "matrix"}]
        )
        .headers["x-request-id"]
    )
    # the policy is authored by the author, so four eyes let the approver approve it
    status, _ = call(
        base,
        "POST",
        "/admin/policies",
        secrets["policy_author"],
        {"source": f"name: matrix-{uid}\n"},
    )
    assert status == 201
    outcomes: dict[tuple[str, str], int] = {}
    for role in ROLES:
        victim = f"victim-{uid}-{role}"
        PrincipalService(proxy.sessions).create(victim, [Role.SRE], actor=OPERATOR)
        spare = KeyService(proxy.sessions).create(victim, actor=OPERATOR).principal.key_id
        for method, path, body, allowed in MATRIX:
            fill = {"uid": uid, "role": role, "request": request_id, "key": spare, "victim": victim}
            concrete = path.format(**fill)
            filled = (
                json.loads(
                    json.dumps(body)
                    .replace("{uid}", uid)
                    .replace("{role}", role)
                    .replace("{victim}", victim)
                )
                if body is not None
                else None
            )
            status, answer = call(base, method, concrete, secrets[role], filled)
            outcomes[(role, f"{method} {path}")] = status
            if role in allowed:
                assert status < 400 or status in (400, 404, 409), (role, method, path, answer)
                assert status not in (401, 403), (role, method, path, answer)
            else:
                assert status == 403, (role, method, path, status, answer)
                assert answer["error"]["type"] == "permission_error", answer
    # the allowed calls really did their work, for instance:
    assert outcomes[("admin", "POST /admin/principals")] == 201
    assert (
        outcomes[("policy_approver", "POST /admin/policies/matrix-{uid}/versions/1/approve")] == 200
    )
    assert outcomes[("auditor", "GET /admin/audit/records/{request}")] == 200
    assert outcomes[("sre", "GET /admin/audit/verify")] == 200
    assert outcomes[("app", "POST /v1/chat/completions")] == 200
    assert outcomes[("admin", "POST /v1/chat/completions")] == 403
    # nobody may call without a key
    assert call(base, "GET", "/admin/audit/verify", None)[0] == 401


def test_every_content_read_is_audited(admin_proxy: tuple[Harness, dict[str, str], str]) -> None:
    proxy, secrets, _ = admin_proxy
    base = base_of(proxy)
    request_id = (
        proxy.client()
        .chat.completions.with_raw_response.create(
            model="chat-default", messages=[{"role": "user", "content": "read me"}]
        )
        .headers["x-request-id"]
    )
    status, shown = call(base, "GET", f"/admin/audit/records/{request_id}", secrets["auditor"])
    assert status == 200
    assert shown[0]["content"]["request"]["messages"][0]["content"] == "read me"
    assert call(base, "GET", f"/admin/audit/records/{request_id}", secrets["sre"])[0] == 403
    with proxy.sessions() as session:
        reads = (
            session.execute(
                select(AuditRecord.decision).where(AuditRecord.endpoint == "audit.read")
            )
            .scalars()
            .all()
        )
    mine = [d for d in reads if d.get("request_id") == request_id]
    assert len(mine) == 1 and mine[0]["actor"].startswith("auditor-")


def test_export_over_http_carries_a_manifest(
    admin_proxy: tuple[Harness, dict[str, str], str],
) -> None:
    proxy, secrets, _ = admin_proxy
    request = urllib.request.Request(
        base_of(proxy) + "/admin/audit/export?app=suite&format=csv",
        headers={"Authorization": f"Bearer {secrets['auditor']}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        data = response.read()
        manifest = json.loads(response.headers["X-Tollhouse-Manifest"])
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["count"] == len(data.decode().splitlines()) - 1 > 0


@pytest.mark.parametrize(
    "command", [["audit", "show", "{request}"], ["audit", "export", "-o", "{out}", "--content"]]
)
def test_cli_commands_that_read_content_follow_the_roles(
    admin_proxy: tuple[Harness, dict[str, str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    proxy, secrets, _ = admin_proxy
    request_id = (
        proxy.client()
        .chat.completions.with_raw_response.create(
            model="chat-default", messages=[{"role": "user", "content": "cli read"}]
        )
        .headers["x-request-id"]
    )
    config = tmp_path / "tollhouse.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": proxy.settings.database_url,
                "audit": {"master_key_file": proxy.settings.audit.master_key_file},
            }
        )
    )
    for role in ROLES:
        out = tmp_path / f"{role}.jsonl"
        argv = [a.format(request=request_id, out=out) for a in command] + ["--config", str(config)]
        monkeypatch.setenv("TOLLHOUSE_KEY", secrets[role])
        code = main(argv)
        printed = capsys.readouterr()
        if role in ("admin", "auditor"):
            assert code == 0, (role, printed.err)
            text = printed.out if command[1] == "show" else out.read_text()
            assert "cli read" in text
        else:
            assert code == 2 and "may not" in printed.err, (role, printed.err)
    monkeypatch.delenv("TOLLHOUSE_KEY")
    assert (
        main(
            [a.format(request=request_id, out=tmp_path / "x") for a in command]
            + ["--config", str(config)]
        )
        == 2
    )
