"""Running PII analysis off the event loop, with a deadline, failing closed.

One long prompt must not stall every other request, so analysis runs on a small
thread pool. If the analyzer raises or misses its deadline the caller gets a
`PiiUnavailableError`: a request the policy protects is refused, never forwarded as is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from governance.errors import PiiUnavailableError
from governance.pii import CustomRecognizers, Finding, TextAnalyzer

log = logging.getLogger(__name__)


class PiiGate:
    def __init__(
        self,
        analyzer: TextAnalyzer | Callable[[], TextAnalyzer],
        timeout_s: float,
        threads: int,
    ) -> None:
        """``analyzer`` may be a factory, called once on first use (``pii.preload: false``)."""
        self._analyzer = analyzer if not callable(analyzer) else None
        self._factory = analyzer if callable(analyzer) else None
        self._timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tollhouse-pii")

    async def analyze(
        self, texts: Sequence[str], custom: CustomRecognizers | None = None
    ) -> list[list[Finding]]:
        """Findings for each text, in order."""
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._pool, self._analyze_all, list(texts), custom)
        try:
            return await asyncio.wait_for(job, self._timeout_s)
        except TimeoutError as exc:
            raise PiiUnavailableError(
                f"PII analysis did not finish within {self._timeout_s:g} s; the request was "
                "refused because the policy protects it."
            ) from exc
        except PiiUnavailableError:
            raise
        except Exception as exc:
            log.exception("PII analysis failed")
            raise PiiUnavailableError(
                "PII analysis failed; the request was refused because the policy protects it."
            ) from exc

    def _analyze_all(
        self, texts: list[str], custom: CustomRecognizers | None
    ) -> list[list[Finding]]:
        analyzer = self._analyzer
        if analyzer is None:
            assert self._factory is not None
            analyzer = self._analyzer = self._factory()
        return [list(analyzer.analyze(t, custom)) if t.strip() else [] for t in texts]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
