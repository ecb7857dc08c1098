"""Artifacts as files under a local folder: ``<root>/<digest[:2]>/<digest>``.

Writes go to a temporary file in the same folder and are renamed into place, so a reader (or a
run killed mid-write) never sees a half-written artifact. Set ``AMML_FSYNC=1`` to also flush to
disk before the rename (survives power loss, not only process crashes; slower).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from amml.store.artifacts.base import ArtifactStore

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

    def _write_atomic(self, digest: str, data: bytes) -> None:
        folder = self.root / digest[:2]
        if digest[:2] not in self._made:
            folder.mkdir(exist_ok=True)
            self._made.add(digest[:2])
        tmp = folder / f"{TMP_PREFIX}{digest[:16]}-{os.getpid()}-{time.monotonic_ns()}"
        with open(tmp, "wb") as handle:
            handle.write(data)
            if self._fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, folder / digest)

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
