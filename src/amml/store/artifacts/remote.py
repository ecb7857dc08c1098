"""Artifacts on any fsspec filesystem (``s3://``, ``gs://``, ``memory://``, ...).

Object stores make a single ``put`` visible all at once; for filesystems with real renames
the bytes go to a temporary key first and are moved into place. Reads hash the bytes as they
arrive; a bad object is moved to ``<base>/quarantine/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator

import fsspec

from amml._exceptions import ConfigurationError, StoreError
from amml.store.artifacts.base import HASH_CHUNK, QUARANTINE, ArtifactStore, hash_stream
from amml.store.artifacts.local import TMP_PREFIX


class FsspecArtifactStore(ArtifactStore):
    overlap_check = False  # the bytes are hashed as they are downloaded

    def __init__(self, url: str, **storage_options: object) -> None:
        super().__init__()
        try:
            self.fs, self.base = fsspec.core.url_to_fs(url, **storage_options)
        except (ImportError, ValueError) as exc:
            raise ConfigurationError(f"cannot open artifact store {url!r}: {exc}") from exc
        self.url = url.rstrip("/")
        self.base = self.base.rstrip("/")

    def _key(self, digest: str) -> str:
        return f"{self.base}/{digest[:2]}/{digest}"

    def _exists(self, digest: str) -> bool:
        return bool(self.fs.exists(self._key(digest)))

    def _read(self, digest: str) -> bytes:
        return self.fs.cat_file(self._key(digest))

    def _read_hashed(self, digest: str) -> tuple[bytes, str]:
        # hash each piece as it is downloaded: no second pass over the bytes
        sha = hashlib.sha256()
        pieces = []
        with self.fs.open(self._key(digest), "rb") as handle:
            while piece := handle.read(HASH_CHUNK):
                sha.update(piece)
                pieces.append(piece)
        return (pieces[0] if len(pieces) == 1 else b"".join(pieces)), sha.hexdigest()

    def _hash_stored(self, digest: str) -> tuple[str, int]:
        with self.fs.open(self._key(digest), "rb") as handle:
            return hash_stream(handle)

    def _same_bytes(self, digest: str, data: bytes) -> bool:
        try:
            if self.fs.size(self._key(digest)) != len(data):
                return False
        except FileNotFoundError:
            return False
        return super()._same_bytes(digest, data)

    def _quarantine(self, digest: str) -> str | None:
        target = f"{self.base}/{QUARANTINE}/{digest}-{time.time_ns()}"
        try:
            self.fs.makedirs(f"{self.base}/{QUARANTINE}", exist_ok=True)
            self.fs.mv(self._key(digest), target)
        except FileNotFoundError:
            return None
        return target

    def digests(self) -> Iterator[str]:
        for path in sorted(self.fs.find(self.base)):
            folder, _, name = str(path).rstrip("/").rpartition("/")
            prefix = folder.rpartition("/")[2]
            if len(prefix) == 2 and len(name) == 64 and name.startswith(prefix):
                yield name

    def _write_atomic(self, digest: str, data: bytes) -> None:
        key = self._key(digest)
        unique = f"{digest[:16]}-{os.getpid()}-{time.monotonic_ns()}"
        tmp = f"{self.base}/{digest[:2]}/{TMP_PREFIX}{unique}"
        try:
            self.fs.makedirs(f"{self.base}/{digest[:2]}", exist_ok=True)
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, key)
        except OSError as exc:  # a full disk or quota on a mounted filesystem: leave nothing
            with contextlib.suppress(Exception):
                self.fs.rm_file(tmp)
            raise StoreError(f"cannot write artifact {digest[:12]} ({len(data):,} bytes) to "
                             f"{self.url}: {exc}") from exc
