"""Comparing policy versions: a canonical YAML rendering and its unified diff.

The rendering is of the full validated document (defaults included) with sorted keys, so
two versions differ in the diff exactly when their canonical JSON differs, however their
sources were formatted.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import yaml


def render(body: Mapping[str, Any]) -> str:
    """A policy body (``model_dump(mode="json")``) as canonical YAML."""
    return yaml.safe_dump(
        dict(body), sort_keys=True, default_flow_style=False, allow_unicode=True, width=100
    )


def unified(
    before: Mapping[str, Any], after: Mapping[str, Any], before_label: str, after_label: str
) -> str:
    """The unified diff from ``before`` to ``after`` (empty when they are the same)."""
    return "".join(
        difflib.unified_diff(
            render(before).splitlines(keepends=True),
            render(after).splitlines(keepends=True),
            fromfile=before_label,
            tofile=after_label,
        )
    )
