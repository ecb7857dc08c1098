"""The edge runner's memory: what it holds (``/proc/self/status``) and the one-off release of
shared-library pages that loading touched.

Most of a small runner's resident set is not its data but code: the pages of
``onnxruntime``'s 36 MB extension module, numpy's and OpenBLAS's libraries and libpython that
importing them and creating a session (operator schema registration, graph optimisers, kernel
registries) touched once, plus the kernel's fault-around that maps 16 neighbours of each page
touched. :func:`release_library_pages` tells the kernel (``madvise(MADV_DONTNEED)``) that the
process no longer needs the *clean, read-only, file-backed* pages it has mapped; the page cache
keeps them, and the few that inference goes on using fault back in (a minor fault, no I/O). A
mapping with any private dirty or anonymous page (relocated data) is left alone, so nothing
the process wrote is ever dropped. What stays resident afterwards is the working set, which
is what a device under memory pressure would keep anyway. Linux only; elsewhere it does
nothing. Standard library only (the runner imports it).
"""

from __future__ import annotations

import ctypes
import re
import sys

_MADV_DONTNEED = 4
_MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$")


def status_mb(pid: int | str = "self") -> dict[str, float]:
    """``VmRSS``, ``VmHWM``, ``RssAnon`` and ``RssFile`` of a process, MB (empty off Linux)."""
    out: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[key] = int(value.split()[0]) / 1024
    except (OSError, ValueError):
        pass
    return out


def rss_mb() -> float:
    """This process's resident memory, MB (Linux ``/proc``; else the peak from getrusage)."""
    found = status_mb().get("VmRSS")
    if found is not None:
        return found
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 1024)


def _clean_library_mappings() -> list[tuple[int, int, int]]:
    """``(start, end, resident KB)`` of each file-backed, private, read-only mapping whose
    resident pages are all clean file pages (none written, none anonymous)."""
    found: list[tuple[int, int, int]] = []
    current: dict[str, int] | None = None
    with open("/proc/self/smaps") as handle:
        for line in handle:
            match = _MAPPING.match(line)
            if match:
                start, end, perms, path = match.groups()
                current = None
                if path.startswith("/") and "w" not in perms and perms[3] == "p":
                    current = {"start": int(start, 16), "end": int(end, 16)}
                    found.append((0, 0, 0))  # placeholder, filled when the mapping is read
                    current["slot"] = len(found) - 1
                continue
            if current is None:
                continue
            key, _, value = line.partition(":")
            if key in ("Rss", "Private_Dirty", "Shared_Dirty", "Anonymous"):
                current[key] = int(value.split()[0])
            if key == "Anonymous":  # the last of the fields used, in every kernel's order
                dirty = current.get("Private_Dirty", 1) + current.get("Shared_Dirty", 1)
                if dirty == 0 and current["Anonymous"] == 0 and current.get("Rss", 0) > 0:
                    found[current["slot"]] = (current["start"], current["end"], current["Rss"])
                current = None
    return [entry for entry in found if entry[1] > entry[0]]


def release_library_pages() -> float:
    """Drop this process's clean read-only library pages (see the module docstring); returns
    the MB the kernel released from the resident set (0.0 where it cannot)."""
    if not sys.platform.startswith("linux"):
        return 0.0
    try:
        mappings = _clean_library_mappings()
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return 0.0
    madvise = libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    released = 0
    for start, end, resident in mappings:
        if madvise(start, end - start, _MADV_DONTNEED) == 0:
            released += resident
    return released / 1024


def return_free_heap() -> None:
    """Give the heap's free pages back to the system (glibc's ``malloc_trim``; a large batch
    frees tens of MB the allocator would otherwise keep). Does nothing elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)


_M_ARENA_MAX = -8


def one_heap() -> bool:
    """Make every thread allocate from the one main heap (glibc ``mallopt(M_ARENA_MAX, 1)``;
    call before threads start). A worker thread otherwise gets its own arena, which kept
    ~7 MB of a PatchTST batch's freed buffers that :func:`return_free_heap` could not give
    back. True when set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_ARENA_MAX, 1))
