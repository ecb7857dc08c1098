"""API keys in the store: created once, shown once, kept only as a hash; scoped, revocable.

A key reads ``amml_<key id>_<secret>``. The ``api_keys`` table keeps the key id, ``sha256:``
of the secret (a 32-byte random token, so a fast hash is enough: there is nothing to guess),
the scope and the models it may use. Scopes rank ``read`` (list and describe models) <
``predict`` (also forecast and detect) < ``admin`` (everything). Checking requests against
these keys is the server's business (:mod:`amml.serve.auth`); this module is the data.

>>> import tempfile
>>> from amml.store import open_store
>>> store = open_store(tempfile.mkdtemp())
>>> key, token = create_key(store, scope="predict", models=["oil"], label="dashboard")
>>> token.startswith(f"amml_{key.key_id}_"), key.allows("predict", "oil")
(True, True)
>>> [k.label for k in list_keys(store)]
['dashboard']
>>> revoke_key(store, key.key_id).revoked_at is not None
True
>>> list_keys(store, include_revoked=False)
[]
>>> store.close()
"""

from __future__ import annotations

import hashlib
import json
import secrets
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
