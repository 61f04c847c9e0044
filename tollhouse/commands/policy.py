"""``tollhouse policy validate|publish|approve|list|show|diff|activate|rollback|shadow|...``.

Changes act as the principal of ``$TOLLHOUSE_KEY``, or as the local operator without it
(see `acting_principal`); the store enforces roles and four eyes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from governance.config import Settings, load_settings, resolve_config_path
from governance.errors import ConfigError, InvalidRequestError
from governance.policy.diff import unified
from governance.policy.document import PolicyDocumentError, digest, parse_policy
from governance.policy.report import shadow_report
from governance.policy.schema import Policy
from governance.policy.store import Change, PolicyStore, PolicyVersion
from tollhouse.commands.context import Context, acting_principal, load, open_database
from tollhouse.table import render_table


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("policy", help="versioned policies")
    sub = parser.add_subparsers(dest="policy_command", required=True, metavar="ACTION")

    def add(name: str, handler: Any, summary: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, parents=[common], help=summary)
        p.set_defaults(handler=handler)
        return p

    p = add("validate", validate, "check a policy file (and its model aliases)")
    p.add_argument("file", type=Path)
    p = add("publish", publish, "store a policy file as the next version")
    p.add_argument("file", type=Path)
    p.add_argument("--comment", "-m", help="why this version exists")
    p = add("approve", approve, "approve a version someone else published (four eyes)")
    p.add_argument("ref", metavar="NAME@V")
    p.add_argument("--comment", "-m")
    p = add("list", list_versions, "list published versions")
    p.add_argument("name", nargs="?")
    p = add("show", show, "print a version's YAML source and metadata")
    p.add_argument("ref", metavar="NAME[@V]")
    p = add("diff", diff, "unified diff of two versions (either may be a policy file)")
    p.add_argument("before", metavar="NAME@A")
    p.add_argument("after", metavar="NAME@B")
    p = add("activate", activate, "make an approved version the active one")
    p.add_argument("ref", metavar="NAME@V")
    p.add_argument("--comment", "-m")
    p = add("rollback", rollback, "re-activate the version active before the current one")
    p.add_argument("name")
    p.add_argument("--comment", "-m")
    p = add("shadow", shadow, "evaluate a version alongside the active one (or --off)")
    p.add_argument("ref", metavar="NAME@V | NAME --off")
    p.add_argument("--off", action="store_true", help="detach the shadow version")
    p.add_argument("--comment", "-m")
    p = add("shadow-report", report, "what the shadow version would have changed")
    p.add_argument("name")
    p.add_argument("--since", type=_timestamp, help="ISO 8601 time or date (UTC if no zone)")
    p.add_argument("--examples", type=int, default=10, help="changed request ids to show")
    p = add("history", history, "activation history of a policy")
    p.add_argument("name")
    p = add("schema", schema, "print the policy JSON Schema")
    p.add_argument("--output", "-o", type=Path, help="write it to a file instead")


# -- helpers ------------------------------------------------------------------------------


def _timestamp(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from exc
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def _ref(value: str, *, required: bool = False) -> tuple[str, int | None]:
    """``NAME@V`` → (NAME, V); a name without a numeric ``@V`` suffix → (NAME, None)."""
    name, at, version = value.rpartition("@")
    if at and name and version.isdigit():
        return name, int(version)
    if required:
        raise InvalidRequestError(f"{value!r}: give the version as NAME@V (e.g. {value}@1)")
    return value, None


def _read(path: Path) -> tuple[Policy, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyDocumentError(f"{path}: cannot read the policy file ({exc.strerror})") from exc
    return parse_policy(text, str(path)), text


def _check_aliases(policy: Policy, settings: Settings, path: Path, config: Path) -> None:
    """Every model alias the policy names must be one of the configuration's ``models``."""
    known = {m.name for m in settings.models}
    problems = [
        f"  {where}: unknown model alias {alias!r}"
        for where, alias in _alias_fields(policy)
        if alias not in known
    ]
    if problems:
        defined = ", ".join(sorted(known)) or "none"
        header = f"{path}: names model aliases {config} does not define:"
        raise PolicyDocumentError("\n".join([header, *problems, f"  (defined: {defined})"]))


def _alias_fields(policy: Policy) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    sections = [("defaults", policy.defaults)] + [
        (f"overrides[{i}].rules", o.rules) for i, o in enumerate(policy.overrides)
    ]
    for where, rules in sections:
        found += [(f"{where}.models[{i}]", m) for i, m in enumerate(rules.models or [])]
        found += [
            (f"{where}.routes[{i}].route_to", r.route_to) for i, r in enumerate(rules.routes or [])
        ]
    return found


def _store(context: Context) -> PolicyStore:
    return PolicyStore(context.sessions, four_eyes=context.settings.access.four_eyes)


def _approval(version: PolicyVersion, four_eyes: bool) -> str:
    """Who approved a version, or what it still needs."""
    if version.approved(four_eyes=four_eyes):
        return ", ".join(version.approved_by)
    if four_eyes:
        return f"no (needs an approver other than {version.author})"
    return "no"


def _when(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}"


def _version_label(version: int | None) -> str:
    return "-" if version is None else f"v{version}"


# -- commands -----------------------------------------------------------------------------


def validate(args: argparse.Namespace) -> int:
    policy, _ = _read(args.file)
    config = resolve_config_path(args.config)
    settings: Settings | None = None
    if args.config is not None or config.exists():
        try:
            settings = load_settings(config)
        except ConfigError as error:
            if args.config is not None:
                raise
            print(f"note: {config} not loaded, model aliases not checked:", file=sys.stderr)
            print(f"  {error.message}", file=sys.stderr)
    if settings is not None:
        _check_aliases(policy, settings, args.file, config)
    aliases = ", ".join(sorted(policy.model_aliases())) or "(all)"
    checked = f"checked against {config}" if settings is not None else "not checked: no config"
    print(
        f"ok: {args.file}: policy {policy.name!r}, {len(policy.overrides)} override(s), "
        f"{len(policy.recognizers)} recognizer(s); model aliases {aliases} ({checked})"
    )
    print(f"sha256 {digest(policy)}")
    return 0


def publish(args: argparse.Namespace) -> int:
    policy, text = _read(args.file)
    settings = load(args)
    _check_aliases(policy, settings, args.file, resolve_config_path(args.config))
    context = open_database(settings)
    store = _store(context)
    version = store.publish(policy, text, acting_principal(context), args.comment)
    if not version.new:
        print(f"unchanged: {args.file} is the same policy as {version.ref}; nothing published")
        return 0
    print(f"published {version.ref} (sha256 {version.sha256[:12]}) by {version.author}")
    if store.four_eyes:
        print(
            f"before it can be activated, a policy approver other than {version.author} "
            f"runs: tollhouse policy approve {version.ref}"
        )
    else:
        print("approved on publication (access.four_eyes is off)")
    return 0


def approve(args: argparse.Namespace) -> int:
    name, number = _ref(args.ref, required=True)
    assert number is not None
    context = open_database(load(args))
    approval = _store(context).approve(name, number, acting_principal(context), args.comment)
    when = f"{_when(approval.at)} UTC"
    if approval.new:
        print(f"approved {name}@{number} by {approval.approver}")
    else:
        print(f"{name}@{number} was already approved by {approval.approver} at {when}")
    return 0


def list_versions(args: argparse.Namespace) -> int:
    store = _store(open_database(load(args)))
    found = store.versions(args.name)
    states = {name: store.state(name) for name in {v.name for v in found}}
    rows = []
    for v in found:
        state = states[v.name]
        status = (
            "active" if state.active == v.version else "shadow" if state.shadow == v.version else ""
        )
        rows.append(
            [
                v.name,
                v.version,
                status,
                v.sha256[:12],
                v.author,
                _approval(v, store.four_eyes),
                _when(v.created_at),
                v.comment or "",
            ]
        )
    headers = [
        "policy",
        "version",
        "status",
        "sha256",
        "author",
        "approved by",
        "created (UTC)",
        "comment",
    ]
    print(render_table(headers, rows))
    return 0


def show(args: argparse.Namespace) -> int:
    name, number = _ref(args.ref)
    store = _store(open_database(load(args)))
    v = store.get(name, number)
    state = store.state(name)
    status = (
        " (active)"
        if state.active == v.version
        else " (shadow)"
        if state.shadow == v.version
        else ""
    )
    print(f"# policy {v.name} v{v.version}{status}")
    print(f"# sha256  {v.sha256}")
    print(f"# author  {v.author}")
    print(f"# created {_when(v.created_at)} UTC")
    if not v.approvals:
        print(f"# approved {_approval(v, store.four_eyes)}")
    for approval in v.approvals:
        note = f": {approval.comment}" if approval.comment else ""
        print(f"# approved by {approval.approver} at {_when(approval.at)} UTC{note}")
    if v.comment:
        print(f"# comment {v.comment}")
    print(v.source, end="" if v.source.endswith("\n") else "\n")
    return 0


def diff(args: argparse.Namespace) -> int:
    store: PolicyStore | None = None
    sides: list[tuple[dict[str, Any], str]] = []
    for value in (args.before, args.after):
        path = Path(value)
        if path.is_file():
            policy, _ = _read(path)
            sides.append((policy.model_dump(mode="json"), str(path)))
            continue
        name, number = _ref(value, required=True)
        if store is None:
            store = _store(open_database(load(args)))
        version: PolicyVersion = store.get(name, number)
        sides.append((store.load(name, version.version).model_dump(mode="json"), version.ref))
    (before, before_label), (after, after_label) = sides
    text = unified(before, after, before_label, after_label)
    print(text, end="" if text else f"no differences between {before_label} and {after_label}\n")
    return 0


def _print_change(name: str, change: Change, unchanged: str) -> None:
    if not change.changed:
        print(f"policy {name}: {unchanged}")
    for entry in change.entries:
        what = {
            "activate": f"v{entry.version} is now active",
            "rollback": f"rolled back: v{entry.version} is active again",
            "shadow_on": f"v{entry.version} attached as shadow",
            "shadow_off": f"shadow v{entry.previous_version} detached",
        }[entry.action]
        previous = entry.previous_version
        was = f" (was {_version_label(previous)})" if entry.action != "shadow_off" else ""
        print(f"policy {name}: {what}{was}")
    state = change.state
    print(
        f"active {_version_label(state.active)}, shadow {_version_label(state.shadow)}, "
        f"generation {state.generation}"
    )


def activate(args: argparse.Namespace) -> int:
    name, number = _ref(args.ref, required=True)
    assert number is not None
    context = open_database(load(args))
    change = _store(context).activate(name, number, acting_principal(context), args.comment)
    _print_change(name, change, f"v{number} was already active; nothing changed")
    return 0


def rollback(args: argparse.Namespace) -> int:
    context = open_database(load(args))
    change = _store(context).rollback(args.name, acting_principal(context), args.comment)
    _print_change(args.name, change, "nothing changed")
    return 0


def shadow(args: argparse.Namespace) -> int:
    if args.off:
        name, number = _ref(args.ref)
        if number is not None:
            raise InvalidRequestError(f"{args.ref!r}: --off takes the policy name alone")
        context = open_database(load(args))
        change = _store(context).detach_shadow(name, acting_principal(context), args.comment)
        _print_change(name, change, "no shadow was attached; nothing changed")
        return 0
    name, number = _ref(args.ref, required=True)
    assert number is not None
    context = open_database(load(args))
    store = _store(context)
    change = store.attach_shadow(name, number, acting_principal(context), args.comment)
    _print_change(name, change, f"v{number} was already the shadow; nothing changed")
    return 0


def report(args: argparse.Namespace) -> int:
    context = open_database(load(args))
    result = shadow_report(context.sessions, args.name, args.since, examples=args.examples)
    since = f"since {_when(result.since)} UTC" if result.since else "all time"
    print(f"shadow report for policy {result.name} ({since})")
    if not result.evaluated:
        print("no requests were evaluated against a shadow version")
        return 0
    share = 100.0 * result.changed / result.evaluated
    print(
        f"evaluated {result.evaluated}, would change {result.changed} ({share:.1f}%), "
        f"shadow failed {result.failed}"
    )
    print()
    versions = [[_version_label(a), _version_label(s), n] for (a, s), n in result.versions.items()]
    print(render_table(["active", "shadow", "requests"], versions))
    print()
    moves = [[f"{a} -> {s}", n] for (a, s), n in result.transitions.items()]
    print(render_table(["active -> shadow action", "requests"], moves))
    print()
    apps = [[app, c.evaluated, c.changed] for app, c in result.by_app.items()]
    print(render_table(["app", "evaluated", "would change"], apps))
    if result.failures:
        print()
        print(render_table(["shadow error", "requests"], list(result.failures.items())))
    if result.examples:
        print()
        print("changed requests (newest first):")
        for request_id in result.examples:
            print(f"  {request_id}")
    return 0


def history(args: argparse.Namespace) -> int:
    store = _store(open_database(load(args)))
    store.get(args.name)  # an unknown name is an error, not an empty history
    rows = [
        [
            _when(e.at),
            e.action,
            _version_label(e.version),
            _version_label(e.previous_version),
            e.actor,
            e.comment or "",
        ]
        for e in store.history(args.name)
    ]
    print(render_table(["time (UTC)", "action", "version", "previous", "actor", "comment"], rows))
    state = store.state(args.name)
    print(
        f"now: active {_version_label(state.active)}, shadow {_version_label(state.shadow)}, "
        f"generation {state.generation}"
    )
    return 0


def schema_text() -> str:
    """The policy JSON Schema as written to ``docs/policy.schema.json``."""
    return json.dumps(Policy.model_json_schema(), indent=2, ensure_ascii=False) + "\n"


def schema(args: argparse.Namespace) -> int:
    text = schema_text()
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--output: cannot write {args.output}: {exc.strerror}") from exc
    print(f"wrote {args.output}", file=sys.stderr)
    return 0
