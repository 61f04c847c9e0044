"""Bearer-key authentication with a short-lived cache in front of the database.

The cache keeps the hot path off the database; a revoked key or a disabled principal
stops working within ``auth_cache_ttl_s``, and no entry outlives its key's expiry.
Lookups run in a worker thread, never on the event loop. If the key store cannot be
read, the request is refused (fail closed). A valid key whose principal lacks the
route's permission gets 403 ``role_not_permitted``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable

from governance.access import Permission
from governance.errors import AuthenticationError, ServiceUnavailableError
from governance.keys import Grant, KeyService, Principal, hash_secret

_MAX_CACHED = 50_000


class Authenticator:
    def __init__(
        self,
        keys: KeyService,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._keys = keys
        self._ttl_s = ttl_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._cache: dict[str, tuple[Principal | None, float]] = {}

    async def authenticate(
        self, authorization: str | None, permission: Permission | None = Permission.PROXY
    ) -> Principal:
        """The principal of the bearer key, which must grant ``permission`` (the proxy
        routes: ``proxy``, i.e. the ``app`` role; None: any role, checked later by the
        service the request reaches)."""
        secret = _bearer(authorization)
        digest = hash_secret(secret)
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            principal = cached[0]
        else:
            try:
                grant = await asyncio.to_thread(self._keys.lookup, secret)
            except Exception as exc:  # the key store is down: refuse, never guess
                raise ServiceUnavailableError(
                    "cannot verify the API key right now", code="key_store_unavailable"
                ) from exc
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            principal = None if grant is None else grant.principal
            self._cache[digest] = (principal, now + self._lifetime(grant))
        if principal is None:
            raise AuthenticationError("Incorrect API key provided.")
        if permission is not None:
            principal.require(permission)
        return principal

    def _lifetime(self, grant: Grant | None) -> float:
        """Seconds to cache a lookup: the TTL, cut short by the key's expiry."""
        if grant is None or grant.expires_at is None:
            return self._ttl_s
        left = (grant.expires_at - self._wall_clock()).total_seconds()
        return max(0.0, min(self._ttl_s, left))


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
