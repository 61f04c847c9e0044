"""The active policy (and shadow candidate) of this process, kept current from the database.

Every process polls the same row (`PolicyStore.state`) every ``reload_interval_s``, so
all processes sharing a database switch to a newly activated version within that
interval. Engines are built once per version and kept, so a rollback is instant.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from governance.errors import PolicyUnavailableError, TollhouseError
from governance.pii import CustomRecognizers
from governance.policy.engine import PolicyEngine
from governance.policy.schema import Destination, RecognizerSpec
from governance.policy.store import PolicyStore

log = logging.getLogger(__name__)

RecognizerBuilder = Callable[[Sequence[RecognizerSpec]], CustomRecognizers]


@dataclass(frozen=True, slots=True)
class ActivePolicies:
    active: PolicyEngine | None
    shadow: PolicyEngine | None
    generation: int
    problem: str | None = None  # why there is no active engine, for the 503 message


class PolicyCache:
    def __init__(
        self,
        store: PolicyStore,
        name: str,
        destinations_of: Mapping[str, frozenset[Destination]],
        build_recognizers: RecognizerBuilder | None,
        interval_s: float,
    ) -> None:
        self._store = store
        self._name = name
        self._destinations_of = destinations_of
        self._build_recognizers = build_recognizers
        self._interval_s = interval_s
        self._engines: dict[int, PolicyEngine] = {}
        self._current = ActivePolicies(None, None, -1, "the policy has not been loaded yet")

    @property
    def name(self) -> str:
        return self._name

    def current(self) -> ActivePolicies:
        return self._current

    def active(self) -> PolicyEngine:
        """The enforcing engine, or a 503 saying why there is none."""
        current = self._current
        if current.active is None:
            raise PolicyUnavailableError(
                f"No usable active policy '{self._name}': {current.problem}. Requests are "
                "refused until one is activated (tollhouse policy activate NAME@VERSION)."
            )
        return current.active

    def refresh(self) -> None:
        """Re-read the active and shadow versions (blocking: call it off the loop)."""
        state = self._store.state(self._name)
        if state.generation == self._current.generation and self._current.active is not None:
            return
        problem = None
        active = None
        if state.active is None:
            problem = "no version is active"
        else:
            try:
                active = self._engine(state.active)
            except TollhouseError as error:
                problem = error.message
                log.error("policy %s v%s is unusable: %s", self._name, state.active, problem)
        shadow = None
        if state.shadow is not None:
            try:
                shadow = self._engine(state.shadow)
            except TollhouseError as error:
                log.error("shadow policy %s v%s is unusable: %s", self._name, state.shadow, error)
        if (active and active.version) != (self._current.active and self._current.active.version):
            log.info("policy %s: version %s now active", self._name, state.active)
        self._current = ActivePolicies(active, shadow, state.generation, problem)

    def _engine(self, version: int) -> PolicyEngine:
        engine = self._engines.get(version)
        if engine is None:
            policy = self._store.load(self._name, version)
            recognizers = None
            if policy.recognizers and self._build_recognizers is not None:
                recognizers = self._build_recognizers(policy.recognizers)
            engine = PolicyEngine(policy, version, self._destinations_of, recognizers)
            self._engines[version] = engine
        return engine

    async def watch(self) -> None:
        """Poll forever (a lifespan task); a failed poll keeps the last known versions."""
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:
                # The database is unreachable or a version failed to load: requests keep
                # the last known versions (the audit writer fails closed on its own if the
                # database is really gone). Logged with the cause so it is not silent.
                log.warning(
                    "could not re-read policy %s; keeping the current one",
                    self._name,
                    exc_info=True,
                )
