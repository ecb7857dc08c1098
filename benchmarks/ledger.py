"""Ledger cost: appending and signing an entry, and verifying checkpoints.

Prints the time to append one signed entry (with and without storing a checkpoint), and the
verification throughput in MB/s of checkpoint bytes (full verify: re-hash every checkpoint,
check every link and Ed25519 signature) beside plain ``sha256sum`` over the same checkpoint
files, measured in the same run (page cache warm for both).

    python benchmarks/ledger.py [--entries 200] [--checkpoints 40] [--checkpoint-mb 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from amml.store import open_store
from amml.store.keys import KeyRing
from amml.store.ledger import Ledger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--checkpoints", type=int, default=40)
    parser.add_argument("--checkpoint-mb", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    size = int(args.checkpoint_mb * 1024 * 1024)

    with tempfile.TemporaryDirectory() as home:
        store = open_store(Path(home) / "store")
        ring = KeyRing(Path(home) / "keys")
        ring.active()

        ledger = Ledger(store, "append-only", ring)
        times = []
        for epoch in range(args.entries):
            started = time.perf_counter()
            ledger.append("epoch", epoch=epoch, metrics={"val_loss": 1.0 / (epoch + 1)})
            times.append(time.perf_counter() - started)
        append_ms = statistics.median(times) * 1000

        ledger = Ledger(store, "with-checkpoints", ring)
        times = []
        for epoch in range(args.checkpoints):
            data = os.urandom(size)
            started = time.perf_counter()
            ledger.append("epoch", epoch=epoch, checkpoint=data, metrics={"loss": 0.1})
            times.append(time.perf_counter() - started)
        append_ckpt_ms = statistics.median(times) * 1000

        paths = [str(store.artifacts.path(e.checkpoint["digest"])) for e in ledger.entries()]
        total_mb = sum(os.path.getsize(p) for p in paths) / 1e6
        verify_s, sha_s, openssl_s = [], [], []
        sha256sum = shutil.which("sha256sum")
        openssl = shutil.which("openssl")
        for _ in range(args.repeats):
            started = time.perf_counter()
            report = ledger.verify()
            verify_s.append(time.perf_counter() - started)
            assert report.ok and report.checkpoints == args.checkpoints, report.problem
            if sha256sum:
                started = time.perf_counter()
                subprocess.run([sha256sum, *paths], check=True, stdout=subprocess.DEVNULL)
                sha_s.append(time.perf_counter() - started)
            if openssl:
                started = time.perf_counter()
                subprocess.run([openssl, "dgst", "-sha256", *paths], check=True,
                               stdout=subprocess.DEVNULL)
                openssl_s.append(time.perf_counter() - started)
        store.close()

    verify_mbs = total_mb / min(verify_s)
    print(f"ledger entries={args.entries} checkpoints={args.checkpoints} "
          f"checkpoint_mb={args.checkpoint_mb} store=sqlite")
    print(f"ledger metric=append_sign_ms value={append_ms:.3f}")
    print(f"ledger metric=append_sign_per_s value={1000 / append_ms:.0f}")
    print(f"ledger metric=append_with_checkpoint_ms value={append_ckpt_ms:.3f}")
    print(f"ledger metric=verify_mb_per_s value={verify_mbs:.1f}")
    if sha_s:
        sha_mbs = total_mb / min(sha_s)
        print(f"ledger metric=sha256sum_mb_per_s value={sha_mbs:.1f}")
        print(f"ledger metric=verify_vs_sha256sum ratio={verify_mbs / sha_mbs:.2f}")
    if openssl_s:
        openssl_mbs = total_mb / min(openssl_s)
        print(f"ledger metric=openssl_sha256_mb_per_s value={openssl_mbs:.1f}")
        print(f"ledger metric=verify_vs_openssl ratio={verify_mbs / openssl_mbs:.2f}")
    print()
    print(f"append + sign one entry: {append_ms:.2f} ms ({1000 / append_ms:,.0f} entries/s); "
          f"with a {args.checkpoint_mb:g} MB checkpoint stored: {append_ckpt_ms:.2f} ms")
    print(f"full verify of {total_mb:.0f} MB of checkpoints: {verify_mbs:,.0f} MB/s "
          "(links, signatures and re-hashed checkpoints)")
    if sha_s:
        print(f"sha256sum over the same files:  {sha_mbs:,.0f} MB/s  ->  "
              f"AMML verify / sha256sum = {verify_mbs / sha_mbs:.2f}x")
    if openssl_s:
        print(f"openssl dgst -sha256, same files: {openssl_mbs:,.0f} MB/s  ->  "
              f"AMML verify / openssl = {verify_mbs / openssl_mbs:.2f}x")
        print("(AMML hashes with Python's hashlib, i.e. OpenSSL's SHA-256; coreutils sha256sum "
              "uses its own portable code)")


if __name__ == "__main__":
    main()
