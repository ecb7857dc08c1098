"""Content-addressed artifact storage.

An artifact's name is the sha256 of its bytes, and every read checks that name against the
bytes read (hashed as they arrive, like git's object store or an OCI registry's blobs). A file
that fails the check is never returned: it is moved aside to ``quarantine/`` and
:class:`ArtifactCorruptError` names it; the next run that produces those bytes writes them
again, and the runner treats a cached output that fails the check as a miss.

Backends implement a few small methods (``_exists``, ``_read``, ``_write_atomic``, and for
verification ``_hash_stored``, ``_quarantine`` and ``digests``); the base class adds the
checks, serialization and an in-process memo so a value handed from one step to the next in
the same process is not re-read.
"""

from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from amml._exceptions import ArtifactCorruptError, ArtifactNotFoundError
from amml.store.artifacts.serializers import deserialize, serialize

MEMO_SIZE = 64
#: Bytes hashed per chunk when a stored file is checked without keeping its bytes.
HASH_CHUNK = 4 << 20
QUARANTINE = "quarantine"
#: Types whose decoders only build data (pyarrow, numpy without pickle): for these the
#: digest is checked alongside decoding, at or above this size (below it a thread costs more
#: than it saves). Anything else is checked before it is decoded.
OVERLAP_TYPES = frozenset({"table", "array"})
OVERLAP_MIN_BYTES = 1 << 20


def hash_stream(handle: BinaryIO) -> tuple[str, int]:
    """sha256 hex digest and size of what ``handle`` holds, read in chunks (constant memory)."""
    sha = hashlib.sha256()
    size = 0
    while chunk := handle.read(HASH_CHUNK):
        sha.update(chunk)
        size += len(chunk)
    return sha.hexdigest(), size


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
    #: Whether reads of big tables and arrays hash alongside decoding (local files). A backend
    #: that hashes as the bytes arrive (a download) sets it False.
    overlap_check = True

    def __init__(self) -> None:
        self._memo: OrderedDict[str, Any] = OrderedDict()
        self._memo_lock = threading.Lock()

    # -- backend -------------------------------------------------------------------------
    @abstractmethod
    def _exists(self, digest: str) -> bool: ...

    @abstractmethod
    def _read(self, digest: str) -> bytes:
        """The stored bytes, unchecked; ``FileNotFoundError`` when there are none."""

    @abstractmethod
    def _write_atomic(self, digest: str, data: bytes) -> None:
        """Make ``data`` visible under ``digest`` all at once (never half-written); on failure
        leave nothing behind and raise :class:`StoreError`."""

    def _read_hashed(self, digest: str) -> tuple[bytes, str]:
        """The stored bytes and their sha256. Backends that receive bytes in pieces override
        this to hash each piece as it arrives instead of making a second pass."""
        data = self._read(digest)
        return data, hashlib.sha256(data).hexdigest()

    def _hash_stored(self, digest: str) -> tuple[str, int]:
        """sha256 and size of the stored bytes without keeping them; ``FileNotFoundError``
        when there are none. Backends override this to stream."""
        data = self._read(digest)
        return hashlib.sha256(data).hexdigest(), len(data)

    def _same_bytes(self, digest: str, data: bytes) -> bool:
        """Whether the stored copy holds exactly ``data`` (cheaper than hashing it again)."""
        try:
            return self._read(digest) == data
        except FileNotFoundError:
            return False

    def _quarantine(self, digest: str) -> str | None:
        """Move the stored copy aside (where to is returned), so that no read returns it and
        the next write of the right bytes heals it; None if it was gone already."""
        return None

    def digests(self) -> Iterator[str]:
        """Every digest stored (for ``amml store verify``)."""
        return iter(())

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
        if self._exists(digest):
            if self._same_bytes(digest, data):
                return digest
            # the stored copy is damaged: set it aside and write the right bytes in its place
            self._quarantine(digest)
        self._write_atomic(digest, data)
        return digest

    def get_bytes(self, digest: str) -> bytes:
        """The bytes named ``digest``, checked against it: :class:`ArtifactCorruptError`
        (after moving the file aside) when they do not hash to their name."""
        for attempt in range(2):
            try:
                data, actual = self._read_hashed(digest)
            except FileNotFoundError:
                raise ArtifactNotFoundError(
                    f"artifact {digest[:12]} is not in {self.url}") from None
            if actual == digest:
                return data
            if attempt == 0 and self.check(digest, quarantine=False) == "ok":
                continue  # a writer healed it between our read and our check: read again
            raise self._corrupt(digest, actual, len(data))
        raise AssertionError("unreachable")

    def check(self, digest: str, *, quarantine: bool = True) -> str:
        """``"ok"``, ``"missing"``, ``"empty"`` or ``"corrupt"`` for the stored copy of
        ``digest``, hashed in a streaming pass; a bad copy is moved aside when asked."""
        try:
            actual, size = self._hash_stored(digest)
        except FileNotFoundError:
            return "missing"
        if actual == digest:
            return "ok"
        if quarantine:
            self._drop(digest)
            self._quarantine(digest)
        return "empty" if size == 0 else "corrupt"

    def intact(self, digest: str) -> bool:
        """Whether the stored copy of ``digest`` exists and hashes to its name (a bad one is
        moved aside, so whatever produced it runs again)."""
        return self.check(digest) == "ok"

    def _corrupt(self, digest: str, actual: str, size: int) -> ArtifactCorruptError:
        self._drop(digest)
        moved = self._quarantine(digest)
        what = ("is empty (0 bytes)" if size == 0 else
                f"is corrupt: its {size:,} bytes hash to {actual[:12]}, not to its name")
        where = f"; moved to {moved}" if moved else ""
        return ArtifactCorruptError(
            f"artifact {digest[:12]} in {self.url} {what}{where}. The next run that produces "
            "it writes it again; 'amml store verify --repair' checks the whole store",
            digest=digest, quarantined=moved)

    def _drop(self, digest: str) -> None:
        with self._memo_lock:
            self._memo.pop(digest, None)

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
        if (self.overlap_check and ref.type in OVERLAP_TYPES
                and ref.size >= OVERLAP_MIN_BYTES):
            value = self._load_overlapped(ref)
        else:
            value = deserialize(ref.type, self.get_bytes(ref.digest))
        self._remember(ref.digest, value)
        return value

    def _load_overlapped(self, ref: ArtifactRef) -> Any:
        """Hash in a second thread while the table or array is decoded (both release the
        GIL), so the check costs the longer of the two, not their sum. The decoded value is
        returned only if the bytes hash to their name; otherwise it is dropped unseen."""
        digest = ref.digest
        try:
            data = self._read(digest)
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"artifact {digest[:12]} is not in {self.url}") from None
        sha = hashlib.sha256()
        hasher = threading.Thread(target=sha.update, args=(data,), daemon=True)
        hasher.start()
        value: Any = None
        problem: Exception | None = None
        try:
            value = deserialize(ref.type, data)
        except Exception as exc:  # damaged bytes may not decode: the digest says which
            problem = exc
        hasher.join()
        actual = sha.hexdigest()
        if actual != digest:
            del value
            if self.check(digest, quarantine=False) == "ok":  # healed meanwhile by a writer
                return deserialize(ref.type, self.get_bytes(digest))
            raise self._corrupt(digest, actual, len(data))
        if problem is not None:
            raise problem
        return value

    def _remember(self, digest: str, value: Any) -> None:
        with self._memo_lock:
            self._memo[digest] = _freeze(value)
            self._memo.move_to_end(digest)
            while len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)
