"""PII detection (Presidio), redaction and reversible pseudonymisation."""

from governance.pii.findings import CustomRecognizers, Finding, TextAnalyzer

__all__ = ["CustomRecognizers", "Finding", "TextAnalyzer"]
