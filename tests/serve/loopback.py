"""Raw loopback clients for the limit tests and ``benchmarks/serving_limits.py``: bodies sent
by hand (declared or chunked, abandoned midway), a worker's resident memory, ``/healthz``
latency sampled while a large batch is scored."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

MB = 1 << 20


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MiB (Linux ``/proc``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _connect(base: str) -> socket.socket:
    parts = urlsplit(base)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _head(path: str, key: str, extra: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {key}\r\n{extra}\r\n").encode()


def _status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return 0
        data += chunk
    return int(data.split(b" ", 2)[1])


def send_oversized(base: str, path: str, key: str, size: int, *, chunked: bool = False
                   ) -> int:
    """Send a body of ``size`` bytes (declared in ``Content-Length``, or chunked without one)
    a MiB at a time until the server answers; the status it answered (0: none)."""
    sock = _connect(base)
    try:
        extra = "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {size}\r\n"
        sock.sendall(_head(path, key, extra))
        block = b" " * MB
        frame = f"{MB:x}\r\n".encode() + block + b"\r\n" if chunked else block
        sent = 0
        while sent < size:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer came before the body was sent: stop sending
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
            sent += MB
        return _status(sock)
    except (ConnectionResetError, TimeoutError):
        return 0
    finally:
        sock.close()


def abandon_body(base: str, path: str, key: str) -> None:
    """Declare 100 kB, send 1 kB, hang up: a client that disconnects mid-body."""
    sock = _connect(base)
    try:
        sock.sendall(_head(path, key, "Content-Length: 100000\r\n") + b"[" + b" " * 1000)
        time.sleep(0.2)
    finally:
        sock.close()


def batch_body(windows: int, lookback: int) -> bytes:
    return json.dumps({"windows": [[float(i % 97 + j) for j in range(lookback)]
                                   for i in range(windows)]}).encode()


def healthz_while(base: str, work: Callable[[], httpx.Response], every: float = 0.01
                  ) -> tuple[httpx.Response, float, list[float]]:
    """Run ``work`` (a request) in a thread and time ``GET /healthz`` every ``every`` seconds
    until it ends: (its response, its seconds, the /healthz latencies in seconds)."""
    result: dict[str, httpx.Response] = {}
    started = time.perf_counter()

    def run() -> None:
        result["response"] = work()

    thread = threading.Thread(target=run)
    latencies: list[float] = []
    with httpx.Client(base_url=base, timeout=30) as http:
        http.get("/healthz")  # connect first: count answers, not the handshake
        thread.start()
        while thread.is_alive():
            t0 = time.perf_counter()
            assert http.get("/healthz").status_code == 200
            latencies.append(time.perf_counter() - t0)
            time.sleep(every)
    thread.join()
    return result["response"], time.perf_counter() - started, latencies
