"""Log file discovery and reading: a path's rotated siblings oldest first, gzip, bzip2 and xz
opened transparently, and the bytes read in chunks of whole lines."""

from __future__ import annotations

import bz2
import glob
import gzip
import lzma
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from amml._exceptions import OpError

#: Bytes read (and parsed) at a time; module level so tests can make chunks tiny.
CHUNK_BYTES = 8 << 20

_ROTATION = re.compile(r"(?P<base>.+?)(?:\.(?P<num>\d+)|-(?P<date>\d{8,10}))?"
                       r"(?P<zip>\.(?:gz|bz2|xz))?")
_ROTATED_SUFFIX = re.compile(r"(?:\.\d+|-\d{8,10})(?:\.(?:gz|bz2|xz))?|\.(?:gz|bz2|xz)")


def _rotation_key(path: Path) -> tuple[str, int, int, str]:
    """Oldest first: ``.3`` before ``.2`` before ``.1``, dated files by date, then a
    compressed copy without a number, the live file last."""
    match = _ROTATION.fullmatch(path.name)
    assert match is not None  # ".+?" matches any name
    base = str(path.parent / match["base"])
    if match["num"]:
        return base, 0, -int(match["num"]), path.name
    if match["date"]:
        return base, 1, 0, match["date"]
    return base, 3 if match["zip"] is None else 2, 0, path.name


def find_log_files(path: str, rotated: bool = True) -> list[Path]:
    """The files a ``path`` names, oldest first; :class:`OpError` when there are none."""
    expanded = os.path.expanduser(path)
    if glob.has_magic(expanded):
        found = {Path(p) for p in glob.glob(expanded) if os.path.isfile(p)}
    else:
        live = Path(expanded)
        if live.is_dir():
            raise OpError(f"log path {path} is a folder: give a file or a glob such as "
                          f"{os.path.join(path, '*.log')}")
        found = {live} if live.is_file() else set()
        if rotated and live.parent.is_dir():
            prefix = glob.escape(live.name)
            found |= {p for pattern in (prefix + ".*", prefix + "-*")
                      for p in live.parent.glob(pattern)
                      if p.is_file() and _ROTATED_SUFFIX.fullmatch(p.name[len(live.name):])}
    if not found:
        raise OpError(f"no log files match {path}" + (" (a glob)" if glob.has_magic(expanded)
                                                      else ""))
    return sorted(found, key=_rotation_key)


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as probe:
        magic = probe.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")
    if magic.startswith(b"BZh"):
        return bz2.open(path, "rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(path, "rb")
    return path.open("rb")


def _read_chunks(path: Path) -> Iterator[bytes]:
    """Whole lines, about CHUNK_BYTES at a time, as valid UTF-8 without the last newline."""
    with _open(path) as stream:
        rest = b""
        while block := stream.read(CHUNK_BYTES):
            data = rest + block if rest else block
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            rest = data[cut + 1:]
            yield _clean(data[:cut])
        if rest:
            yield _clean(rest)


def _clean(data: bytes) -> bytes:
    if b"\r" in data:  # CRLF files: "$" in user patterns must still match at line ends
        data = data.replace(b"\r\n", b"\n")
        if data.endswith(b"\r"):  # the chunk was cut at the "\n" after it
            data = data[:-1]
    if data.isascii():
        return data
    try:
        data.decode("utf-8")  # Arrow's kernels need valid UTF-8
    except UnicodeDecodeError:
        data = data.decode("utf-8", errors="replace").encode()
    return data

