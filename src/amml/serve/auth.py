"""Checking requests against API keys: a server keeps an in-memory copy of the key table,
refreshed every few seconds (and at once, at most once a second, when it meets a key id it
does not know), so a request costs no database work; a revocation takes effect within the
refresh interval. The keys themselves (create, list, revoke) are data in the store
(:mod:`amml.store.api_keys`), re-exported here.

>>> import tempfile
>>> from amml.store import open_store
>>> store = open_store(tempfile.mkdtemp())
>>> key, token = create_key(store, scope="predict", models=["oil"], label="dashboard")
>>> token.startswith(f"amml_{key.key_id}_")
True
>>> cache = KeyCache(store)
>>> found = cache.authenticate(token)
>>> found.allows("predict", "oil"), found.allows("predict", "gas"), found.allows("admin")
(True, False, False)
>>> cache.authenticate(token[:-1] + "x") is None
True
>>> _ = revoke_key(store, key.key_id)
>>> cache.refresh(); cache.authenticate(token) is None
True
>>> store.close()
"""

from __future__ import annotations

import hmac
import threading
import time

from amml._exceptions import ApiKeyError
from amml.store import Store
from amml.store.api_keys import (
    PREFIX,
    SCOPES,
    ApiKey,
    create_key,
    hash_secret,
    list_keys,
    revoke_key,
)

# create, list and revoke live in the store; they stay importable from here, where the CLI and
# the tests have always found them
__all__ = ["PREFIX", "SCOPES", "ApiKey", "ApiKeyError", "KeyCache", "create_key", "hash_secret",
           "list_keys", "parse_token", "revoke_key"]


def parse_token(token: str) -> tuple[str, str] | None:
    """``amml_<id>_<secret>`` to (id, secret), or None when it is not shaped like a key."""
    parts = token.strip().split("_")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


class KeyCache:
    """The key table in memory, for checking requests without touching the database."""

    def __init__(self, store: Store, refresh_s: float = 2.0, miss_refresh_s: float = 1.0):
        self.store = store
        self.refresh_s = refresh_s
        self.miss_refresh_s = miss_refresh_s
        self._keys: dict[str, ApiKey] = {}
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def refresh(self) -> None:
        keys = {k.key_id: k for k in list_keys(self.store, include_revoked=False)}
        self._keys = keys  # one reference assignment: readers see the old or the new table
        self._loaded_at = time.monotonic()

    def refresh_if_stale(self) -> None:
        if time.monotonic() - self._loaded_at >= self.refresh_s:
            self.refresh()

    def authenticate(self, token: str) -> ApiKey | None:
        """The key a token belongs to, or None (malformed, unknown, wrong secret, revoked)."""
        parsed = parse_token(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        key = self._keys.get(key_id)
        if key is None and time.monotonic() - self._loaded_at >= self.miss_refresh_s:
            with self._lock:  # a key created a moment ago: look once, at most every second
                if time.monotonic() - self._loaded_at >= self.miss_refresh_s:
                    self.refresh()
            key = self._keys.get(key_id)
        if key is None or not hmac.compare_digest(key.secret_hash, hash_secret(secret)):
            return None
        return key
