"""Run an ASGI app (a stand-in for a remote HTTP service) under uvicorn on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from nightjar.processes import free_port


@asynccontextmanager
async def serve_asgi(app: Any, start_timeout: float = 20.0,
                     port: int | None = None) -> AsyncIterator[str]:
    """Serve ``app`` on ``port`` (default: a free one) of 127.0.0.1; yield its base URL;
    stop it afterwards.

    Raises RuntimeError when uvicorn exits or has not started within ``start_timeout`` s.
    """
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    deadline = asyncio.get_running_loop().time() + start_timeout
    while not server.started:
        if task.done() or asyncio.get_running_loop().time() > deadline:
            server.should_exit = True
            failure = task.exception() if task.done() else None
            task.cancel()
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port} within "
                               f"{start_timeout:g} s") from failure
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
