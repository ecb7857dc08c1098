"""Run the application under uvicorn, in one process or several.

With ``workers > 1`` uvicorn starts that many processes sharing the listening socket; each
builds its own application from the configuration in ``AMML_SERVE_CONFIG`` (through the
factory ``amml.serve.app:app_from_env``) and watches the registry on its own, so a moved
alias reaches every worker within about one poll interval. Prometheus values go to a fresh
``PROMETHEUS_MULTIPROC_DIR`` for this start, merged by ``/metrics``, removed at exit.

The listening socket is made here with ``TCP_NODELAY`` (and ``IPPROTO_TCP`` as its protocol,
so asyncio sets the option on every accepted connection as well): uvicorn's own socket for
several workers has neither, and a response written as two segments (headers, then body)
then waits for the client's delayed ACK, about 40 ms a request.
"""

from __future__ import annotations

import inspect
import os
import shutil
import socket
import tempfile
from dataclasses import replace
from pathlib import Path

from amml.serve.config import CONFIG_ENV, ServeConfig

FACTORY = "amml.serve.app:app_from_env"


def serve(config: ServeConfig, *, host: str = "127.0.0.1", port: int = 8000,
          workers: int = 1, log_level: str = "warning", access_log: bool = False,
          graceful_timeout: int = 10) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM: in-flight requests are finished first)."""
    import uvicorn

    if config.home is not None:
        config = replace(config, home=str(Path(config.home).resolve()))
    folder = None
    if workers > 1:
        folder = tempfile.mkdtemp(prefix="amml-serve-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        config = replace(config, metrics_multiprocess=True)
    os.environ[CONFIG_ENV] = config.to_json()
    settings = uvicorn.Config(FACTORY, factory=True, host=host, port=port, workers=workers,
                              log_level=log_level, access_log=access_log,
                              timeout_graceful_shutdown=graceful_timeout, lifespan="on",
                              server_header=False)
    try:
        if workers > 1:
            from uvicorn.supervisors import Multiprocess

            sock = tcp_socket(host, port)
            if "target" in inspect.signature(Multiprocess).parameters:  # uvicorn < 0.30
                supervisor = Multiprocess(settings, target=uvicorn.Server(settings).run,
                                          sockets=[sock])
            else:
                supervisor = Multiprocess(settings, sockets=[sock])
            supervisor.run()
        else:
            uvicorn.Server(settings).run(sockets=[tcp_socket(host, port)])
    except KeyboardInterrupt:
        pass
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def tcp_socket(host: str, port: int) -> socket.socket:
    """A bound listening socket whose accepted connections send without Nagle's delay."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock
