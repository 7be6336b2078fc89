"""The demo region served on a real socket, for a real browser.

The region (six real connectors and a real broker, ``tests/broker/town_kit.py``) runs in
its own event loop on a background thread; uvicorn serves the broker app on a free
loopback port from that loop, while connectors stay reached through the in-process
routing transport.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from tests.broker.town_kit import Region, region


@dataclass
class LiveRegion:
    url: str
    region: Region
    loop: asyncio.AbstractEventLoop

    def call(self, coroutine: Any) -> Any:
        """Run a coroutine on the region's loop (e.g. to take a connector down)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)


@contextmanager
def live_region(root: Path, people: int = 300) -> Iterator[LiveRegion]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    ready = threading.Event()
    stop: dict[str, Any] = {}
    failure: list[BaseException] = []

    async def main() -> None:
        async with region(root, people) as running:
            config = uvicorn.Config(running.app, log_config=None, lifespan="off")
            server = uvicorn.Server(config)
            stop["server"] = server
            stop["live"] = LiveRegion(
                f"http://127.0.0.1:{port}", running, asyncio.get_running_loop()
            )
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.02)
            ready.set()
            await serving

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - reported to the waiting test
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="live-region", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not ready.wait(0.1):
        if time.monotonic() > deadline:
            raise RuntimeError("the demo region did not start in 120 s")
    if failure:
        raise RuntimeError(f"the demo region failed to start: {failure[0]!r}")
    try:
        yield stop["live"]
    finally:
        stop["server"].should_exit = True
        thread.join(timeout=30)
        sock.close()
