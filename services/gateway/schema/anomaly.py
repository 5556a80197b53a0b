"""Users teach the anomaly score: the labelAnomaly mutation and the myAnomalies ranking."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any

import strawberry

from ml.anomaly import NAME as ANOMALY_MODEL
from ml.anomaly.model import AnomalyModel
from ml.registry import SHIPPED_ROOT, ModelRegistry
from nightjar.core.lightcurve import ARTEFACT_VERDICT
from nightjar.runner.anomaly_users import Ranked, fit_user_model, label_doc, rank
from services.gateway.errors import (
    BAD_USER_INPUT,
    NOT_FOUND,
    UNAUTHENTICATED,
    UNAVAILABLE,
    GatewayError,
)
from services.gateway.schema.context import GatewayInfo, iso_utc

#: the most objects one myAnomalies call returns
MAX_RANKED = 500


@strawberry.enum(description="What a user says an object is, to teach their anomaly model")
class AnomalyLabel(Enum):
    ANOMALY = "ANOMALY"
    NOT_ANOMALY = "NOT_ANOMALY"
    ARTEFACT = strawberry.enum_value("ARTEFACT", description=(
        "not astrophysical: scored as ordinary, and 0 in this user's ranking"))


@strawberry.type(description="A stored anomaly label and the user model refitted from it")
class AnomalyLabelResult:
    oid: str
    label: AnomalyLabel
    user: str
    created: str = strawberry.field(description="ISO 8601 UTC")
    model_version: str = strawberry.field(description="the anomaly model it was given on")
    labels: int = strawberry.field(description="this user's labels, the model fitted on all")
    artefact_votes: int = strawberry.field(description=(
        "users who label this object ARTEFACT (each user's latest label)"))
    flagged_artefact: bool = strawberry.field(description=(
        "whether that is enough (NIGHTJAR_ANOMALY_ARTEFACT_VOTES) for the shared anomaly "
        "score to treat the object as bogus, for everyone: score 0 until unflagged"))


@strawberry.type(description="An object in a user's anomaly ranking")
class RankedAnomaly:
    oid: str
    score: float = strawberry.field(description="the user's raw score as a percentile of "
                                                "the shared reference")
    raw_score: float = strawberry.field(description="under the user's model")
    shared_raw_score: float = strawberry.field(description="under the shared model")


@lru_cache(maxsize=4)
def _load(path: Path) -> AnomalyModel:
    return AnomalyModel.load(path)


def anomaly_model(info: GatewayInfo) -> AnomalyModel:
    """The registered (shared) ZTF anomaly model, or an UNAVAILABLE error."""
    registry = info.context.registry or ModelRegistry([SHIPPED_ROOT])
    try:
        return _load(registry.get(ANOMALY_MODEL).path)
    except LookupError as exc:
        raise GatewayError(UNAVAILABLE, "no anomaly model is registered") from exc


def user_of(info: GatewayInfo, what: str) -> str:
    """The caller's user name, or an UNAUTHENTICATED error naming ``what`` needs a key."""
    if info.context.user is None:
        raise GatewayError(UNAUTHENTICATED, f"{what} needs an API key (header X-API-Key or "
                                            "Authorization: Bearer)")
    return info.context.user


async def ranked_by_user(info: GatewayInfo, model: AnomalyModel, user: str,
                         oids: Sequence[str] | None = None) -> list[Ranked]:
    """Scored ZTF objects (``oids``, default all) ranked by ``user``'s model: their
    features and probabilities, the user's weights and the objects users flagged as
    artefacts, read from the store, then :func:`rank`."""
    store = info.context.store
    if oids is None:
        oids = await store.scored_oids("ZTF")  # the users' models refine the ZTF one
    return rank(model, await store.features_of(oids), await store.probabilities_of(oids),
                await store.user_anomaly_model(user), await store.artefact_flagged_oids(oids))


async def _artefact_verdict(info: GatewayInfo, found: Mapping[str, Any],
                            feature_doc: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                            model: AnomalyModel) -> dict[str, Any]:
    """Count the object's ARTEFACT labels; when they reach the deployment's threshold
    the shared score treats it as bogus (P(bogus) = 1, score 0), and when they fall
    below it again the stamp gate alone applies.  Stores the verdict on the object and
    re-gates its stored shared score at once (the pipeline keeps the verdict and applies
    the same gate whenever it scores the object again)."""
    store = info.context.store
    oid = str(found["_id"])
    votes = await store.artefact_votes(oid)
    verdict = {"votes": votes, "flagged": votes >= info.context.artefact_votes}
    before = found.get(ARTEFACT_VERDICT) or {}
    if not votes and not before:
        return verdict
    summary = found.get("anomaly")
    regated = None
    if verdict["flagged"] != bool(before.get("flagged")) and summary and \
            summary.get("model_version") == model.version:
        regated = dict(summary)
        if verdict["flagged"]:
            regated.update(score=0.0, raw=0.0)
        else:  # back to the stamp classifier's gate alone
            shared = rank(model, {oid: feature_doc}, {oid: rows}, None)[0]
            regated.update(score=shared.score, raw=shared.shared_raw)
    await store.set_artefact_verdict(oid, verdict, regated)
    info.context.loaders.objects.clear(oid)
    return verdict


@strawberry.type
class AnomalyMutation:
    @strawberry.mutation(description="Teach your anomaly model: label a scored object "
                                     "ANOMALY, NOT_ANOMALY or ARTEFACT (needs an API key). "
                                     "Stored with who, when, the model version and the "
                                     "object's features; your model is refitted from all "
                                     "your labels at once, and no one else's changes")
    async def label_anomaly(self, info: GatewayInfo, oid: str,
                            label: AnomalyLabel) -> AnomalyLabelResult:
        user = user_of(info, "labelAnomaly")
        store = info.context.store
        found = await info.context.loaders.objects.load(oid)
        if found is None:
            raise GatewayError(NOT_FOUND, f"no object {oid}")
        if found.get("survey", "ZTF") != "ZTF":
            raise GatewayError(BAD_USER_INPUT, f"{oid} is an {found['survey']} object: users "
                                               "teach the ZTF anomaly model only, for now")
        feature_doc = await info.context.loaders.features.load(oid)
        scored = await info.context.loaders.anomaly.load(oid)
        if feature_doc is None or not scored:
            raise GatewayError(BAD_USER_INPUT, f"{oid} has no anomaly score yet (it is scored "
                                               "once classified)")
        model = anomaly_model(info)
        now = dt.datetime.now(dt.UTC)
        rows = await info.context.loaders.probabilities.load(oid)
        doc = await store.put_anomaly_label(label_doc(model, user, oid, label.value,
                                                      feature_doc, rows, now))
        labels = await store.anomaly_labels(user)
        await store.put_user_anomaly_model(fit_user_model(model, user, labels, now))
        verdict = await _artefact_verdict(info, found, feature_doc, rows, model)
        return AnomalyLabelResult(oid=oid, label=label, user=user,
                                  created=iso_utc(now),
                                  model_version=doc["model_version"], labels=len(labels),
                                  artefact_votes=verdict["votes"],
                                  flagged_artefact=verdict["flagged"])


@strawberry.type
class AnomalyQueries:
    @strawberry.field(description="Scored objects, most unusual first by YOUR anomaly model "
                                  "(the shared model's order until you label; needs an API "
                                  "key). Reads and scores every scored object on each call "
                                  "(~0.5 ms each to score): for a group's store, not a "
                                  "survey's archive")
    async def my_anomalies(self, info: GatewayInfo, first: int = 50) -> list[RankedAnomaly]:
        user = user_of(info, "myAnomalies")
        if not 1 <= first <= MAX_RANKED:
            raise GatewayError(BAD_USER_INPUT, f"first must be within 1-{MAX_RANKED}")
        ranked = await ranked_by_user(info, anomaly_model(info), user)
        return [RankedAnomaly(oid=r.oid, score=r.score, raw_score=r.raw,
                              shared_raw_score=r.shared_raw) for r in ranked[:first]]
