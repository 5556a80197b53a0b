"""The live hub: one feed per gateway, fanned out to subscriptions through bounded queues.

A feed yields batches of events (:mod:`nightjar.core.live`) as the pipeline stores them:

* :class:`StoreFeed` (the embedded default) polls the store's ``live_events``
  collection by sequence number: cheap (one indexed query per poll interval, whatever
  the number of subscribers), works across processes and on any MongoDB (change
  streams would need a replica set; nx-27017 has them, a standalone mongod has not).
  Every read is an equality read (nx-27017 scans the collection for a range on
  ``_id``).  A sequence number allocated but not yet visible (a concurrent writer) is
  waited for up to ``gap_wait_s``, then skipped, with any missing ones right after it.
* :class:`KafkaFeed` consumes the ``nightjar-classifications`` topic from its latest
  offset without a consumer group (every gateway instance sees every record).

Slow subscribers never slow the feed or each other: each subscription has a queue of
at most ``queue_size`` events; when it is full the **oldest** event is dropped and the
next message the subscriber gets says how many it missed (``missed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol

from nightjar.core.live import Event, events_from_output_record
from nightjar.runner.records import decode, wire_schema_id
from nightjar.store.mongo import NightjarStore

if TYPE_CHECKING:  # aiokafka only where the Kafka feed is used
    from aiokafka import AIOKafkaConsumer

log = logging.getLogger(__name__)


class LiveFeed(Protocol):
    name: str

    def batches(self) -> AsyncIterator[list[Event]]: ...


class StoreFeed:
    """Events from the store's ``live_events`` collection, newest first read at start."""

    name = "store"

    def __init__(self, store: NightjarStore, poll_s: float = 0.05, gap_wait_s: float = 2.0):
        self.store = store
        self.poll_s = poll_s
        self.gap_wait_s = gap_wait_s

    async def batches(self) -> AsyncIterator[list[Event]]:
        next_seq = await self.store.live_head() + 1
        yield []  # positioned: everything stored from now on is delivered
        gap_since: float | None = None
        while True:
            doc = await self.store.live_batch(next_seq)
            if doc is not None:
                gap_since = None
                next_seq += 1
                yield doc["events"]
                continue  # more may be waiting
            head = await self.store.live_head()
            if head >= next_seq:  # allocated by a writer, not visible yet (or pruned)
                now = time.monotonic()
                gap_since = gap_since or now
                if now - gap_since >= self.gap_wait_s:  # the run of missing ones goes on
                    log.warning("live feed: batch %d never appeared; skipped", next_seq)
                    next_seq += 1
                    continue
            await asyncio.sleep(self.poll_s)


class KafkaFeed:
    """Events from the output topic, read by a consumer (no group, from the latest offset)
    made by the injected factory (a new one after a failure)."""

    name = "kafka"

    def __init__(self, consumer_factory: Callable[[], AIOKafkaConsumer], topic: str,
                 schema_of: Callable[[int], Any] | None = None):
        self.consumer_factory = consumer_factory
        self.topic = topic
        #: schema id -> writer schema, for wire-format records (a registry configured)
        self.schema_of = schema_of
        self._resolved: set[int] = set()

    async def _resolve_schemas(self, values: list[bytes | None]) -> None:
        """Ask the registry for the schema ids not seen before, off the event loop (its
        client blocks); each id once, then decoding finds them cached."""
        if self.schema_of is None:
            return
        ids = {i for v in values if v is not None
               if (i := wire_schema_id(v)) is not None} - self._resolved
        for schema_id in ids:
            try:
                await asyncio.to_thread(self.schema_of, schema_id)
                self._resolved.add(schema_id)
            except Exception as exc:  # the records say so when they are decoded
                log.warning("live feed: schema id %d not resolved: %s", schema_id, exc)

    async def batches(self) -> AsyncIterator[list[Event]]:
        consumer = self.consumer_factory()
        consumer.subscribe([self.topic])
        await consumer.start()
        try:
            # aiokafka signals no event when the partitions are assigned: poll
            while not consumer.assignment():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            for tp in consumer.assignment():  # resolve "latest" now, not at the first fetch
                await consumer.position(tp)
            yield []  # positioned: everything published from now on is delivered
            while True:
                fetched = await consumer.getmany(timeout_ms=200)
                received_ms = time.time_ns() // 1_000_000
                events: list[Event] = []
                await self._resolve_schemas([m.value for ms in fetched.values() for m in ms])
                for messages in fetched.values():
                    for message in messages:
                        try:
                            for record in decode(message.value, self.schema_of):
                                events += events_from_output_record(record, received_ms)
                        except Exception:  # a record we cannot read must not stop the feed
                            log.exception("live feed: unreadable record at %s/%d offset %d",
                                          message.topic, message.partition, message.offset)
                if events:
                    yield events
        finally:
            await consumer.stop()


class Subscription:
    """One subscriber's bounded queue: drop-oldest, counting what was dropped."""

    def __init__(self, select: Callable[[Event], list[Any]], queue_size: int,
                 on_drop: Callable[[int], None]):
        self.select = select
        self.items: deque[Any] = deque()
        self.queue_size = queue_size
        self.missed = 0
        self._ready = asyncio.Event()
        self._on_drop = on_drop

    def offer(self, event: Event) -> None:
        items = self.select(event)
        if not items:
            return
        dropped = 0
        for item in items:
            if len(self.items) >= self.queue_size:
                self.items.popleft()
                dropped += 1
            self.items.append(item)
        if dropped:
            self.missed += dropped
            self._on_drop(dropped)
        self._ready.set()

    async def get(self) -> tuple[Any, int]:
        """The oldest queued item and how many were dropped before it (then reset)."""
        while not self.items:
            self._ready.clear()
            await self._ready.wait()
        missed, self.missed = self.missed, 0
        return self.items.popleft(), missed


class LiveHub:
    """Runs one feed (started with the first subscription) and fans its events out."""

    def __init__(self, feed: LiveFeed, queue_size: int = 1000,
                 on_drop: Callable[[int], None] = lambda n: None,
                 on_events: Callable[[int], None] = lambda n: None,
                 on_count: Callable[[int], None] = lambda n: None):
        self.feed = feed
        self.queue_size = queue_size
        self.subscriptions: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._on_drop = on_drop
        self._on_events = on_events
        self._on_count = on_count
        #: set once the feed is positioned (what is stored after that is delivered)
        self.ready = asyncio.Event()

    async def _run(self) -> None:
        while True:
            try:
                async for events in self.feed.batches():
                    self.ready.set()
                    self._on_events(len(events))
                    for event in events:
                        for sub in list(self.subscriptions):
                            sub.offer(event)
            except asyncio.CancelledError:
                raise
            except Exception:  # a feed failure (store or broker away): retry, keep clients
                self.ready.clear()
                log.exception("live feed %s failed; restarting in 1 s", self.feed.name)
                await asyncio.sleep(1.0)

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"live-feed-{self.feed.name}")

    @contextlib.asynccontextmanager
    async def subscribe(self, select: Callable[[Event], list[Any]]
                        ) -> AsyncIterator[Subscription]:
        """A subscription receiving what ``select`` takes from each event."""
        sub = Subscription(select, self.queue_size, self._on_drop)
        self.subscriptions.add(sub)
        self._on_count(len(self.subscriptions))
        self._ensure_running()
        try:
            yield sub
        finally:
            self.subscriptions.discard(sub)
            self._on_count(len(self.subscriptions))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
