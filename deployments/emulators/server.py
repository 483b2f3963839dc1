"""Run any ASGI app with uvicorn on loopback, on a free port, in a background thread.

    with BackgroundServer(app) as server:
        httpx.get(f"{server.url}/health")

The socket is bound before uvicorn starts, so `port=0` never races another process for the port.
Only loopback addresses are accepted.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from gitops.errors import SandboxError

LOOPBACK = "127.0.0.1"


def _require_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"emulators bind to loopback only, not {host!r}")


def bind_socket(host: str = LOOPBACK, port: int = 0) -> socket.socket:
    """A listening-ready TCP socket bound to host:port (port 0: a free one) on loopback."""
    _require_loopback(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class BackgroundServer:
    """An ASGI app served by uvicorn on loopback from a daemon thread; start() waits for it."""

    def __init__(self, app: Any, *, host: str = LOOPBACK, port: int = 0,
                 log_level: str = "warning", startup_timeout: float = 10.0) -> None:
        _require_loopback(host)
        self.app = app
        self.host = host
        self._requested_port = port
        self._log_level = log_level
        self._startup_timeout = startup_timeout
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port the server listens (or last listened) on; known once started."""
        if self._port is None:
            raise SandboxError("server was never started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321 (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """True between a successful start() and stop()."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> BackgroundServer:
        """Bind, start uvicorn in a thread and return once it accepts requests."""
        if self.running:
            return self
        self._socket = bind_socket(self.host, self._requested_port)
        self._port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(self.app, log_level=self._log_level, access_log=False,
                                lifespan="off")
        self._server = uvicorn.Server(config)
        self._error = None
        self._thread = threading.Thread(target=self._run, name=f"asgi-server-{self.port}",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise SandboxError(f"ASGI server on {self.host} did not start: {self._error!r}")
            time.sleep(0.01)
        return self

    def _run(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as ex:  # noqa: BLE001 - reported by start()
            self._error = ex

    def stop(self, timeout: float = 5.0) -> None:
        """Ask uvicorn to exit, wait for the thread, and close the socket. Safe to call twice."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._socket = None
        self._thread = None
        self._server = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
