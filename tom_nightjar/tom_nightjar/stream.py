"""A saved filter's matches into the TOM as they happen.

The gateway's ``filterMatches`` subscription wakes the loop; the paged ``filterMatches``
query is the record: each wake-up (and a poll every ``poll_s`` seconds, in case a
message was lost with a connection) reads every match after the last one taken, so a
restart, a reconnect or a message missed loses nothing and takes nothing twice.  The
last match taken is kept per filter in the TOM's database (:class:`StreamCursor`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from nightjar_client import Nightjar
from tom_targets.models import Target, TargetExtra

from tom_nightjar import core
from tom_nightjar.models import StreamCursor

log = logging.getLogger(__name__)


@dataclass
class StreamSummary:
    """What a stream did: matches taken (woken by the subscription or found by a poll),
    targets made, photometry points added."""

    matches: int = 0
    live: int = 0
    polled: int = 0
    targets_created: int = 0
    points: int = 0
    last_seq: int = 0
    oids: list[str] = field(default_factory=list)


def take_match(nj: Nightjar, match: dict[str, Any], summary: StreamSummary, *,
               photometry: bool = True) -> None:
    """One match into the TOM: the target (made when new, with its light curve), the
    filter noted on it."""
    result = core.match_result(match)
    target = Target.objects.filter(name=result["name"]).first()
    if target is None:
        target = core.new_target(result)
        target.save(extras=core.target_extras(result))
        summary.targets_created += 1
    if photometry:  # a new target's light curve; a known one's new detection and limits
        summary.points += core.refresh_photometry(nj, target)
    TargetExtra.objects.update_or_create(target=target, key="nightjar_last_match",
                                         defaults={"value": f"{result['filter']} v"
                                                            f"{result['version']} seq "
                                                            f"{result['seq']}"})
    summary.matches += 1
    summary.last_seq = max(summary.last_seq, int(match["seq"]))
    summary.oids.append(result["name"])
    StreamCursor.objects.update_or_create(filter_id=str(match["filter_id"]),
                                          defaults={"last_seq": summary.last_seq})


def catch_up(nj: Nightjar, filter_id: str, summary: StreamSummary, limit: int | None,
             *, photometry: bool = True) -> int:
    """Take every match after the last one taken (at most ``limit`` in all)."""
    cursor = StreamCursor.objects.filter(filter_id=filter_id).first()
    summary.last_seq = max(summary.last_seq, cursor.last_seq if cursor else 0)
    taken = 0
    while limit is None or summary.matches < limit:
        page = nj.filter_matches(filter_id, after=summary.last_seq, max_results=100)
        if not page:
            break
        for match in page:
            if limit is not None and summary.matches >= limit:
                break
            take_match(nj, match, summary, photometry=photometry)
            taken += 1
        if len(page) < 100:
            break
    return taken


async def stream(nj: Nightjar, filter_id: str, *, max_matches: int | None = None,
                 duration_s: float | None = None, poll_s: float = 30.0,
                 photometry: bool = True,
                 on_ready: Callable[[], None] | None = None) -> StreamSummary:
    """Take a filter's matches until ``max_matches`` or ``duration_s`` [s]."""
    summary = StreamSummary()
    deadline = None if duration_s is None else time.monotonic() + duration_s
    wake = asyncio.Event()
    take = sync_to_async(catch_up, thread_sensitive=True)

    async def listen() -> None:
        async for _ in nj.subscribe_filter(filter_id):
            wake.set()

    listener = asyncio.create_task(listen())
    try:
        summary.polled += await take(nj, filter_id, summary, max_matches,
                                     photometry=photometry)
        if on_ready is not None:
            on_ready()
        while max_matches is None or summary.matches < max_matches:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            woken = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), min(poll_s, left) if left else poll_s)
                woken = True
            wake.clear()
            if listener.done() and listener.exception() is not None:
                raise listener.exception()  # type: ignore[misc]
            taken = await take(nj, filter_id, summary, max_matches, photometry=photometry)
            if woken:
                summary.live += taken
            else:
                summary.polled += taken
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener
    return summary
