"""Dashboard sign-in: an API key once, then a signed session cookie; CSRF tokens for writes.

The cookie is stateless, so every worker of ``amml serve --ui --workers N`` accepts it:
``<key id>.<expiry>.<mac>``, the MAC an HMAC-SHA256 keyed with this installation's dashboard
secret and the key's stored hash. Revoking the key ends its sessions (the key drops out of
the key cache, within its refresh interval); so does replacing the secret file. A write
action (promote, alias) carries a CSRF token derived from the cookie, checked in constant
time; the cookie is also ``SameSite=Strict`` and ``HttpOnly``.

>>> import tempfile
>>> from amml.store import open_store
>>> from amml.serve.auth import create_key
>>> store = open_store(tempfile.mkdtemp())
>>> _, token = create_key(store, scope="read")
>>> sessions = Sessions(store, secret=b"s" * 32)
>>> key = sessions.login(token)
>>> cookie = sessions.cookie_for(key)
>>> sessions.key_for(cookie).key_id == key.key_id
True
>>> sessions.check_csrf(cookie, sessions.csrf_token(cookie)), sessions.check_csrf(cookie, "x")
(True, False)
>>> sessions.key_for(cookie[:-1] + ("0" if cookie[-1] != "0" else "1")) is None
True
>>> store.close()
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from amml.serve.auth import ApiKey, KeyCache
from amml.store import Store
from amml.store.keys import default_key_dir

COOKIE = "amml_session"
#: Sessions last a working day; signing in again is one paste of the key.
SESSION_S = 12 * 3600
SECRET_FILE = "dashboard-session.secret"


def installation_secret(folder: Path | None = None) -> bytes:
    """The dashboard's signing secret, kept beside the ledger keys (``AMML_KEY_DIR``),
    created once with mode 0600; every worker and restart reads the same one."""
    folder = folder or default_key_dir()
    path = folder / SECRET_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker made it first
        time.sleep(0.05)
        return path.read_bytes()
    with os.fdopen(handle, "wb") as out:
        out.write(secrets.token_bytes(32))
    return path.read_bytes()


class SessionKeys(KeyCache):
    """The key cache, also looked up by key id (a session names its key, not its secret)."""

    def by_id(self, key_id: str) -> ApiKey | None:
        self.refresh_if_stale()
        return self._keys.get(key_id)


class Sessions:
    def __init__(self, store: Store, *, secret: bytes | None = None,
                 refresh_s: float = 2.0, lifetime_s: float = SESSION_S) -> None:
        self.keys = SessionKeys(store, refresh_s=refresh_s)
        self.secret = secret if secret is not None else installation_secret()
        self.lifetime_s = lifetime_s

    def login(self, token: str) -> ApiKey | None:
        """The key of a pasted token when it may read; None otherwise."""
        self.keys.refresh_if_stale()
        key = self.keys.authenticate(token.strip())
        return key if key is not None and key.allows("read") else None

    def _mac(self, key: ApiKey, message: str) -> str:
        material = self.secret + key.secret_hash.encode()
        return hmac.new(material, message.encode(), hashlib.sha256).hexdigest()

    def cookie_for(self, key: ApiKey) -> str:
        expires = int(time.time() + self.lifetime_s)
        body = f"{key.key_id}.{expires}"
        return f"{body}.{self._mac(key, body)}"

    def key_for(self, cookie: str | None) -> ApiKey | None:
        """The live key a session cookie belongs to; None when missing, forged, expired or
        its key was revoked."""
        if not cookie:
            return None
        parts = cookie.split(".")
        if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) < time.time():
            return None
        key = self.keys.by_id(parts[0])
        if key is None:
            return None
        if not hmac.compare_digest(parts[2], self._mac(key, f"{parts[0]}.{parts[1]}")):
            return None
        return key

    def csrf_token(self, cookie: str) -> str:
        key = self.key_for(cookie)
        return "" if key is None else self._mac(key, "csrf." + cookie)

    def check_csrf(self, cookie: str | None, token: str | None) -> bool:
        if not cookie or not token:
            return False
        expected = self.csrf_token(cookie)
        return bool(expected) and hmac.compare_digest(expected, token)
