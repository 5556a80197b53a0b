"""The Faust worker: one agent on the alert topic drives the topology.

The agent takes batches of messages (up to ``worker_batch_size``: what queued while the
previous batch was processed plus what arrives within ``worker_batch_seconds``, so
batches grow with the load and a quiet stream waits only that long) and hands them to
:class:`stream.driver.StreamDriver`.
Faust acknowledges a batch's messages only when the loop asks for the next batch, and
commits only acknowledged offsets, so an offset is committed only after its alert is
in the store and its output record is on the output topic: at-least-once delivery,
exactly-once effect in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, cast

import faust
from faust.types import TP

from ml.anomaly.model import AnomalyModel
from ml.lc_classifier.model import HierarchicalModel
from nightjar.runner.delivery import Send, configured_deliverer
from nightjar.runner.filters import FilterEngine, configured_filters
from nightjar.runner.ingest import BatchProcessor, alert_parser
from nightjar.runner.records import CONTAINERS, OutputCodec
from nightjar.runner.topology import DEFAULT_TOPOLOGY, Topology
from nightjar.runner.watch import configured_watch
from nightjar.settings import Settings
from nightjar.store import NightjarStore
from nightjar.store.archive import AlertArchive
from nightjar.store.filters import FilterStore
from stream.classify import ClassifyDriver
from stream.driver import InputMessage, StreamDriver
from stream.kafka import MAX_MESSAGE_BYTES, faust_broker, faust_credentials
from stream.metrics import WorkerMetrics

log = logging.getLogger(__name__)
StoreFactory = Callable[[], AbstractAsyncContextManager[NightjarStore]]


def _message(event: faust.types.EventT) -> InputMessage:
    msg = event.message
    return InputMessage(topic=msg.topic, partition=msg.partition, offset=msg.offset,
                        timestamp_ms=int(msg.timestamp * 1000) if msg.timestamp else None,
                        value=msg.value or b"")


async def _finish_even_if_stopped(batch: Awaitable[Any], grace: float) -> None:
    """Run one batch to completion even when the worker is told to stop meanwhile.

    Faust acknowledges a batch's messages when its ``take_events`` generator is closed,
    also when the agent is cancelled mid-batch; acknowledging a batch that was never
    stored would lose it.  So a stop waits up to ``grace`` seconds for the batch in
    flight.  If it cannot finish (the store is down and the batch is being retried),
    the process exits at once without committing, exactly as after a crash, and the
    batch is processed again on restart.
    """
    task = asyncio.ensure_future(batch)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except (TimeoutError, asyncio.CancelledError):
            log.error("stopping with a batch still in flight; exiting without committing "
                      "its offsets (it is processed again on restart)")
            os._exit(75)  # EX_TEMPFAIL
        raise


class _BoundedStopApp(faust.App):
    """A Faust app whose stop waits for the batch in flight at most ``stop_grace`` [s].

    On stop, Faust's consumer waits (``stream_wait_empty``) until every message taken by
    an agent is acknowledged, *before* it cancels the agents; with the store down the
    batch never finishes, so the stop hung for ever and the grace in
    :func:`_finish_even_if_stopped` never began.  Here that wait is bounded by the same
    grace: past it the process exits 75 without committing, and the batch is processed
    again on restart.  Waits during a rebalance (the app not stopping) are Faust's own.
    """

    stop_grace: float = 30.0

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        if not self.should_stop:
            await super()._consumer_wait_empty(consumer, logger)
            return
        # asyncio.wait, not wait_for: cancelling Faust's wait does not return promptly
        waiting = asyncio.ensure_future(super()._consumer_wait_empty(consumer, logger))
        done, _ = await asyncio.wait({waiting}, timeout=self.stop_grace)
        if done:
            waiting.result()
        else:
            log.error("stopping with a batch still in flight after %.0f s; exiting without "
                      "committing its offsets (it is processed again on restart)",
                      self.stop_grace)
            os._exit(75)  # EX_TEMPFAIL


@contextlib.asynccontextmanager
async def _filter_engine(settings: Settings, store: NightjarStore, send: Send
                         ) -> AsyncIterator[FilterEngine | None]:
    """Users' filters with their delivery (None when the deployment runs none); the
    webhooks in flight are sent before it closes."""
    if not settings.filters:
        yield None
        return
    watch = await configured_watch(settings, store)
    async with configured_deliverer(settings, FilterStore(store), send) as deliverer:
        yield configured_filters(settings, store, watch, deliverer=deliverer).engine


def create_app(settings: Settings, *, store_factory: StoreFactory, archive: AlertArchive,
               metrics: WorkerMetrics, topology: Topology = DEFAULT_TOPOLOGY,
               classifier: HierarchicalModel | None = None,
               anomaly_model: AnomalyModel | None = None,
               lsst_classifier: HierarchicalModel | None = None,
               lsst_anomaly_model: AnomalyModel | None = None,
               agents: tuple[str, ...] = ("pipeline", "classify"),
               codec: OutputCodec = CONTAINERS) -> faust.App:
    """The Faust application of one worker.

    Parameters
    ----------
    settings : Settings
        Kafka cluster, topics, batch sizes.
    store_factory : callable
        Opens the store inside the worker's event loop (the client is injected this
        way because it must be created on the loop that uses it).
    archive : AlertArchive
        Alert archive shared by all workers.
    metrics : WorkerMetrics
        The worker's metrics.
    topology : Topology
        Steps and hooks to run.  In Kafka mode its classify hook only marks objects;
        the pipeline agent forwards them to ``settings.topic_lc_classify``.
    classifier : HierarchicalModel, optional
        The light-curve classifier of the classify agent (that agent runs only with it).
    anomaly_model : AnomalyModel, optional
        The anomaly model the classify agent scores classified objects with.
    lsst_classifier : HierarchicalModel, optional
        The classify agent's LSST light-curve classifier (without it LSST objects stay
        unclassified).
    lsst_anomaly_model : AnomalyModel, optional
        The anomaly model of LSST objects.
    codec : OutputCodec
        How output records are written: the Confluent wire format with registered schema
        ids (:func:`nightjar.runner.output_schemas.output_codec`), or Avro containers.
    agents : tuple of str
        Which agents this worker runs: ``pipeline`` (ingest to publish), ``classify``
        (light-curve classification) and ``relay`` (the external survey stream, e.g.
        Rubin's, re-keyed by object into the alert topic: :mod:`stream.relay`), so each
        can scale on its own.
    """
    app = _BoundedStopApp(
        settings.kafka_group_id,
        broker=faust_broker(settings.kafka_connection()),
        broker_credentials=faust_credentials(settings.kafka_connection()),
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        datadir=str(settings.home / "faust"),
        topic_partitions=settings.alerts_partitions,
        topic_replication_factor=settings.kafka_replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=settings.kafka_session_timeout,
        broker_heartbeat_interval=settings.kafka_session_timeout / 10,
        producer_acks=-1,
        producer_max_request_size=MAX_MESSAGE_BYTES,
        consumer_max_fetch_size=MAX_MESSAGE_BYTES,
        stream_buffer_maxsize=max(4096, 2 * settings.worker_batch_size),
    )
    app.stop_grace = settings.worker_stop_grace
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
                           "value_serializer": "raw"}
    alerts = app.topic(settings.topic_alerts, **raw)
    outputs = {name: app.topic(name, **raw)
               for name in (settings.topic_classifications, settings.topic_dead_letters,
                            settings.topic_lc_classify)}

    async def send(topic: str, key: bytes | None, value: bytes) -> Any:
        return await outputs[topic].send(key=key, value=value)

    async def send_anywhere(topic: str, key: bytes | None, value: bytes) -> Any:
        """Also to topics made at run time (each filter's), created on first use."""
        if topic not in outputs:
            outputs[topic] = app.topic(topic, **raw)
        return await outputs[topic].send(key=key, value=value)

    async def pipeline(stream: faust.StreamT[bytes]) -> None:
        async with store_factory() as store:
            await store.init()
            async with _filter_engine(settings, store, send_anywhere) as filters:
                await _pipeline(stream, store, filters)

    async def _pipeline(stream: faust.StreamT[bytes], store: NightjarStore,
                        filters: FilterEngine | None) -> None:
        driver = StreamDriver(
            BatchProcessor(store, archive, topology=topology,
                           parser=alert_parser(settings), filters=filters), send,
            classifications_topic=settings.topic_classifications,
            dead_letters_topic=settings.topic_dead_letters, metrics=metrics,
            # the topology's classify hook decides which objects are forwarded
            classify_topic=settings.topic_lc_classify, codec=codec)
        # take_events is on faust.Stream; the StreamT protocol does not declare it
        batches = cast(faust.Stream[bytes], stream).take_events(
            settings.worker_batch_size, within=settings.worker_batch_seconds)
        async for events in batches:
            messages = [_message(e) for e in events]
            await _finish_even_if_stopped(driver.handle(messages),
                                          settings.worker_stop_grace)
            last: dict[TP, int] = {}
            for m in messages:
                tp = TP(m.topic, m.partition)
                last[tp] = max(last.get(tp, -1), m.offset)
            for tp, offset in last.items():
                highwater = app.consumer.highwater(tp)
                if highwater is not None:
                    metrics.lag.labels(tp.topic, str(tp.partition)).set(
                        max(0, highwater - offset - 1))

    async def classify(stream: faust.StreamT[bytes]) -> None:
        assert classifier is not None
        async with store_factory() as store, _filter_engine(settings, store,
                                                             send_anywhere) as filters:
            driver = ClassifyDriver(store, classifier, send, anomaly_model=anomaly_model,
                                    lsst_model=lsst_classifier,
                                    lsst_anomaly_model=lsst_anomaly_model,
                                    classifications_topic=settings.topic_classifications,
                                    metrics=metrics, filters=filters, codec=codec)
            batches = cast(faust.Stream[bytes], stream).take_events(
                settings.classify_batch_size, within=settings.worker_batch_seconds)
            async for events in batches:
                oids = [bytes(e.message.value or b"").decode() for e in events]
                await _finish_even_if_stopped(driver.handle([o for o in oids if o]),
                                              settings.worker_stop_grace)

    async def relay_source() -> None:
        from stream.kafka import new_producer
        from stream.relay import relay, source_consumer

        consumer = source_consumer(settings)
        producer = new_producer(settings.kafka_connection())
        await consumer.start()
        await producer.start()
        try:
            summary = await relay(consumer, producer, settings.source_topic_pattern,
                                  settings.topic_alerts, batch_size=settings.worker_batch_size,
                                  parser=alert_parser(settings))
            log.info("relay stopped after %d messages", summary.forwarded)
        finally:
            await producer.stop()
            await consumer.stop()

    if "pipeline" in agents:
        app.agent(alerts, name="nightjar-pipeline")(pipeline)
    if "relay" in agents:
        app.task(relay_source)
    if "classify" in agents and classifier is not None:
        lc_topic = app.topic(settings.topic_lc_classify, **raw)
        app.agent(lc_topic, name="nightjar-lc-classifier")(classify)
    return app
