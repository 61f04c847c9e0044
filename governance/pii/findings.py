"""What PII analysis returns, independent of the engine that found it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected entity: ``text[start:end]`` is of ``entity_type`` with ``score``."""

    entity_type: str
    start: int
    end: int
    score: float


class CustomRecognizers(Protocol):
    """Recognizers built from a policy's ``recognizers`` section (opaque to callers)."""

    @property
    def entities(self) -> frozenset[str]: ...


class TextAnalyzer(Protocol):
    """Finds PII in text. Implementations are thread-safe; calls block (run off the loop)."""

    def analyze(self, text: str, custom: CustomRecognizers | None = None) -> Sequence[Finding]: ...
