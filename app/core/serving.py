"""Serving over HTTP with uvicorn: one process, or several each with a listening socket of its own.

uvicorn's `--workers` binds one socket in the parent and every worker accepts from it. The
worker that wakes first takes every connection waiting, so the long-lived connections of a
client's pool pile up on one worker while the others idle: bench/consent.py's 16 keep-alive
connections went 14 to one worker and 2 to the other, or all 16 to one (570–1,080 token
exchanges/s on the same code). On Linux each worker here binds its own socket on the address
with SO_REUSEPORT instead, and the kernel spreads new connections over the workers' sockets.
uvicorn's supervisor still starts, watches, restarts and stops the workers.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from app.core.errors import AppError

log = logging.getLogger(__name__)

APP = "app.main:create_app"


def _listener(host: str, port: int) -> list[socket.socket]:
    """A worker's own listening socket: one of the group bound to HOST:PORT with SO_REUSEPORT."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((host, port))
    return [listener]


class OwnListeners(list[socket.socket]):
    """What uvicorn's supervisor hands each worker it starts (or restarts) as its sockets.

    The supervisor pickles its socket list into each worker process; this one arrives there
    as a new socket of the worker's own (`__reduce__`), so no worker shares another's accept
    queue, and a restarted worker binds again by itself. The parent holds no listening socket:
    one that never accepted would get its share of the connections all the same.
    """

    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.address = (host, port)

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return (_listener, self.address)


def balances_connections(port: int) -> bool:
    # SO_REUSEPORT spreads connections over the group's sockets on Linux only (elsewhere one
    # socket of the group gets them all), and port 0 would give each worker a port of its own.
    return port != 0 and sys.platform == "linux"


def serve(*, host: str, port: int, workers: int) -> None:
    options: dict[str, Any] = {"factory": True, "log_config": None, "proxy_headers": True}
    if workers == 1:
        uvicorn.run(APP, host=host, port=port, **options)
        return
    config = uvicorn.Config(APP, host=host, port=port, workers=workers, **options)
    if not balances_connections(port):
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    # Bound once without SO_REUSEPORT: if anything listens on the address already (another
    # tsunagu too, which the workers' SO_REUSEPORT would otherwise quietly share it with),
    # this fails here, once, with the reason.
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise AppError(
                f"{host}:{port} で待ち受けできません / cannot listen on {host}:{port}: {exc.strerror}"
            ) from exc
    log.info("serving on http://%s:%d with %d workers, each with its own socket", host, port, workers)
    Multiprocess(config, sockets=OwnListeners(host, port)).run()
