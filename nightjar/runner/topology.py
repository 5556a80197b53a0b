"""The pipeline topology, defined once: its ordered steps, topics and keys.

Both drivers read it: the embedded runner (:class:`nightjar.runner.ingest.BatchProcessor`,
used by ``nightjar ingest``) and the Faust worker (:mod:`stream.app`).  A step is a
pure function; the drivers only move data between steps and do the I/O.

The per-object steps (correct, statistics, xmatch, stamp, classify) need the object's whole
stored history, which is why ``ztf-alerts`` is keyed by objectId: all alerts of one
object arrive, in order, on one partition, so one worker owns each object.  For the
same reason the steps from *ingest* to *publish* run fused in one consumer: a hop
through Kafka between, say, *correct* and *statistics* would re-serialise the whole
light curve for no gain in parallelism (ALeRCE pays that cost, paper §4.1).  The one
exception is the light-curve classifier: feature extraction is the heaviest step, so in
Kafka mode it runs as its own agent on its own topic (``nightjar-lc-classify``, keyed by
objectId, carrying only the id: the agent reads the stored light curve) and scales
separately; the embedded runner runs it inline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from nightjar.core.lightcurve import ObjectState, aggregate_object, correct_object
from nightjar.settings import Settings

log = logging.getLogger(__name__)

#: A per-object step: state in, state out, no I/O.
ObjectStep = Callable[[ObjectState], ObjectState]
#: A batched per-object step: every object of a batch at once (one model call), same
#: states out, in order.  Drivers fall back to one object at a time when it raises.
BatchedStep = Callable[[Sequence[ObjectState]], list[ObjectState]]


@dataclass(frozen=True)
class TopicSpec:
    """A Kafka topic of the topology; its name and partition count come from settings."""

    role: str  #: "alerts", "classifications", "lc_classify", "dead_letters"
    default_name: str
    key: str
    value: str
    description: str


@dataclass(frozen=True)
class Step:
    """One step of the pipeline.

    ``scope`` says what it sees: a whole batch of inputs, or one object at a time.
    ``function`` is set for the per-object steps, which every driver runs the same way;
    batch steps are I/O boundaries that each driver implements (decoding lives in
    :mod:`nightjar.surveys`, the writer in :mod:`nightjar.store`, the records in
    :mod:`nightjar.runner.records`).
    """

    name: str
    scope: Literal["batch", "object"]
    description: str
    function: ObjectStep | None = None
    hook: bool = False  #: the step applies the hooks registered under its name
    batched: bool = False  #: its hooks are :data:`BatchedStep` s


TOPICS = (
    TopicSpec("alerts", "ztf-alerts", key="objectId (UTF-8)",
              value="one ZTF alert: an Avro object container with one record, as ZTF sends",
              description="input stream; one object's alerts stay ordered on one partition"),
    TopicSpec("classifications", "nightjar-classifications", key="objectId (UTF-8)",
              value="Avro object container, schema nightjar/runner/schemas/classification.avsc",
              description="annotated output: one record per processed alert (paper §5.1.5)"),
    TopicSpec("lc_classify", "nightjar-lc-classify", key="objectId (UTF-8)",
              value="the objectId again (UTF-8)",
              description="objects the ingest agent hands to the light-curve classify agent; "
                          "keyed by objectId so one classify worker owns each object"),
    TopicSpec("dead_letters", "nightjar-dead-letters", key="sha256 of the payload (hex)",
              value="Avro object container, schema nightjar/runner/schemas/dead_letter.avsc",
              description="inputs that cannot be processed, with the reason and the bytes"),
)

STEPS = (
    Step("ingest", "batch", "decode the Avro packet, validate it, archive the raw packet "
         "and cutouts, merge with the object's stored history; rejects become dead letters"),
    Step("correct", "object", "difference to apparent magnitudes (paper §4.2)",
         correct_object),
    Step("statistics", "object", "object statistics and per-band magstats (paper §4.3)",
         aggregate_object),
    Step("xmatch", "object", "nearest catalogue source per catalogue (hooks)", hook=True),
    Step("stamp", "object", "stamp classifier probabilities from the first alert with "
         "cutouts of objects not yet stamp-classified (batched over the batch's objects)",
         hook=True, batched=True),
    Step("classify", "object", "light-curve classifier probabilities and features, for "
         "objects with new detections and >= 6 in g or r (inline, or handed to the classify "
         "agent in Kafka mode)", hook=True),
    Step("store", "batch", "one bulk write of every changed document and dead letter"),
    Step("publish", "batch", "one annotated record per alert on the output stream"),
)


def _apply_hooks(hooks: Sequence[ObjectStep]) -> ObjectStep:
    def run(state: ObjectState) -> ObjectState:
        for hook in hooks:
            state = hook(state)
        return state
    return run


def _apply_batched_hooks(hooks: Sequence[BatchedStep]) -> BatchedStep:
    def run(states: Sequence[ObjectState]) -> list[ObjectState]:
        out = list(states)
        for hook in hooks:
            out = hook(out)
        return out
    return run


def _batched(step: ObjectStep) -> BatchedStep:
    def run(states: Sequence[ObjectState]) -> list[ObjectState]:
        return [step(state) for state in states]
    return run


@dataclass(frozen=True)
class RunnableStep:
    """A per-object step as the drivers run it: ``function`` takes one object's state,
    or, when ``batched``, the states of a whole batch."""

    name: str
    function: ObjectStep | BatchedStep
    batched: bool = False

    def run_batch(self, states: Sequence[ObjectState]) -> list[ObjectState]:
        if self.batched:
            return self.function(states)  # type: ignore[arg-type,return-value]
        return _batched(self.function)(states)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Topology:
    """The ordered steps with the hooks a deployment registers on them.

    Parameters
    ----------
    hooks : dict of str to sequence of callables
        Per-object functions for the hook steps (``xmatch``, ``classify``), applied in
        order.  Without hooks those steps pass objects through unchanged.
    """

    hooks: dict[str, Sequence[ObjectStep] | Sequence[BatchedStep]] = field(
        default_factory=dict)
    steps: tuple[Step, ...] = STEPS

    def __post_init__(self) -> None:
        hook_steps = {s.name for s in self.steps if s.hook}
        unknown = set(self.hooks) - hook_steps
        if unknown:
            raise ValueError(f"no hook step named {sorted(unknown)}; "
                             f"hook steps are {sorted(hook_steps)}")

    @property
    def step_names(self) -> list[str]:
        return [s.name for s in self.steps]

    def object_steps(self) -> list[RunnableStep]:
        """The per-object steps in order, hooks included (steps without hooks left out)."""
        out: list[RunnableStep] = []
        for step in self.steps:
            if step.hook:
                hooks = self.hooks.get(step.name, ())
                if hooks and step.batched:
                    out.append(RunnableStep(step.name, _apply_batched_hooks(
                        hooks), batched=True))  # type: ignore[arg-type]
                elif hooks:
                    out.append(RunnableStep(step.name, _apply_hooks(
                        hooks)))  # type: ignore[arg-type]
            elif step.function is not None:
                out.append(RunnableStep(step.name, step.function))
        return out


DEFAULT_TOPOLOGY = Topology()


def configured_topology(settings: Settings, *, classify_inline: bool = True) -> Topology:
    """The topology a deployment runs: hooks from the settings.

    The xmatch hook runs when catalogues are imported under ``settings.catalog_path``
    (all of them, or those named in ``settings.xmatch_catalogs``).  The classify step
    runs the registered light-curve classifier inline (embedded runner), or, with
    ``classify_inline=False`` (Kafka worker), only marks objects for the classify agent.
    The stamp step runs the registered stamp classifier inline in both.
    """
    from ml.stamp_classifier import LSST_NAME as LSST_STAMP_CLASSIFIER
    from ml.stamp_classifier import NAME as STAMP_CLASSIFIER
    from nightjar.context.catalogs import CatalogStore
    from nightjar.runner.classify import (
        LcClassifierHook,
        load_model,
        optional_anomaly_model,
        optional_lsst_anomaly_model,
        optional_lsst_model,
        request_classification,
    )
    from nightjar.runner.stamp_classify import StampClassifierHook, load_stamp_model
    from nightjar.runner.xmatch import CrossmatchHook

    hooks: dict[str, Sequence[ObjectStep] | Sequence[BatchedStep]] = {}
    store = CatalogStore(settings.catalog_path)
    if store.infos:
        hooks["xmatch"] = [CrossmatchHook(store, settings.xmatch_catalogs)]
    if settings.stamp_classifier:
        stamp_models = []
        for name, version in ((STAMP_CLASSIFIER, settings.stamp_classifier_version),
                              (LSST_STAMP_CLASSIFIER, settings.lsst_stamp_classifier_version)):
            try:
                stamp_models.append(load_stamp_model(settings.home, version, name))
            except LookupError as exc:  # that survey's objects go without
                log.warning("%s off: %s", name, exc)
        if stamp_models:
            hooks["stamp"] = [StampClassifierHook(*stamp_models)]
    if settings.lc_classifier:
        if classify_inline:
            try:
                model = load_model(settings.home, settings.lc_classifier_version)
            except LookupError as exc:  # no model: the pipeline runs, unclassified
                log.warning("light-curve classifier off: %s", exc)
            else:
                hooks["classify"] = [LcClassifierHook(
                    model, optional_anomaly_model(settings), optional_lsst_model(settings),
                    optional_lsst_anomaly_model(settings))]
        else:
            hooks["classify"] = [request_classification]
    return Topology(hooks=hooks)
