"""The embedded pipeline runner: files in, store and archive updated, a summary out.

The step cores (:meth:`nightjar.surveys.registry.AlertParser.parse` and the per-object steps of
:mod:`nightjar.runner.topology`) are pure; :class:`BatchProcessor` is the thin driver that
chains them with the archive and the store.  The Kafka worker drives the same
processor.
"""

from __future__ import annotations

import asyncio
import logging
import tarfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml.stamp_classifier import NAME as STAMP_CLASSIFIER
from nightjar.core.association import COUNTERPART_RADIUS_ARCSEC, Placed, associate
from nightjar.core.lightcurve import (
    ObjectHistory,
    ObjectState,
    ObjectWrite,
    group_by_object,
    merge_alerts,
    plan_write,
)
from nightjar.core.packet_history import PacketWindow, complete_from_packets, packet_windows
from nightjar.core.solar_system import plan_solar_system
from nightjar.runner.filters import FilterEngine
from nightjar.runner.topology import DEFAULT_TOPOLOGY, Topology
from nightjar.settings import Settings
from nightjar.store.archive import AlertArchive
from nightjar.store.mongo import NightjarStore
from nightjar.surveys.avro import AVRO_MAGIC
from nightjar.surveys.interface import SURVEY_NAMES, ZTF, AlertSource, DeadLetter, ParsedAlert
from nightjar.surveys.registry import (
    HISTORY_FIELDS,
    PHOTOMETRY,
    AlertParser,
    make_parser,
    photometry_rules,
)

log = logging.getLogger(__name__)

AVRO_SUFFIXES = (".avro",)
TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")


@dataclass(frozen=True)
class RawInput:
    """One input payload (file or message) and where it came from.

    ``error`` is set when the input could not even be read; it is dead-lettered
    with that reason.
    """

    raw: bytes
    source: AlertSource
    error: str | None = None


def _is_tar(path: Path) -> bool:
    return path.name.endswith(TAR_SUFFIXES)


def looks_like_alert(head: bytes) -> bool:
    """Whether bytes start like an alert of some survey: an Avro object container (ZTF,
    LSST files) or a Confluent wire-format message (LSST's Kafka)."""
    return head[:4] == AVRO_MAGIC or (len(head) >= 5 and head[0] == 0)


def _starts_like_alert(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return looks_like_alert(fh.read(5))
    except OSError:
        return True  # unreadable: read again later and dead-lettered with the reason


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files named, and under directories named the .avro files, tar archives and any
    file whose first bytes are an alert's (:func:`looks_like_alert`), in sorted order.

    The survey is recognised later from the content, never from the file name.
    """
    out: list[Path] = []
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"no such file or directory: {path}")
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file() and (
                p.name.endswith(AVRO_SUFFIXES) or _is_tar(p) or _starts_like_alert(p)))
        else:
            out.append(path)
    return out


def _tar_inputs(path: Path) -> Iterator[RawInput]:
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                fh = tar.extractfile(member)
                data = fh.read() if fh else b""
                if member.name.endswith(AVRO_SUFFIXES) or looks_like_alert(data[:5]):
                    yield RawInput(data, AlertSource("file", path=f"{path}:{member.name}"))
    except (tarfile.TarError, OSError, EOFError) as exc:
        yield RawInput(b"", AlertSource("file", path=str(path)),
                       error=f"unreadable tar archive: {exc}")


def iter_inputs(files: Iterable[Path]) -> Iterator[RawInput]:
    """Read files (Avro containers, wire-format messages, or tar archives of them) as
    :class:`RawInput`."""
    for path in files:
        if _is_tar(path):
            yield from _tar_inputs(path)
            continue
        try:
            yield RawInput(path.read_bytes(), AlertSource("file", path=str(path)))
        except OSError as exc:
            yield RawInput(b"", AlertSource("file", path=str(path)),
                           error=f"unreadable file: {exc.strerror}")


def batched(items: Iterable[RawInput], size: int) -> Iterator[list[RawInput]]:
    batch: list[RawInput] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class StepStats:
    """Counts of one step over one batch: alerts in, out, dead-lettered; seconds spent."""

    n_in: int = 0
    n_out: int = 0
    n_dead: int = 0
    seconds: float = 0.0


@dataclass
class BatchResult:
    inputs: int = 0
    alerts: list[ParsedAlert] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    writes: list[ObjectWrite] = field(default_factory=list)
    #: each stored object's document after this batch (what the publish step reports)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the corrected detection of each stored alert's own detection, by detection key
    detections: dict[int | str, dict[str, Any]] = field(default_factory=dict)
    #: classifier rows of objects (re)classified inline in this batch, by oid
    probabilities: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: objects to hand to the classify agent (Kafka mode), in batch order
    to_classify: list[str] = field(default_factory=list)
    #: alerts of solar-system sources that belong to no object (stored apart)
    solar_system: list[ParsedAlert] = field(default_factory=list)
    #: each stored object's state after the per-object steps (the filter stage reads it)
    states: dict[str, ObjectState] = field(default_factory=dict)
    #: new matches of users' filters (the filter stage, after the store)
    filter_matches: list[dict[str, Any]] = field(default_factory=list)
    new_detections: int = 0
    objects_written: int = 0
    steps: dict[str, StepStats] = field(default_factory=lambda: defaultdict(StepStats))


@dataclass
class IngestSummary:
    inputs: int = 0
    alerts_stored: int = 0
    dead_lettered: int = 0
    new_detections: int = 0
    objects_written: int = 0
    objects_seen: set[str] = field(default_factory=set)
    #: objects (re)classified by the light-curve classifier
    classified: set[str] = field(default_factory=set)
    #: objects classified by the stamp classifier (their first alert)
    stamp_classified: set[str] = field(default_factory=set)
    reasons: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    #: alerts of solar-system sources stored apart (no object)
    solar_system: int = 0
    #: stored alerts per survey
    by_survey: Counter[str] = field(default_factory=Counter)

    def add(self, result: BatchResult) -> None:
        self.inputs += result.inputs
        self.alerts_stored += len(result.alerts) + len(result.solar_system)
        self.solar_system += len(result.solar_system)
        self.by_survey.update(a.survey for a in (*result.alerts, *result.solar_system))
        self.dead_lettered += len(result.dead_letters)
        self.new_detections += result.new_detections
        self.objects_written += result.objects_written
        self.objects_seen.update(a.oid for a in result.alerts)
        for oid, rows in result.probabilities.items():
            names = {row["classifier_name"] for row in rows}
            if STAMP_CLASSIFIER in names:
                self.stamp_classified.add(oid)
            if names - {STAMP_CLASSIFIER}:
                self.classified.add(oid)
        self.reasons.update(d.reason for d in result.dead_letters)

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds > 0 else 0.0


def alert_parser(settings: Settings) -> AlertParser:
    """The parser of a deployment: LSST schema ids through the configured registry (with
    the bundled schemas as fallback), or the bundled schemas alone."""
    return make_parser(settings.lsst_schema_registry_url, settings.lsst_schema_registry_timeout)


def _failed(alerts: Sequence[ParsedAlert], step: str, exc: Exception) -> list[DeadLetter]:
    """Dead letters for every alert of an object that a step could not process."""
    return [DeadLetter(raw=a.raw, source=a.source, candid=a.candid, oid=a.oid, survey=a.survey,
                       reason=f"step {step} failed: {type(exc).__name__}: {exc}")
            for a in alerts]


class BatchProcessor:
    """Run the topology's steps from *ingest* to *store* over one batch of inputs.

    Parameters
    ----------
    store : NightjarStore
        The database (injected; the processor never opens connections).
    archive : AlertArchive
        Where raw packets and cutouts go before the store is written.
    parser : AlertParser, optional
        Shared parser (every survey) with its writer-schema caches.
    topology : Topology, optional
        The steps and their hooks (default: :data:`nightjar.runner.topology.DEFAULT_TOPOLOGY`).
    filters : FilterEngine, optional
        Users' filters, evaluated on each batch once it is stored (the *filter* step).
    """

    def __init__(self, store: NightjarStore, archive: AlertArchive,
                 parser: AlertParser | None = None, topology: Topology = DEFAULT_TOPOLOGY,
                 filters: FilterEngine | None = None):
        self.store = store
        self.archive = archive
        self.parser = parser or AlertParser()
        self.topology = topology
        self.filters = filters
        self._object_steps = topology.object_steps()
        #: seconds spent per step since creation
        self.stage_seconds: defaultdict[str, float] = defaultdict(float)
        #: objects whose packets could not complete their history, read whole instead
        self.whole_reads = 0

    @contextmanager
    def _timed(self, result: BatchResult, name: str) -> Iterator[StepStats]:
        stats = result.steps[name]
        start = time.perf_counter()
        try:
            yield stats
        finally:
            elapsed = time.perf_counter() - start
            stats.seconds += elapsed
            self.stage_seconds[name] += elapsed

    def parse(self, inputs: Sequence[RawInput]) -> tuple[list[ParsedAlert], list[DeadLetter]]:
        alerts: list[ParsedAlert] = []
        dead: list[DeadLetter] = []
        for item in inputs:
            if item.error:
                dead.append(DeadLetter(raw=item.raw, source=item.source, reason=item.error))
                continue
            good, bad = self.parser.parse(item.raw, item.source)
            alerts += good
            dead += bad
        return alerts, dead

    def _archive(self, alerts: Sequence[ParsedAlert]) -> None:
        for alert in alerts:
            self.archive.put(alert)

    def _run_object_steps(self, result: BatchResult,
                          states: dict[str, ObjectState]) -> dict[str, ObjectState]:
        for step in self._object_steps:
            with self._timed(result, step.name) as stats:
                survivors: dict[str, ObjectState] = {}
                if step.batched and states:
                    try:  # one call for the whole batch (one model run)
                        done = step.run_batch(list(states.values()))
                    except Exception:  # find the object at fault, one at a time below
                        log.warning("batched step %s failed; retrying per object",
                                    step.name, exc_info=True)
                    else:
                        for state in done:
                            survivors[state.oid] = state
                            stats.n_in += len(state.alerts)
                            stats.n_out += len(state.alerts)
                        states = survivors
                        continue
                for oid, state in states.items():
                    stats.n_in += len(state.alerts)
                    try:
                        survivors[oid] = step.run_batch([state])[0]
                        stats.n_out += len(state.alerts)
                    except Exception as exc:  # one bad object must not sink the batch
                        stats.n_dead += len(state.alerts)
                        result.dead_letters += _failed(state.alerts, step.name, exc)
                states = survivors
        return states

    async def _associate(self, new: Sequence[Placed]) -> list[dict[str, Any]]:
        """Cross-survey links of the batch's new objects (a read only where the store
        holds objects of another survey than a new object's)."""
        if not new:
            return []
        surveys = {p.survey for p in new}
        others = [s for s in SURVEY_NAMES if s not in surveys or len(surveys) > 1]
        present = await self.store.surveys_present(others)
        near = [p for p in new if present - {p.survey}]
        stored = await self.store.objects_near([(p.ra, p.dec) for p in near],
                                               COUNTERPART_RADIUS_ARCSEC) if near else []
        placed = [Placed(d["_id"], d.get("survey", ZTF), d["meanra"], d["meandec"], d["hpx"])
                  for d in stored]
        return associate(new, placed)

    async def _histories(self, groups: dict[str, list[ParsedAlert]]
                         ) -> dict[str, ObjectHistory]:
        """What the store holds of the batch's objects; of an object whose packets repeat
        its history, only what the packets lack (:mod:`nightjar.core.packet_history`),
        read whole when the packets cannot complete it."""
        windows: dict[str, PacketWindow | None] = dict(packet_windows(groups, PHOTOMETRY))
        histories = await self.store.load_histories(groups, HISTORY_FIELDS, windows)
        incomplete = []
        for oid in windows:
            done = complete_from_packets(histories[oid], groups[oid],
                                         photometry_rules(groups[oid][0].survey))
            if done is None:
                incomplete.append(oid)
            else:
                histories[oid] = done
        if incomplete:
            self.whole_reads += len(incomplete)
            histories.update(await self.store.load_histories(
                incomplete, HISTORY_FIELDS, dict.fromkeys(incomplete)))
        return histories

    async def process(self, inputs: Sequence[RawInput]) -> BatchResult:
        """Ingest, correct, aggregate, apply hooks and store one batch.

        Raises only when the store or the archive fails (nothing was acknowledged then,
        so the caller may retry the same batch); bad inputs become dead letters.
        """
        result = BatchResult(inputs=len(inputs))
        with self._timed(result, "ingest") as stats:
            alerts, result.dead_letters = self.parse(inputs)
            stats.n_in, stats.n_out, stats.n_dead = len(inputs), len(alerts), len(
                result.dead_letters)
            groups = group_by_object(alerts)
            solar = [a for a in alerts if a.solar_system is not None]
            # archive files (a thread: file I/O releases the GIL) while the history loads;
            # both must finish before anything is written to the store
            archived = asyncio.create_task(asyncio.to_thread(self._archive, alerts))
            try:
                histories, stored_solar = await asyncio.gather(
                    self._histories(groups),
                    self.store.solar_system_objects(
                        a.solar_system["ssObjectId"] for a in solar  # type: ignore[index]
                        if isinstance(a.solar_system.get("ssObjectId"),  # type: ignore[union-attr]
                                      int)))
            finally:
                await archived
            solar_write = plan_solar_system(solar, stored_solar)
            result.solar_system = [a for a in solar if not a.has_object]
            states: dict[str, ObjectState] = {}
            for oid, group in groups.items():
                try:
                    states[oid] = merge_alerts(histories[oid], group,
                                               photometry_rules(group[0].survey))
                except Exception as exc:  # one bad object must not sink the batch
                    stats.n_out -= len(group)
                    stats.n_dead += len(group)
                    result.dead_letters += _failed(group, "ingest", exc)
        states = self._run_object_steps(result, states)
        with self._timed(result, "store") as stats:
            stats.n_in = sum(len(state.alerts) for state in states.values())
            new: list[Placed] = []
            for oid, state in states.items():
                try:
                    write = plan_write(state)
                except Exception as exc:
                    result.dead_letters += _failed(state.alerts, "store", exc)
                    stats.n_dead += len(state.alerts)
                    continue
                result.alerts += state.alerts
                result.objects[oid] = write.current
                result.states[oid] = state
                if state.probabilities:
                    result.probabilities[oid] = state.probabilities
                if state.classify_requested:
                    result.to_classify.append(oid)
                own = {a.key for a in state.alerts}
                result.detections.update((d["_id"], d) for d in state.corrected
                                         if d["_id"] in own)
                if not write.empty:
                    result.writes.append(write)
                if state.history.object_doc is None:
                    new.append(Placed(oid, state.survey, write.current["meanra"],
                                      write.current["meandec"], write.hpx))
            links = await self._associate(new)
            summary = await self.store.write(result.writes, result.dead_letters,
                                             solar_system=solar_write, links=links)
            stats.n_out = len(result.alerts)
        result.new_detections = summary.new_detections
        result.objects_written = summary.objects
        if self.filters is not None:
            with self._timed(result, "filter") as stats:
                stats.n_in = stats.n_out = len(result.alerts)
                try:  # the alerts are stored: a filter fault must not fail the batch
                    result.filter_matches = await self.filters.on_batch(result)
                except Exception:
                    log.exception("filter stage failed on a stored batch; its matches are "
                                  "missing (a backfill over the batch's time recovers them)")
        return result


async def ingest(processor: BatchProcessor, inputs: Iterable[RawInput], batch_size: int,
                 on_batch: Callable[[IngestSummary], None] | None = None) -> IngestSummary:
    """Run the embedded pipeline over inputs in batches; return the totals.

    ``on_batch`` is called with the running totals after each batch (progress bars).
    """
    summary = IngestSummary()
    start = time.perf_counter()
    for batch in batched(inputs, batch_size):
        result = await processor.process(batch)
        summary.add(result)
        if on_batch:
            on_batch(summary)
    summary.seconds = time.perf_counter() - start
    return summary
