"""Content-addressed artifact storage.

An artifact's name is the sha256 of its bytes. Backends implement three small methods
(``_exists``, ``_read``, ``_write_atomic``); the base class adds serialization and an in-process
memo so a value handed from one step to the next in the same process is not re-read.
"""

from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from amml._exceptions import ArtifactNotFoundError
from amml.store.artifacts.serializers import deserialize, serialize

MEMO_SIZE = 64


@dataclass(frozen=True)
class ArtifactRef:
    """A stored artifact: its digest (sha256 of the bytes), type and size in bytes."""

    digest: str
    type: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "type": self.type, "size": self.size}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ArtifactRef:
        return cls(data["digest"], data["type"], int(data["size"]))


def _freeze(value: Any) -> Any:
    # Values in the memo are shared between steps: make numpy data read-only so an op that
    # mutates its input fails loudly instead of corrupting another step (pandas >= 3 copies
    # on write already).
    import numpy as np

    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    return value


class ArtifactStore(ABC):
    """Base class of artifact backends."""

    url: str

    def __init__(self) -> None:
        self._memo: OrderedDict[str, Any] = OrderedDict()
        self._memo_lock = threading.Lock()

    # -- backend -------------------------------------------------------------------------
    @abstractmethod
    def _exists(self, digest: str) -> bool: ...

    @abstractmethod
    def _read(self, digest: str) -> bytes: ...

    @abstractmethod
    def _write_atomic(self, digest: str, data: bytes) -> None:
        """Make ``data`` visible under ``digest`` all at once (never half-written)."""

    def uri(self, digest: str) -> str:
        return f"{self.url.rstrip('/')}/{digest[:2]}/{digest}"

    def cleanup(self) -> int:
        """Remove leftovers of interrupted writes; returns how many were removed."""
        return 0

    # -- bytes ---------------------------------------------------------------------------
    def exists(self, digest: str) -> bool:
        return digest in self._memo or self._exists(digest)

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if not self._exists(digest):
            self._write_atomic(digest, data)
        return digest

    def get_bytes(self, digest: str) -> bytes:
        try:
            return self._read(digest)
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"artifact {digest[:12]} is not in {self.url}") from None

    # -- values --------------------------------------------------------------------------
    def save(self, value: Any, declared_type: str = "any") -> ArtifactRef:
        kind, data = serialize(value, declared_type)
        digest = self.put_bytes(data)
        self._remember(digest, value)
        return ArtifactRef(digest, kind, len(data))

    def load(self, ref: ArtifactRef) -> Any:
        with self._memo_lock:
            if ref.digest in self._memo:
                self._memo.move_to_end(ref.digest)
                return self._memo[ref.digest]
        value = deserialize(ref.type, self.get_bytes(ref.digest))
        self._remember(ref.digest, value)
        return value

    def _remember(self, digest: str, value: Any) -> None:
        with self._memo_lock:
            self._memo[digest] = _freeze(value)
            self._memo.move_to_end(digest)
            while len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)
