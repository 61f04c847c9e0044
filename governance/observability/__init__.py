"""Observability without leaks: scrubbed structured logs tied to requests and traces."""

from governance.observability.logs import (
    REQUEST_ID,
    JsonFormatter,
    ScrubbingFilter,
    configure_logging,
)
from governance.observability.scrub import Scrubber

__all__ = ["REQUEST_ID", "JsonFormatter", "Scrubber", "ScrubbingFilter", "configure_logging"]
