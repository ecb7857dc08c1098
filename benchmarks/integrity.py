"""What checking digests on every read costs: verified reads beside plain reads.

A table of about 100 MB in memory (sensor-like series, a time index, stored as the Parquet the
store writes) is read into pandas through the local store: without the sha256 check, through
``store.load`` (hashed in a second thread while pyarrow decodes), and hashed completely before
decoding; plus a bare re-hash of the stored file (``amml store verify``'s unit of work). Goal:
the check costs at most 15% of reading the table.

    python benchmarks/integrity.py [--mb 100] [--repeat 7]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from amml.store.artifacts import ArtifactRef, LocalArtifactStore
from amml.store.artifacts.serializers import deserialize


def sensor_table(megabytes: float, columns: int = 10, seed: int = 0) -> pd.DataFrame:
    """Daily-seasonal noisy channels at one-minute steps, ~``megabytes`` MB in memory."""
    rows = int(megabytes * 1e6 / (8 * (columns + 1)))
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    index = pd.date_range("2020-01-01", periods=rows, freq="min", name="time")
    data = {f"s{k}": np.round(10 + 3 * np.sin(2 * np.pi * t / 1440 + k)
                              + rng.normal(0, 0.3, rows), 3) for k in range(columns)}
    return pd.DataFrame(data, index=index)


def interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """Seconds per call for each function, the functions taking turns in every round (so a
    busy machine slows them alike); one warm-up round first (page cache hot)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeat + 1):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if round_:
                times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="table size in memory (MB)")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        store = LocalArtifactStore(folder)
        frame = sensor_table(args.mb)
        ref = store.save(frame)
        path = store.path(ref.digest)
        in_memory = frame.memory_usage(deep=True).sum() / 1e6
        del frame

        def plain() -> object:  # what reads cost before verification: bytes, then pandas
            return deserialize(ref.type, store._read(ref.digest))

        def verified() -> object:  # the public read path (memo cleared so it really reads):
            store._memo.clear()    # the digest is hashed alongside decoding
            return store.load(ArtifactRef(ref.digest, ref.type, ref.size))

        def check_first() -> object:  # the stricter order: hash everything, then decode
            return deserialize(ref.type, store.get_bytes(ref.digest))

        def rehash() -> object:  # amml store verify's unit of work
            return store.check(ref.digest, quarantine=False)

        def hash_only() -> object:
            return hashlib.sha256(path.read_bytes()).hexdigest()

        labels = {"plain read into pandas": plain,
                  "verified read (store.load)": verified,
                  "verified, hash before decoding": check_first,
                  "re-hash the file (store verify)": rehash,
                  "read + sha256, no pandas": hash_only}
        times = interleaved(labels, args.repeat)

    print(f"table: {in_memory:.0f} MB in memory, {ref.size / 1e6:.1f} MB Parquet (zstd) on "
          f"disk; {args.repeat} interleaved rounds; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'':34s} {'median s':>9s} {'min s':>8s}")
    median = {label: statistics.median(t) for label, t in times.items()}
    for label, spent in times.items():
        print(f"{label:34s} {median[label]:9.3f} {min(spent):8.3f}")
    plain_s = median["plain read into pandas"]
    for label in ("verified read (store.load)", "verified, hash before decoding"):
        ratio = median[label] / plain_s
        print(f"{label} / plain read: {ratio:.3f} (verification costs {ratio - 1:+.1%} "
              "of reading; goal <= 15%)")
    print(f"hashing alone: {median['re-hash the file (store verify)'] / plain_s:.1%} of a plain "
          "read")


if __name__ == "__main__":
    main()
