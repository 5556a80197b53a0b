"""The classify agent's driver: objects handed over by the ingest agent, classified.

Thin: it reads each object's stored light curve, runs the pure classification core
(:func:`nightjar.runner.classify.classify_history`) off the event loop, writes the
probabilities and features through the store's one writer, and publishes one
``lc_classifier`` record per classified object on the output stream.  Messages are
acknowledged (offsets committed) only after that, so a crash reclassifies at most the
batch in flight, which rewrites the same documents.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ml.anomaly.model import AnomalyModel
from ml.lc_classifier.model import HierarchicalModel
from nightjar.core.lightcurve import ObjectHistory, ObjectWrite
from nightjar.runner.classify import Classification, classify_history
from nightjar.runner.filters import FilterEngine
from nightjar.runner.ingest import StepStats
from nightjar.runner.records import CONTAINERS, OutputCodec, lc_classification_record
from nightjar.store import NightjarStore
from nightjar.surveys.registry import HISTORY_FIELDS
from stream.driver import now_ms, until_done
from stream.metrics import WorkerMetrics

log = logging.getLogger(__name__)
Send = Callable[[str, bytes | None, bytes], Awaitable[Any]]


def classify_all(model: HierarchicalModel, histories: dict[str, ObjectHistory],
                 anomaly_model: AnomalyModel | None = None,
                 lsst_model: HierarchicalModel | None = None,
                 lsst_anomaly_model: AnomalyModel | None = None
                 ) -> list[tuple[ObjectWrite, Classification]]:
    """Classify (and score) each stored object that passes the detection threshold
    (pure, CPU)."""
    out = []
    for history in histories.values():
        try:
            result = classify_history(model, history, anomaly_model, lsst_model,
                                      lsst_anomaly_model)
        except Exception:  # one object must not stop the others; it is logged
            log.exception("classifying %s failed", history.oid)
            continue
        if result is not None:
            out.append(result)
    return out


def latest_alert(history: ObjectHistory) -> dict[str, Any]:
    """The object's most recent detection that was an alert of its own (else any)."""
    dets = list(history.detections.values())
    own = [d for d in dets if d.get("has_stamp")] or dets
    return max(own, key=lambda d: (d["mjd"], d["candid"]))


class ClassifyDriver:
    """Classify batches of object ids and publish the results."""

    def __init__(self, store: NightjarStore, model: HierarchicalModel, send: Send, *,
                 classifications_topic: str, metrics: WorkerMetrics,
                 anomaly_model: AnomalyModel | None = None,
                 lsst_model: HierarchicalModel | None = None,
                 lsst_anomaly_model: AnomalyModel | None = None,
                 filters: FilterEngine | None = None,
                 max_retry_delay: float = 30.0, codec: OutputCodec = CONTAINERS):
        self.store = store
        self.codec = codec
        self.filters = filters
        self.model = model
        self.anomaly_model = anomaly_model
        self.lsst_model = lsst_model
        self.lsst_anomaly_model = lsst_anomaly_model
        self.send = send
        self.classifications_topic = classifications_topic
        self.metrics = metrics
        self.max_retry_delay = max_retry_delay

    async def _retry(self, what: str, action: Callable[[], Awaitable[Any]]) -> Any:
        # the store or broker failing is not the objects' fault: retry until it works
        return await until_done(what, action, self.metrics, self.max_retry_delay)

    async def handle(self, oids: Sequence[str]) -> int:
        """Classify these objects (duplicates merged); returns how many were classified."""
        unique = list(dict.fromkeys(oids))
        start = time.perf_counter()
        histories = await self._retry(
            "classify-load", lambda: self.store.load_histories(unique, HISTORY_FIELDS))
        results = await asyncio.to_thread(classify_all, self.model, histories,
                                          self.anomaly_model, self.lsst_model,
                                          self.lsst_anomaly_model)
        if results:
            await self._retry("classify-store", lambda: self.store.write(
                [write for write, _ in results]))
            stamp = now_ms()
            messages = [(write.oid.encode(), self.codec.encode(
                "classification", lc_classification_record(
                    write.current, latest_alert(histories[write.oid]), result.rows,
                    processed_time_ms=stamp))) for write, result in results]

            async def publish() -> None:
                deliveries = [await self.send(self.classifications_topic, k, v)
                              for k, v in messages]
                await asyncio.gather(*deliveries)

            await self._retry("classify-publish", publish)
            events = [w.classification_event for w, _ in results if w.classification_event]
            engine = self.filters
            if engine is not None and events:
                # users' classification-stage filters: the classification is stored,
                # so a match here is one the archive's backfill would give
                await self._retry("classify-filters", lambda: engine.on_classified(events))
        self.metrics.observe_step("classify", StepStats(
            n_in=len(unique), n_out=len(results), seconds=time.perf_counter() - start))
        return len(results)
