"""Counting tokens for answers whose upstream reported no usage.

Records counted this way are marked ``usage_estimated``. An upstream may name a Hugging
Face ``tokenizer.json`` (``upstreams[].tokenizer_file``: the file an internal vLLM model
ships with, so counts match what that server bills); without one, a built-in estimate
counts words and punctuation, splitting long words into four-character pieces, which
tracks BPE tokenizers on English text closely enough to flag spend. Neither downloads
anything: the tokenizer is read from the local file only.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Protocol

from governance.errors import ConfigError

log = logging.getLogger(__name__)
_PIECES = re.compile(r"\w+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    return sum(1 + (len(piece) - 1) // 4 for piece in _PIECES.findall(text))


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...


class EstimatingCounter:
    """The built-in estimate (`estimate_tokens`)."""

    def count(self, text: str) -> int:
        return estimate_tokens(text)


class TokenizerCounter:
    """Counts with a model's own tokenizer, loaded from its ``tokenizer.json``."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the library raises a bare Exception for bad files
            raise ConfigError(
                f"{path}: not a readable tokenizer.json ({exc}); fix "
                "upstreams[].tokenizer_file or remove it to use the built-in estimate"
            ) from exc

    def count(self, text: str) -> int:
        """Tokens in ``text``; the built-in estimate if the tokenizer fails on it (a
        count is only ever an estimate, never a reason to lose the record)."""
        try:
            return len(self._tokenizer.encode(text, add_special_tokens=False).ids)
        except Exception:
            log.warning("the tokenizer failed on a text; counted with the estimate instead")
            return estimate_tokens(text)


def token_counter(path: str | None) -> TokenCounter:
    return EstimatingCounter() if path is None else TokenizerCounter(Path(path))
