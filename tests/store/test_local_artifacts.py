"""The local artifact folder rule by rule: a damaged copy is healed on the next write of the
right bytes, quarantine keeps the bad file, listing skips what is not an artifact, a failed
write explains itself and leaves nothing behind, AMML_FSYNC flushes, cleanup only removes
stale temporary files."""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import time
from pathlib import Path

import pytest

from amml._exceptions import StoreError
from amml.store.artifacts.local import LocalArtifactStore


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_damaged_copy_of_the_same_size_is_replaced_and_kept_aside(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest = store.put_bytes(b"weights-1")
    stored = tmp_path / digest[:2] / digest
    stored.write_bytes(b"weights-2")  # same size, other bytes
    assert store.put_bytes(b"weights-1") == digest
    assert stored.read_bytes() == b"weights-1"
    (kept,) = (tmp_path / "quarantine").iterdir()
    assert kept.name.startswith(f"{digest}-") and kept.read_bytes() == b"weights-2"


def test_same_bytes_compares_size_then_content(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest = store.put_bytes(b"abc")
    assert store._same_bytes(digest, b"abc")
    assert not store._same_bytes(digest, b"abd")
    assert not store._same_bytes(digest, b"abcd")
    assert not store._same_bytes(_digest(b"other"), b"other")


def test_quarantine_says_where_the_file_went(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest = store.put_bytes(b"bad")
    where = store._quarantine(digest)
    assert where is not None and Path(where).parent == tmp_path / "quarantine"
    assert Path(where).read_bytes() == b"bad" and not store.path(digest).exists()
    assert store._quarantine(digest) is None  # gone already


def test_digests_lists_only_artifacts(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    wanted = sorted(store.put_bytes(bytes([i])) for i in range(5))
    (tmp_path / "0").mkdir()  # sorts first: not a digest prefix, listing goes on
    (tmp_path / "zz").write_text("a file, not a folder")
    prefix = tmp_path / wanted[0][:2]
    (prefix / "notes.txt").write_text("x")
    (prefix / f".tmp-{wanted[0][:16]}-1-1").write_text("partial")
    (prefix / ("f" * 64)).write_text("a digest of another prefix")
    store._quarantine(store.put_bytes(b"moved aside"))
    assert list(store.digests()) == wanted


def test_amml_fsync_flushes_each_write_before_the_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flushed: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (flushed.append(fd), real_fsync(fd)))
    monkeypatch.delenv("AMML_FSYNC", raising=False)
    LocalArtifactStore(tmp_path / "unset").put_bytes(b"one")
    for off in ("", "0"):
        monkeypatch.setenv("AMML_FSYNC", off)
        LocalArtifactStore(tmp_path / f"off{off}").put_bytes(b"one")
    assert flushed == []
    monkeypatch.setenv("AMML_FSYNC", "1")
    store = LocalArtifactStore(tmp_path / "durable")
    digest = store.put_bytes(b"two")
    assert len(flushed) == 1 and isinstance(flushed[0], int)
    assert store.get_bytes(digest) == b"two"


def test_cleanup_removes_only_stale_temporary_files(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest = store.put_bytes(b"kept")
    folder = tmp_path / digest[:2]
    stale = [folder / f".tmp-{digest[:16]}-1-{n}" for n in range(2)]
    fresh = folder / f".tmp-{digest[:16]}-1-9"
    for path in (*stale, fresh):
        path.write_bytes(b"partial")
    old = time.time() - 600
    for path in stale:
        os.utime(path, (old, old))
    assert store.cleanup(older_than_s=300) == 2
    assert [p.exists() for p in (*stale, fresh)] == [False, False, True]
    assert store.get_bytes(digest) == b"kept"


def test_a_write_over_the_file_size_limit_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    data = b"x" * 100_000
    digest = _digest(data)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # a real limit, for one write
    try:
        with pytest.raises(StoreError) as caught:
            store.put_bytes(data)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert str(caught.value) == (
        f"cannot write artifact {digest[:12]} (100,000 bytes) to {tmp_path / digest[:2]}: "
        "File too large (EFBIG); free some space or move the store "
        "(AMML_HOME, AMML_ARTIFACTS_URL)")
    assert list((tmp_path / digest[:2]).iterdir()) == []  # no partial or temporary file


def test_a_prefix_folder_removed_by_hand_is_made_again(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    first = store.put_bytes(b"first")
    same_prefix = next(data for data in (b"%d" % n for n in range(10_000))
                       if _digest(data)[:2] == first[:2] and data != b"first")
    shutil.rmtree(tmp_path / first[:2])
    digest = store.put_bytes(same_prefix)
    assert store.get_bytes(digest) == same_prefix


def test_another_write_error_names_its_errno_without_the_space_hint(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    data = b"content"
    digest = _digest(data)
    blocker = tmp_path / digest[:2] / digest
    blocker.mkdir(parents=True)  # a folder where the file should go: the rename fails
    (blocker / "inside").write_text("x")
    with pytest.raises(StoreError) as caught:
        store._write_atomic(digest, data)
    message = str(caught.value)
    assert message.startswith(f"cannot write artifact {digest[:12]} (7 bytes) to "
                              f"{tmp_path / digest[:2]}: ")
    assert message.endswith("Is a directory (EISDIR)")
    assert "free some space" not in message
    assert [p.name for p in (tmp_path / digest[:2]).iterdir()] == [digest]
