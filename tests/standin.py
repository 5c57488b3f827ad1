"""Stand-in HTTP servers written in a test: an aiohttp app served on 127.0.0.1 (a free port)
from a thread of the test process, stopped when the `with` block ends."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Iterator


@contextlib.contextmanager
def running_app(app) -> Iterator[str]:
    """Serve `app` and yield its base URL; readiness is the site having started, not a sleep."""
    from aiohttp import web

    from jupyter_ext.engine import free_port

    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    started, failed = threading.Event(), []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        except Exception as e:  # noqa: BLE001 - reported in the test's thread
            failed.append(e)
        started.set()
        if not failed:
            loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True, name="standin-server")
    thread.start()
    assert started.wait(30), "the stand-in server did not start within 30 s"
    if failed:
        raise failed[0]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
