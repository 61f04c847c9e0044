"""Policy documents as text: parsing YAML with errors that name the field, and the
canonical JSON form whose SHA-256 identifies a published version."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from governance.errors import InvalidRequestError
from governance.policy.schema import Policy


class PolicyDocumentError(InvalidRequestError):
    """A policy document is not valid YAML or does not match the policy schema."""

    code = "invalid_policy"


def canonical_json(body: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a policy body: sorted keys, no whitespace, UTF-8."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical(policy: Policy) -> bytes:
    """The canonical JSON of a policy (what its version digest covers)."""
    return canonical_json(policy.model_dump(mode="json"))


def digest(policy: Policy) -> str:
    """SHA-256 (hex) of `canonical`."""
    return hashlib.sha256(canonical(policy)).hexdigest()


def parse_policy(text: str, source: str) -> Policy:
    """Parse and validate policy YAML; errors name ``source`` and each field's path."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyDocumentError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise PolicyDocumentError(f"{source}: the top level must be a mapping (name, defaults…)")
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyDocumentError(describe(source, exc)) from exc


def describe(source: str, exc: ValidationError) -> str:
    """One line per problem: ``defaults.pii.entities.PERSON.external: <message>``."""
    lines = [f"{source}: invalid policy ({exc.error_count()} problem(s)):"]
    for error in exc.errors(include_url=False):
        path = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
        ).lstrip(".")
        lines.append(f"  {path or '(top level)'}: {error['msg']}")
    return "\n".join(lines)
