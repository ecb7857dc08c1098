"""Ed25519 signing keys for the ledger.

Keys live outside the artifact folder, in ``AMML_KEY_DIR`` (default ``~/.amml/keys``): the
folder is mode 0700, private keys 0600 (PKCS#8 PEM), public keys beside them. A key's id is
the first 16 hex digits of the sha256 of its raw public key. The file ``active`` names the key
that signs new entries; ``rotate`` makes a new one active (the ledger records the hand-over).
Public keys in this folder are the verifier's trust store.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from amml._exceptions import ConfigurationError


def default_key_dir() -> Path:
    return Path(os.environ.get("AMML_KEY_DIR") or Path.home() / ".amml" / "keys")


def key_id_of(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_hex(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.Raw,
                               serialization.PublicFormat.Raw).hex()


def public_from_hex(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    def sign(self, message: bytes) -> str:
        return self.private.sign(message).hex()


def verify_signature(public: Ed25519PublicKey, signature_hex: str, message: bytes) -> bool:
    try:
        public.verify(bytes.fromhex(signature_hex), message)
        return True
    except (InvalidSignature, ValueError):
        return False


class KeyRing:
    """The signing keys of this installation and the public keys it trusts."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_key_dir()

    def _ensure_folder(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)

    def _private_path(self, key_id: str) -> Path:
        return self.folder / f"ed25519-{key_id}.pem"

    def _public_path(self, key_id: str) -> Path:
        return self.folder / f"ed25519-{key_id}.pub"

    def create(self) -> SigningKey:
        """Generate a key, store it with restrictive permissions and make it active."""
        self._ensure_folder()
        private = Ed25519PrivateKey.generate()
        key = SigningKey(key_id_of(private.public_key()), private)
        pem = private.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        path = self._private_path(key.key_id)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        self._public_path(key.key_id).write_text(public_hex(key.public) + "\n")
        self._set_active(key.key_id)
        return key

    def _set_active(self, key_id: str) -> None:
        tmp = self.folder / ".active.tmp"
        tmp.write_text(key_id + "\n")
        os.replace(tmp, self.folder / "active")

    def active(self) -> SigningKey:
        """The key that signs new entries, created on first use."""
        marker = self.folder / "active"
        if not marker.exists():
            return self.create()
        return self.private(marker.read_text().strip())

    def private(self, key_id: str) -> SigningKey:
        path = self._private_path(key_id)
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            raise ConfigurationError(f"signing key {key_id} is not in {self.folder}") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise ConfigurationError(f"{path} is not an Ed25519 key")
        mode = path.stat().st_mode & 0o077
        if mode:
            raise ConfigurationError(f"{path} is readable by others (mode {oct(mode)}); "
                                     f"run: chmod 600 {path}")
        return SigningKey(key_id, private)

    def has_private(self, key_id: str) -> bool:
        return self._private_path(key_id).exists()

    def trusted(self, key_id: str) -> Ed25519PublicKey | None:
        path = self._public_path(key_id)
        if not path.exists():
            return None
        public = public_from_hex(path.read_text().strip())
        return public if key_id_of(public) == key_id else None

    def trust(self, public_key_hex: str) -> str:
        """Add a public key (hex of the raw 32 bytes) to the trust store; returns its id."""
        self._ensure_folder()
        public = public_from_hex(public_key_hex.strip())
        key_id = key_id_of(public)
        self._public_path(key_id).write_text(public_hex(public) + "\n")
        return key_id

    def rotate(self) -> tuple[SigningKey, SigningKey]:
        """Make a new key active; returns (old, new). Ledgers record the hand-over."""
        old = self.active()
        return old, self.create()
