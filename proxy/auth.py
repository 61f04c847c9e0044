"""Bearer-key authentication with a short-lived cache in front of the database.

The cache keeps the hot path off the database; a revoked key stops working within
``auth_cache_ttl_s``. Lookups run in a worker thread, never on the event loop. If the
key store cannot be read, the request is refused (fail closed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from governance.errors import AuthenticationError, ServiceUnavailableError
from governance.keys import KeyService, Principal, hash_secret

_MAX_CACHED = 50_000


class Authenticator:
    def __init__(
        self,
        keys: KeyService,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[Principal | None, float]] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        secret = _bearer(authorization)
        digest = hash_secret(secret)
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            principal = cached[0]
        else:
            try:
                principal = await asyncio.to_thread(self._keys.authenticate, secret)
            except Exception as exc:  # the key store is down: refuse, never guess
                raise ServiceUnavailableError(
                    "cannot verify the API key right now", code="key_store_unavailable"
                ) from exc
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[digest] = (principal, now + self._ttl_s)
        if principal is None:
            raise AuthenticationError("Incorrect API key provided.")
        return principal


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationError(
            "You didn't provide an API key. Send 'Authorization: Bearer <key>'.",
            code="missing_api_key",
        )
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationError("The Authorization header must be 'Bearer <key>'.")
    return secret.strip()
