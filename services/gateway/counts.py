"""Counts that would scan a collection, kept for a few seconds per gateway process.

``totalCount`` of a filtered listing and the status page's objects per survey are counts
over the objects collection; computed on every request they scan it on every request
(a page through a listing asks for the same count on every page).  Here each distinct
count is computed at most once per ``ttl_s`` per process, and concurrent requests for the
same count share one computation.  The price is staleness: a count may lag the store by
up to ``ttl_s`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable


class CountCache:
    """Counts by key, each reused for ``ttl_s`` seconds (at most ``max_entries`` kept)."""

    def __init__(self, ttl_s: float = 10.0, max_entries: int = 1024,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl_s, self.max_entries, self.clock = ttl_s, max_entries, clock
        self._entries: OrderedDict[str, tuple[float, asyncio.Future[int]]] = OrderedDict()
        self.computed = 0  #: counts actually computed (the rest were reused)

    async def get(self, key: str, compute: Callable[[], Awaitable[int]]) -> int:
        now = self.clock()
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self.ttl_s:
            future = entry[1]
            if not (future.done() and future.exception() is not None):
                self._entries.move_to_end(key)
                return await asyncio.shield(future)
        future = asyncio.get_running_loop().create_future()
        self._entries[key] = (now, future)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        self.computed += 1
        try:
            value = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a failed count is not cached, nor logged twice
            self._entries.pop(key, None)
            raise
        future.set_result(value)
        return value
