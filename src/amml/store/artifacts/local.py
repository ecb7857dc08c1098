"""Artifacts as files under a local folder: ``<root>/<digest[:2]>/<digest>``.

Writes go to a temporary file in the same folder and are renamed into place, so a reader (or a
run killed mid-write) never sees a half-written artifact. Set ``AMML_FSYNC=1`` to also flush to
disk before the rename (survives power loss, not only process crashes; slower). A write that
fails (a full disk, a file-size limit) removes its temporary file and raises StoreError.

A file that fails its digest check is moved to ``<root>/quarantine/<digest>-<time>``: kept for
inspection, never read again.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from amml._exceptions import StoreError
from amml.store.artifacts.base import QUARANTINE, ArtifactStore, hash_stream

TMP_PREFIX = ".tmp-"


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__()
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.resolve().as_uri()
        self._fsync = os.environ.get("AMML_FSYNC", "") not in ("", "0")
        self._made: set[str] = set()

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def _exists(self, digest: str) -> bool:
        return os.path.exists(self.root / digest[:2] / digest)

    def _read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def _read_hashed(self, digest: str) -> tuple[bytes, str]:
        # One read into one buffer, then one hashlib call over it (GIL released): measured
        # faster here than hashing chunk by chunk, which needs a copy to join the chunks.
        data = self.path(digest).read_bytes()
        return data, hashlib.sha256(data).hexdigest()

    def _hash_stored(self, digest: str) -> tuple[str, int]:
        with open(self.path(digest), "rb", buffering=0) as handle:
            return hash_stream(handle)

    def _same_bytes(self, digest: str, data: bytes) -> bool:
        path = self.path(digest)
        try:
            if path.stat().st_size != len(data):
                return False
            return path.read_bytes() == data
        except FileNotFoundError:
            return False

    def _quarantine(self, digest: str) -> str | None:
        folder = self.root / QUARANTINE
        folder.mkdir(exist_ok=True)
        target = folder / f"{digest}-{time.time_ns()}"
        try:
            os.replace(self.path(digest), target)
        except FileNotFoundError:
            return None  # another reader moved it first
        return str(target)

    def digests(self) -> Iterator[str]:
        for folder in sorted(self.root.iterdir()):
            if len(folder.name) != 2 or not folder.is_dir():
                continue  # quarantine/ and anything else that is not a digest prefix
            for entry in sorted(folder.iterdir()):
                if entry.name.startswith(folder.name) and len(entry.name) == 64:
                    yield entry.name

    def _write_atomic(self, digest: str, data: bytes) -> None:
        folder = self.root / digest[:2]
        if digest[:2] not in self._made:
            folder.mkdir(exist_ok=True)
            self._made.add(digest[:2])
        tmp = folder / f"{TMP_PREFIX}{digest[:16]}-{os.getpid()}-{time.monotonic_ns()}"
        try:
            try:
                self._write_file(tmp, data)
            except FileNotFoundError:  # the prefix folder was removed since this store made it
                folder.mkdir(exist_ok=True)
                self._write_file(tmp, data)
            os.replace(tmp, folder / digest)
        except OSError as exc:
            # a full disk (ENOSPC), a file-size limit (EFBIG), a quota: leave no partial file
            with contextlib.suppress(OSError):
                tmp.unlink()
            reason = errno.errorcode.get(exc.errno or 0, "")
            raise StoreError(
                f"cannot write artifact {digest[:12]} ({len(data):,} bytes) to {folder}: "
                f"{exc.strerror or exc}" + (f" ({reason})" if reason else "")
                + ("; free some space or move the store (AMML_HOME, AMML_ARTIFACTS_URL)"
                   if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT) else "")
            ) from exc

    def _write_file(self, path: Path, data: bytes) -> None:
        with open(path, "wb") as handle:
            handle.write(data)
            if self._fsync:
                handle.flush()
                os.fsync(handle.fileno())

    def cleanup(self, older_than_s: float = 60.0) -> int:
        removed = 0
        cutoff = time.time() - older_than_s
        for tmp in self.root.glob(f"*/{TMP_PREFIX}*"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed
