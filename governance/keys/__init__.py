"""API keys of principals: creation, expiry, rotation, revocation, constant-time lookup.

`Principal` is `governance.access.Principal`, re-exported here for the callers that
authenticate keys.
"""

from governance.access.roles import Principal
from governance.keys.service import KeyService, KeyStateError, hash_secret, prefix_of
from governance.keys.views import CreatedKey, Grant, KeyInfo

__all__ = [
    "CreatedKey",
    "Grant",
    "KeyInfo",
    "KeyService",
    "KeyStateError",
    "Principal",
    "hash_secret",
    "prefix_of",
]
