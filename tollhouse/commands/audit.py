"""``tollhouse audit verify|checkpoint|export|show|forget|purge|keygen|tail``.

Commands that read records or content act as the principal of ``$TOLLHOUSE_KEY`` and
need its roles (export: auditor or admin; show: content access). Commands that change
or sign the trail may also run as the local operator (database access = admin); every
such change is itself an audit record.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from governance.audit.checkpoint import (
    Checkpoint,
    Checkpointer,
    generate_signing_key,
    iter_checkpoints,
    load_signing_key,
    trusted_keys,
)
from governance.audit.reader import AuditReader, RecordFilter, recent_completions
from governance.audit.retention import Retention
from governance.audit.vault import MasterKey
from governance.audit.verify import verify_trail
from governance.config.schema import Settings
from governance.errors import ConfigError
from tollhouse.commands.context import Context, acting_principal, load, open_database
from tollhouse.commands.keys import duration
from tollhouse.table import render_table


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("audit", help="the audit trail")
    sub = parser.add_subparsers(dest="audit_command", required=True, metavar="ACTION")

    p = sub.add_parser("verify", parents=[common], help="re-compute the chains, check checkpoints")
    p.add_argument("--since", type=timestamp, help="verify records from this time (ISO 8601)")
    p.add_argument(
        "--public-key",
        action="append",
        default=[],
        type=Path,
        help="trust this Ed25519 public key (PEM) for checkpoints; repeatable",
    )
    p.add_argument(
        "--anchor", type=Path, help="checkpoints exported earlier; each must still be stored"
    )
    p.add_argument("--max-problems", type=int, default=20)
    p.set_defaults(handler=verify)

    checkpoint = sub.add_parser("checkpoint", help="signed checkpoints of the chain heads")
    csub = checkpoint.add_subparsers(dest="checkpoint_command", required=True, metavar="ACTION")
    p = csub.add_parser("create", parents=[common], help="sign the current chain heads now")
    p.set_defaults(handler=checkpoint_create)
    p = csub.add_parser("export", parents=[common], help="write checkpoints as JSON Lines")
    p.add_argument("--output", "-o", type=Path, required=True)
    p.set_defaults(handler=checkpoint_export)

    p = sub.add_parser("export", parents=[common], help="records plus a manifest (needs a key)")
    p.add_argument("--from", dest="since", type=timestamp, help="ISO 8601 time or date (UTC)")
    p.add_argument("--to", dest="until", type=timestamp, help="exclusive upper bound")
    p.add_argument("--app")
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    p.add_argument("--content", action="store_true", help="include stored content (decrypted)")
    p.add_argument("--output", "-o", type=Path, required=True)
    p.set_defaults(handler=export)

    p = sub.add_parser("show", parents=[common], help="one request's records and content")
    p.add_argument("request_id")
    p.set_defaults(handler=show)

    p = sub.add_parser("forget", parents=[common], help="crypto-shred an app's or a user's content")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--app")
    who.add_argument("--user", help="the end user (the request's `user` field)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=forget)

    p = sub.add_parser("purge", parents=[common], help="drop content older than a cut-off")
    p.add_argument("--older-than", type=duration, required=True, help="e.g. 400d, 36h, 1w")
    p.set_defaults(handler=purge)

    p = sub.add_parser("keygen", help="create a checkpoint signing key or a master key")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--signing-key", type=Path, help="write an Ed25519 key pair (FILE, FILE.pub)")
    kind.add_argument("--master-key", type=Path, help="write a 32-byte master key (base64)")
    p.set_defaults(handler=keygen)

    p = sub.add_parser("tail", parents=[common], help="show the latest completed requests")
    p.add_argument("-n", "--lines", type=int, default=20)
    p.set_defaults(handler=tail)


def timestamp(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from exc
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def _trusted(settings: Settings, extra: list[Path]) -> dict[str, Ed25519PublicKey]:
    paths: list[str | Path] = [*settings.audit.verify_key_files, *extra]
    return trusted_keys(settings.audit.signing_key_file, paths)


def _reader(context: Context) -> AuditReader:
    path = context.settings.audit.master_key_file
    master = MasterKey.from_file(path) if path else None
    return AuditReader(context.engine, context.sessions, master)


def _anchors(path: Path | None) -> list[Checkpoint]:
    if path is None:
        return []
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise ConfigError(f"--anchor: cannot read {path}: {exc.strerror}") from exc
    anchors = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
            anchors.append(
                Checkpoint(
                    int(doc["id"]),
                    dt.datetime.fromisoformat(doc["created_at"]),
                    doc["key_id"],
                    doc["previous"],
                    doc["digest"],
                    doc["body"],
                    doc["signature"],
                )
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"--anchor: {path} line {number} is not a checkpoint") from exc
    return anchors


def verify(args: argparse.Namespace) -> int:
    context = open_database(load(args))
    trusted = _trusted(context.settings, args.public_key)
    report = verify_trail(
        context.engine,
        trusted,
        since=args.since,
        anchors=_anchors(args.anchor),
        max_problems=args.max_problems,
    )
    print(
        f"verified {report.records} records in {report.chains} chains "
        f"({report.contents} content digests) and {report.checkpoints} checkpoints"
    )
    if not trusted:
        print("warning: no trusted public key configured; checkpoints cannot be checked")
    if report.checkpoints == 0:
        print("warning: no checkpoints stored; chains are checked by their hashes alone")
    elif report.unsigned_records:
        print(f"note: {report.unsigned_records} records are newer than the last checkpoint")
    if report.ok:
        print("OK: every chain and checkpoint verifies")
        return 0
    first = report.first
    assert first is not None
    print(f"FAILED: first bad record: {first.describe()}", file=sys.stderr)
    for problem in report.problems[1:]:
        print(f"  also: {problem.describe()}", file=sys.stderr)
    return 1


def checkpoint_create(args: argparse.Namespace) -> int:
    context = open_database(load(args))
    path = context.settings.audit.signing_key_file
    if path is None:
        raise ConfigError("audit.signing_key_file is not configured; nothing can sign")
    checkpoint = Checkpointer(context.engine, load_signing_key(path)).write()
    if checkpoint is None:
        print("no chain moved since the last checkpoint")
    else:
        heads = len(checkpoint.heads)
        print(f"checkpoint #{checkpoint.id} signs {heads} chain heads (digest {checkpoint.digest})")
    return 0


def checkpoint_export(args: argparse.Namespace) -> int:
    context = open_database(load(args))
    count = 0
    with args.output.open("wb") as out:
        for checkpoint in iter_checkpoints(context.engine):
            out.write(orjson.dumps(checkpoint.as_json()) + b"\n")
            count += 1
    print(f"exported {count} checkpoints to {args.output}")
    return 0


def export(args: argparse.Namespace) -> int:
    context = open_database(load(args))
    actor = acting_principal(context, require_key=True)
    where = RecordFilter(since=args.since, until=args.until, app=args.app)
    manifest = _reader(context).export(
        actor, where, args.output, fmt=args.format, content=args.content
    )
    covered = manifest.document["checkpoint"]
    print(f"exported {manifest.count} records to {args.output} (sha256 {manifest.sha256})")
    print(f"manifest: {manifest.path}")
    if covered is None and manifest.count:
        print("note: no checkpoint covers these records yet (`tollhouse audit checkpoint create`)")
    return 0


def show(args: argparse.Namespace) -> int:
    context = open_database(load(args))
    actor = acting_principal(context, require_key=True)
    for record in _reader(context).show(actor, args.request_id):
        sys.stdout.buffer.write(
            orjson.dumps(record, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z)
        )
        sys.stdout.buffer.write(b"\n")
    return 0


def forget(args: argparse.Namespace) -> int:
    context = open_database(load(args))
    actor = acting_principal(context)
    target = f"app {args.app!r}" if args.app else f"end user {args.user!r}"
    if not args.yes:
        answer = input(f"destroy the content keys of {target} for good? type 'forget': ")
        if answer.strip() != "forget":
            print("nothing done")
            return 1
    done = Retention(context.sessions).forget(actor, app=args.app, end_user=args.user)
    print(
        f"forgot {target}: {done.keys_destroyed} data keys destroyed, "
        f"{done.plaintext_deleted} plaintext contents deleted; the chains still verify"
    )
    return 0


def purge(args: argparse.Namespace) -> int:
    context = open_database(load(args))
    actor = acting_principal(context)
    deleted = Retention(context.sessions).purge(actor, args.older_than)
    print(f"purged the content of {deleted} records older than {args.older_than.days} days")
    return 0


def keygen(args: argparse.Namespace) -> int:
    target: Path = args.signing_key or args.master_key
    if target.exists():
        raise ConfigError(f"{target} exists; refusing to overwrite a key")
    if args.master_key:
        _write_secret(target, (MasterKey.generate() + "\n").encode("ascii"))
        print(f"wrote a master key to {target}; set audit.master_key_file to it and back it up")
        return 0
    private, public = generate_signing_key()
    _write_secret(target, private)
    public_path = target.with_name(target.name + ".pub")
    public_path.write_bytes(public)
    print(f"wrote the signing key to {target} and its public key to {public_path}")
    return 0


def _write_secret(path: Path, data: bytes) -> None:
    path.touch(mode=0o600)
    path.write_bytes(data)


def tail(args: argparse.Namespace) -> int:
    context = open_database(load(args))
    rows = [
        [
            f"{r.recorded_at:%Y-%m-%d %H:%M:%S}",
            r.request_id[-12:],
            r.app,
            r.requested_model or "-",
            r.upstream or "-",
            r.status,
            f"{r.input_tokens or 0}/{r.output_tokens or 0}{'~' if r.usage_estimated else ''}",
            f"{r.cost:f}" if r.cost is not None else "-",
            f"{r.latency_ms:.0f}" if r.latency_ms is not None else "-",
        ]
        for r in recent_completions(context.sessions, args.lines)
    ]
    headers = [
        "time (UTC)",
        "request",
        "app",
        "model",
        "upstream",
        "status",
        "tokens in/out",
        "cost",
        "ms",
    ]
    print(render_table(headers, rows))
    return 0
