"""Artifacts on any fsspec filesystem (``s3://``, ``gs://``, ``memory://``, ...).

Object stores make a single ``put`` visible all at once; for filesystems with real renames
the bytes go to a temporary key first and are moved into place.
"""

from __future__ import annotations

import os
import time

import fsspec

from amml._exceptions import ConfigurationError
from amml.store.artifacts.base import ArtifactStore
from amml.store.artifacts.local import TMP_PREFIX


class FsspecArtifactStore(ArtifactStore):
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

    def _write_atomic(self, digest: str, data: bytes) -> None:
        key = self._key(digest)
        unique = f"{digest[:16]}-{os.getpid()}-{time.monotonic_ns()}"
        tmp = f"{self.base}/{digest[:2]}/{TMP_PREFIX}{unique}"
        self.fs.makedirs(f"{self.base}/{digest[:2]}", exist_ok=True)
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, key)
