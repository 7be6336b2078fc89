"""A small TCP proxy that can cut every connection through it and refuse new ones, or
freeze them: hold every byte and every new connection, as a network that drops packets
does, until it is restored.

Put between the broker and PostgreSQL, it makes the database unreachable for that
broker alone, without touching a server other tests share. It runs its own event loop
on a thread, so the test's blocking calls never stall the traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream``; ``cut`` and ``restore`` the link."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._down = False
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            writer.close()
            return
        await self._flowing.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._writers.difference_update((writer, up_writer))

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def _cut(self) -> None:
        self._down = True
        for writer in list(self._writers):
            transport = writer.transport
            # An abort, not a close: the peer sees its connection reset at once.
            transport.abort()
        self._writers.clear()

    def _restore(self) -> None:
        self._down = False
        self._flowing.set()

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until ``restore``."""
        self._loop.call_soon_threadsafe(self._cut)

    def freeze(self) -> None:
        """Hold every byte and every new connection until ``restore``: nothing is reset,
        nothing answers."""
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def restore(self) -> None:
        """Let connections through again."""
        self._loop.call_soon_threadsafe(self._restore)

    @contextmanager
    def running(self) -> Iterator[TcpProxy]:
        thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        try:
            yield self
        finally:

            async def stop() -> None:
                if self._server is not None:
                    self._server.close()
                self._cut()
                # Connections still being served end here, not with the loop closed.
                serving = asyncio.all_tasks() - {asyncio.current_task()}
                for task in serving:
                    task.cancel()
                await asyncio.gather(*serving, return_exceptions=True)

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            thread.join(timeout=10)
            self._loop.close()
