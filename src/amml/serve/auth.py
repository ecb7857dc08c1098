"""API keys: created once, shown once, stored only as a hash; scoped and revocable.

A key reads ``amml_<key id>_<secret>``. The store keeps the key id, ``sha256:`` of the
secret (a 32-byte random token, so a fast hash is enough: there is nothing to guess), the
scope and the models it may use. Scopes rank ``read`` (list and describe models) <
``predict`` (also forecast and detect) < ``admin`` (everything). A server checks keys
against an in-memory copy of the table refreshed every few seconds (and at once, at most
once a second, when it meets a key id it does not know), so a request costs no database
work; a revocation takes effect within the refresh interval.

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

import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from amml._exceptions import ApiKeyError
from amml.store import Store
from amml.store.metadata.schema import api_keys

SCOPES = ("read", "predict", "admin")
_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}
PREFIX = "amml"


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    scope: str
    models: tuple[str, ...] | None  # None: every model
    label: str
    created_at: float
    revoked_at: float | None
    secret_hash: str = ""

    def allows(self, scope: str, model: str | None = None) -> bool:
        """Whether this key may act with ``scope`` (on ``model``, when given)."""
        if self.revoked_at is not None or _RANK[self.scope] < _RANK[scope]:
            return False
        return model is None or self.models is None or model in self.models

    def allows_model(self, model: str) -> bool:
        return self.models is None or model in self.models

    def to_json(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "scope": self.scope,
                "models": "*" if self.models is None else list(self.models),
                "label": self.label, "created_at": self.created_at,
                "revoked_at": self.revoked_at}


def hash_secret(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """``amml_<id>_<secret>`` to (id, secret), or None when it is not shaped like a key."""
    parts = token.strip().split("_")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def _row_to_key(row: Any) -> ApiKey:
    models = None if row.models in ("*", '"*"', "") else tuple(json.loads(row.models))
    return ApiKey(row.key_id, row.scope, models, row.label or "", row.created_at,
                  row.revoked_at, row.secret_hash)


def create_key(store: Store, *, scope: str = "predict", models: list[str] | None = None,
               label: str = "") -> tuple[ApiKey, str]:
    """A new key; returns it and the token to give the client (shown once, never stored)."""
    if scope not in _RANK:
        raise ApiKeyError(f"unknown scope '{scope}' (scopes: {', '.join(SCOPES)})")
    key_id = secrets.token_hex(6)
    secret = secrets.token_hex(32)
    wanted = sorted(set(models)) if models else None
    row = dict(key_id=key_id, secret_hash=hash_secret(secret), scope=scope,
               models="*" if wanted is None else json.dumps(wanted), label=label,
               created_at=time.time(), revoked_at=None)
    with store.metadata.engine.begin() as conn:
        conn.execute(insert(api_keys), [row])
    key = ApiKey(key_id, scope, None if wanted is None else tuple(wanted), label,
                 row["created_at"], None)
    return key, f"{PREFIX}_{key_id}_{secret}"


def list_keys(store: Store, *, include_revoked: bool = True) -> list[ApiKey]:
    query = select(api_keys).order_by(api_keys.c.created_at)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    with store.metadata.engine.connect() as conn:
        return [_row_to_key(row) for row in conn.execute(query)]


def revoke_key(store: Store, key_id: str) -> ApiKey:
    """Revoke a key by id (or a unique prefix of it); revoking twice is harmless."""
    keys = [k for k in list_keys(store) if k.key_id.startswith(key_id)] if key_id else []
    exact = [k for k in keys if k.key_id == key_id]
    keys = exact or keys
    if not keys:
        raise ApiKeyError(f"no API key with id '{key_id}'")
    if len(keys) > 1:
        raise ApiKeyError(f"'{key_id}' matches several keys "
                          f"({', '.join(k.key_id for k in keys)}); give the full id")
    key = keys[0]
    if key.revoked_at is None:
        now = time.time()
        with store.metadata.engine.begin() as conn:
            conn.execute(update(api_keys).where(api_keys.c.key_id == key.key_id)
                         .values(revoked_at=now))
        key = ApiKey(key.key_id, key.scope, key.models, key.label, key.created_at, now)
    return key


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
