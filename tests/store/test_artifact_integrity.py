"""Content-addressed files are checked against their names on every read.

A damaged artifact is never returned: it is moved to ``quarantine/`` with a clear
:class:`ArtifactCorruptError`, and the next run (cached or ``--no-cache``) writes it again. A
write that fails (full disk, file-size limit) leaves no temporary file and fails the run.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from amml import ArtifactCorruptError, Client, StoreError, compile_workflow, run_workflow
from amml.lang import load_yaml_text
from amml.store import Store, open_store
from amml.store.artifacts import FsspecArtifactStore, LocalArtifactStore
from amml.store.artifacts.verify import verify_store
from tests.conftest import IN_CI
from tests.helpers import SMALL_YAML


def _statuses(result) -> dict[str, str]:
    return {name: outcome.status for name, outcome in result.steps.items()}


def _overwrite_four_bytes(path: Path) -> None:
    """What the hostile test did: four bytes in the middle of the data, size unchanged."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4] = b"\x7f\xef\xff\xff"  # a float64 near 1e308 where a value was
    path.write_bytes(bytes(data))


def _first_run(home: Path):
    with open_store(home) as store:
        workflow = compile_workflow(load_yaml_text(SMALL_YAML))
        first = run_workflow(workflow, store=store)
        assert first.status == "succeeded"
        return workflow, first


def _rerun(workflow, home: Path, **options):
    with open_store(home) as store:  # a fresh process's view: nothing memoized
        return run_workflow(workflow, store=store, **options)


def _quarantined(home: Path) -> list[Path]:
    folder = home / "artifacts" / "quarantine"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_corrupted_artifact_is_detected_and_rebuilt(tmp_path: Path) -> None:
    home = tmp_path / "store"
    workflow, first = _first_run(home)
    ref = first.steps["clean"].outputs["out"]
    good = first["clean"]
    path = LocalArtifactStore(home / "artifacts").path(ref.digest)
    _overwrite_four_bytes(path)

    with open_store(home) as store, pytest.raises(ArtifactCorruptError) as caught:
        store.artifacts.load(ref)
    assert ref.digest[:12] in str(caught.value) and "corrupt" in str(caught.value)
    assert caught.value.digest == ref.digest and not path.exists()
    assert [p.name.split("-")[0] for p in _quarantined(home)] == [ref.digest]

    _overwrite_four_bytes(_quarantined(home)[0])  # put a damaged copy back in place
    os.replace(_quarantined(home)[0], path)
    second = _rerun(workflow, home)
    # the cached output failed its check: the step ran again, its bytes equal the old ones,
    # so everything downstream stayed cached
    assert _statuses(second)["clean"] == "ran" and _statuses(second)["splits"] == "cached"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ref.digest
    pd.testing.assert_frame_equal(second["clean"], good, check_freq=False)
    assert set(_statuses(_rerun(workflow, home)).values()) == {"cached"}


def test_corrupted_artifact_is_refused_by_load_artifact(tmp_path: Path) -> None:
    home = tmp_path / "store"
    _, first = _first_run(home)
    ref = first.steps["model"].outputs["model"]  # model weights rewritten in place
    _overwrite_four_bytes(LocalArtifactStore(home / "artifacts").path(ref.digest))
    with Client(home) as client, pytest.raises(ArtifactCorruptError, match="corrupt"):
        client.load_artifact(ref.digest)


def test_no_cache_rewrites_a_corrupt_artifact(tmp_path: Path) -> None:
    home = tmp_path / "store"
    workflow, first = _first_run(home)
    ref = first.steps["clean"].outputs["out"]
    path = LocalArtifactStore(home / "artifacts").path(ref.digest)
    _overwrite_four_bytes(path)
    result = _rerun(workflow, home, use_cache=False)
    assert result.status == "succeeded"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ref.digest
    assert len(_quarantined(home)) == 1


def test_zero_byte_artifact_is_quarantined_and_rebuilt(tmp_path: Path) -> None:
    home = tmp_path / "store"
    workflow, first = _first_run(home)
    ref = first.steps["raw"].outputs["out"]
    path = LocalArtifactStore(home / "artifacts").path(ref.digest)
    path.write_bytes(b"")
    with open_store(home) as store, pytest.raises(ArtifactCorruptError, match="empty"):
        store.artifacts.load(ref)
    path.write_bytes(b"")  # and again, for the run to meet it
    result = _rerun(workflow, home)
    assert result.status == "succeeded" and _statuses(result)["raw"] == "ran"
    assert path.stat().st_size == ref.size
    assert all(p.stat().st_size == 0 for p in _quarantined(home))


def test_store_verify_finds_and_repairs_damage(tmp_path: Path) -> None:
    home = tmp_path / "store"
    workflow, first = _first_run(home)
    artifacts = LocalArtifactStore(home / "artifacts")
    corrupt = first.steps["clean"].outputs["out"].digest
    empty = first.steps["score"].outputs["metrics"].digest
    missing = first.steps["alarms"].outputs["out"].digest
    _overwrite_four_bytes(artifacts.path(corrupt))
    artifacts.path(empty).write_bytes(b"")
    artifacts.path(missing).unlink()
    with open_store(home) as store:
        report = verify_store(store)
        assert {(f.digest, f.problem) for f in report.findings} == {
            (corrupt, "corrupt"), (empty, "empty"), (missing, "missing")}
        assert artifacts.path(corrupt).exists()  # a plain check moves nothing
        repaired = verify_store(store, repair=True)
        assert repaired.cache_entries_dropped >= 3
        assert not artifacts.path(corrupt).exists() and len(_quarantined(home)) == 2
        after = verify_store(store)  # their cache entries are gone: nothing trusts them
        assert after.ok and after.unavailable == 3
    result = _rerun(workflow, home)
    assert {"clean", "score", "alarms"} <= {n for n, s in _statuses(result).items() if s == "ran"}
    with open_store(home) as store:
        assert verify_store(store).ok


def test_big_table_hashed_while_decoding_is_refused_when_corrupt(tmp_path: Path) -> None:
    """Tables over OVERLAP_MIN_BYTES are hashed alongside decoding: still never returned."""
    import numpy as np

    from amml.store.artifacts.base import OVERLAP_MIN_BYTES

    store = LocalArtifactStore(tmp_path / "artifacts")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300_000)},
                         index=pd.date_range("2024-01-01", periods=300_000, freq="s",
                                             name="time"))
    ref = store.save(frame)
    assert ref.size >= OVERLAP_MIN_BYTES
    store._memo.clear()
    pd.testing.assert_frame_equal(store.load(ref), frame, check_freq=False)
    store._memo.clear()
    _overwrite_four_bytes(store.path(ref.digest))
    with pytest.raises(ArtifactCorruptError, match="corrupt"):
        store.load(ref)
    assert not store.exists(ref.digest)
    store.path(ref.digest).parent.joinpath(ref.digest).write_bytes(b"")
    with pytest.raises(ArtifactCorruptError, match="empty"):  # undecodable: still corrupt
        store.load(ref)


def test_writing_the_same_bytes_heals_a_damaged_copy(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    digest = store.put_bytes(b"x" * 1000)
    store.path(digest).write_bytes(b"y" * 1000)
    assert store.check(digest, quarantine=False) == "corrupt"
    assert store.put_bytes(b"x" * 1000) == digest
    assert store.get_bytes(digest) == b"x" * 1000


def test_fsspec_store_checks_what_it_reads() -> None:
    store = FsspecArtifactStore("memory://amml-integrity-test")
    ref = store.save({"weights": [1.0, 2.0, 3.0]})
    store._memo.clear()
    store.fs.pipe_file(store._key(ref.digest), b'{"weights":[1.0,2.0,3e306]}')
    with pytest.raises(ArtifactCorruptError, match="corrupt"):
        store.load(ref)
    assert not store.exists(ref.digest)
    assert [d for d in store.digests()] == []
    assert store.save({"weights": [1.0, 2.0, 3.0]}).digest == ref.digest  # heals it
    store._memo.clear()
    assert store.load(ref) == {"weights": [1.0, 2.0, 3.0]}


# -- failing writes ------------------------------------------------------------------------
BIG_YAML = """\
name: big
steps:
  raw:
    op: source.synthetic
    with: {periods: 200000, seed: 1}
  clean:
    op: preprocess
    inputs: {table: raw}
    with: {scale: zscore, exclude: [is_anomaly]}
"""


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 1 MiB tmpfs: a real full disk, no mocks. Needs mount permission (root here)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}"
        if IN_CI:
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_fails_the_run_cleanly(tmp_path: Path, tiny_disk: Path) -> None:
    artifacts = tiny_disk / "artifacts"
    store = open_store(tmp_path / "meta", artifacts_url=str(artifacts))
    try:
        result = run_workflow(compile_workflow(load_yaml_text(BIG_YAML)), store=store,
                              raise_on_failure=False)
        assert result.status == "failed" and _statuses(result)["raw"] == "failed"
        error = result.steps["raw"].error or ""
        assert "StoreError" in error and "No space left on device" in error
        assert "ENOSPC" in error
        assert list(artifacts.glob("*/.tmp-*")) == []  # no partial file left behind
        run = Client(store=store).run(result.run_id)
        assert run["status"] == "failed" and "raw" in (run["error"] or "")
    finally:
        store.close()


def test_file_size_limit_fails_the_write_cleanly(tmp_path: Path) -> None:
    """RLIMIT_FSIZE gives EFBIG (Python ignores SIGXFSZ): the same clean failure."""
    script = textwrap.dedent(f"""
        import resource
        from amml import StoreError
        from amml.store.artifacts import LocalArtifactStore
        store = LocalArtifactStore({str(tmp_path / "artifacts")!r})
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        try:
            store.put_bytes(b"z" * 1_000_000)
        except StoreError as exc:
            print("STOREERROR", exc)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "STOREERROR cannot write artifact" in done.stdout and "EFBIG" in done.stdout
    assert list((tmp_path / "artifacts").glob("*/.tmp-*")) == []
    assert list((tmp_path / "artifacts").glob("*/*")) == []


def test_a_process_killed_mid_write_leaves_no_artifact_under_its_name(tmp_path: Path) -> None:
    """The kernel kills the writer part-way through the data (SIGXFSZ at a file-size limit,
    its default action restored): no cleanup code runs, as with kill -9 mid-write. What is
    left is a temporary file, never a partial file under the artifact's final name, so no
    reader can take it for the artifact; the next write of the same bytes succeeds."""
    script = textwrap.dedent(f"""
        import resource, signal
        from amml.store.artifacts import LocalArtifactStore
        store = LocalArtifactStore({str(tmp_path / "artifacts")!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        store.put_bytes(b"z" * 1_000_000)
        print("NOT KILLED")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode < 0 and "NOT KILLED" not in done.stdout, done.stderr
    folder = tmp_path / "artifacts"
    data = b"z" * 1_000_000
    digest = hashlib.sha256(data).hexdigest()
    named = [p for p in folder.glob("*/*") if not p.name.startswith(".tmp-")]
    assert named == [], f"a partial file under a final name: {named}"
    assert len(list(folder.glob("*/.tmp-*"))) == 1  # the leftover, swept later
    store = LocalArtifactStore(str(folder))
    assert store.put_bytes(data) == digest
    assert store.get_bytes(digest) == data


def test_store_error_is_a_store_error() -> None:
    assert issubclass(ArtifactCorruptError, StoreError)


def test_conformance_of_both_backends(tmp_path: Path, store: Store) -> None:
    from amml.testing.checks import check_artifact_store

    check_artifact_store(store.artifacts)
    check_artifact_store(FsspecArtifactStore("memory://amml-integrity-conformance"))
