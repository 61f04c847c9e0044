"""Client API keys: creation, lookup by hash, revocation."""

from governance.keys.service import CreatedKey, KeyService, Principal, hash_secret

__all__ = ["CreatedKey", "KeyService", "Principal", "hash_secret"]
