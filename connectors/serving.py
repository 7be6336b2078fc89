"""Serving an ASGI application on sockets bound before anything else starts.

``junction broker serve`` and ``junction connector serve`` bind their address first, so
a host that does not resolve or a port already in use stops the command with one line
before a database is migrated or a key created, and uvicorn then serves on exactly the
sockets bound (it would otherwise bind again, and only report a failure as a log line
and exit status 3 after start-up).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress

import uvicorn
from starlette.types import ASGIApp

from connectors.errors import ConfigError

__all__ = ["ListenError", "listening", "serve"]

_log = logging.getLogger("uvicorn.error")


class ListenError(ConfigError):
    """The address cannot be listened on: a host that does not resolve, a port in use."""


@contextmanager
def listening(host: str, port: int) -> Iterator[list[socket.socket]]:
    """Sockets bound to every address ``host`` names, on ``port``; closed on leaving.

    Binds as asyncio's ``create_server`` (which uvicorn uses) would: each address
    ``host`` resolves to, IPv6 ones for IPv6 only. Raises ``ListenError`` naming the
    address and why it cannot be used.
    """
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with ExitStack() as stack:
        try:
            addresses = socket.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            sockets = []
            for family, kind, proto, _, address in dict.fromkeys(addresses):
                sock = stack.enter_context(socket.socket(family, kind, proto))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sockets.append(sock)
        except (OSError, OverflowError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ListenError(f"cannot listen on {where}: {reason}") from None
        yield sockets


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, url: str) -> None:
        super().__init__(config)
        self._url = url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # uvicorn announces the address only when it binds the sockets itself.
        _log.info("Uvicorn running on %s (Press CTRL+C to quit)", self._url)


def serve(app: ASGIApp, sockets: list[socket.socket], *, host: str, port: int) -> None:
    """Serve ``app`` on ``sockets`` (from ``listening``) until stopped.

    Exits with status 3, as uvicorn does, if the application's own start-up fails.
    """
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    server = _Server(uvicorn.Config(app, log_config=None), url)
    with suppress(KeyboardInterrupt):  # Ctrl-C: stopped as asked
        server.run(sockets=sockets)
    if not server.started:
        raise SystemExit(3)
