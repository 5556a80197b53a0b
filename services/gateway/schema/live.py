"""Live subscriptions: new alerts, new or changed classifications and new anomaly scores,
as they are stored."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import strawberry

from nightjar.core import live
from services.gateway.errors import BAD_USER_INPUT, UNAVAILABLE, GatewayError
from services.gateway.live import LiveHub
from services.gateway.schema.anomaly import anomaly_model, ranked_by_user, user_of
from services.gateway.schema.classification import ClassProbability
from services.gateway.schema.context import BigInt, ConeInput, GatewayInfo, Survey, cone_of
from services.gateway.schema.filters import FilterMatch, filter_match_stream


@strawberry.input(description="Which classifications a subscription receives; null = any")
class ClassificationFilterInput:
    classifier: str | None = None
    class_name: str | None = None
    probability_min: float | None = None
    ranking: int | None = strawberry.field(default=None, description="e.g. 1: only the "
                                                                     "most probable class")
    cone: ConeInput | None = None
    survey: Survey | None = None


@strawberry.input(description="Which alerts a subscription receives; null = any")
class AlertFilterInput:
    cone: ConeInput | None = None
    fid: int | None = None
    magpsf_min: float | None = strawberry.field(default=None, description="[mag]")
    magpsf_max: float | None = strawberry.field(default=None, description="[mag]")
    oids: list[str] | None = None
    survey: Survey | None = None
    band: str | None = strawberry.field(default=None, description="e.g. g, or LSST's u")


@strawberry.input(description="Which anomaly scores a subscription receives; null = any")
class AnomalyFilterInput:
    score_min: float | None = strawberry.field(default=None, description=(
        "lowest score (a percentile in [0, 1]), e.g. 0.99: the top 1 %"))
    survey: Survey | None = None
    cone: ConeInput | None = None
    mine: bool = strawberry.field(default=False, description=(
        "score by YOUR anomaly model (needs an API key): the shared forests weighted by "
        "your labels, your ARTEFACTs at 0; scoreMin then applies to your score. Users' "
        "models refine the ZTF score, so only ZTF objects come"))


_MISSED = ("events this subscription lost before this one because it read too slowly "
           "(its queue keeps the newest; 0 normally)")


@strawberry.type(description="A new or changed classification (one class of one object)")
class LiveClassification:
    oid: str
    candid: BigInt | None = strawberry.field(  # type: ignore[valid-type]
        description="the alert the stamp classifier used; null for light-curve classifiers")
    classifier_name: str
    classifier_version: str
    class_name: str
    probability: float
    ranking: int
    ra: float = strawberry.field(description="object's mean RA [deg]")
    dec: float = strawberry.field(description="object's mean Dec [deg]")
    stored_at: float = strawberry.field(description="when the pipeline stored it [Unix s]")
    missed: int = strawberry.field(description=_MISSED)
    survey: Survey = Survey.ZTF
    probabilities: list[ClassProbability] = strawberry.field(
        default_factory=list, description=(
            "every class row of this message, most probable first: with perObject, all the "
            "rows of the object and classifier that pass the filter (className, "
            "probability and ranking are then the first of them); else the one row"))


@strawberry.type(description="A newly stored alert detection")
class LiveAlert:
    oid: str
    candid: BigInt  # type: ignore[valid-type]
    mjd: float
    fid: int
    magpsf: float = strawberry.field(description="difference magnitude [mag]")
    sigmapsf: float | None
    magpsf_corr: float | None = strawberry.field(description="corrected apparent magnitude "
                                                             "[mag], null if uncorrected")
    isdiffpos: str
    ra: float
    dec: float
    stored_at: float = strawberry.field(description="when the pipeline stored it [Unix s]")
    missed: int = strawberry.field(description=_MISSED)
    survey: Survey = Survey.ZTF
    band: str | None = None
    psf_flux: float | None = strawberry.field(default=None, description="signed difference "
                                                                        "flux [nJy]")


@strawberry.type(description="A new anomaly score of an object (its light curve grew and was "
                             "classified again)")
class LiveAnomaly:
    oid: str
    score: float = strawberry.field(description="percentile in [0, 1] against the model's "
                                                "reference; 1 = the most unusual")
    raw_score: float
    model_name: str
    model_version: str
    mjd: float = strawberry.field(description="last detection scored [MJD]")
    ra: float = strawberry.field(description="object's mean RA [deg]")
    dec: float = strawberry.field(description="object's mean Dec [deg]")
    stored_at: float = strawberry.field(description="when the pipeline stored it [Unix s]")
    missed: int = strawberry.field(description=_MISSED)
    survey: Survey = Survey.ZTF
    user: str | None = strawberry.field(default=None, description=(
        "whose model scored it (a subscription with mine: true); null for the shared "
        "model"))
    shared_score: float | None = strawberry.field(default=None, description=(
        "the shared model's score of the same object, beside the user's"))


def _hub(info: GatewayInfo) -> LiveHub:
    if info.context.hub is None:
        raise GatewayError(UNAVAILABLE, "this gateway has no live feed configured")
    return info.context.hub



async def _my_anomalies(info: GatewayInfo, f: AnomalyFilterInput
                        ) -> AsyncGenerator[LiveAnomaly, None]:
    """The anomalies subscription under the caller's model: each shared event of a ZTF
    object rescored with the caller's current weights (their model is re-read for each
    event, so a label given meanwhile counts at once)."""
    user = user_of(info, "anomalies(filter: {mine: true})")
    model = anomaly_model(info)
    if f.survey is not None and f.survey != Survey.ZTF:
        raise GatewayError(BAD_USER_INPUT, "mine: true scores ZTF objects only (users' "
                                           "models refine the ZTF anomaly model)")
    selected = live.AnomalyFilter(None, "ZTF", cone_of(f.cone))
    async with _hub(info).subscribe(lambda e: [e] if selected.passes(e) else []) as sub:
        while True:
            event, missed = await sub.get()
            oid = event["oid"]
            ranked = await ranked_by_user(info, model, user, [oid])
            if not ranked:  # not in the store (yet): nothing to rescore
                continue
            mine = ranked[0]
            if f.score_min is not None and mine.score < f.score_min:
                continue
            yield LiveAnomaly(
                oid=oid, score=mine.score, raw_score=mine.raw,
                model_name=event["model_name"], model_version=event["model_version"],
                mjd=event["mjd"], ra=event["ra"], dec=event["dec"],
                stored_at=event["stored_ms"] / 1000.0, missed=missed, survey=Survey.ZTF,
                user=user, shared_score=event["score"])


@strawberry.type
class Subscription:
    @strawberry.subscription(description="every new or changed classification passing FILTER: "
                                         "one message per class row, or with perObject one "
                                         "per object and classifier carrying its rows")
    async def classifications(self, info: GatewayInfo,
                              filter: ClassificationFilterInput | None = None,
                              per_object: bool = False
                              ) -> AsyncGenerator[LiveClassification, None]:
        f = filter or ClassificationFilterInput()
        selected = live.ClassificationFilter(f.classifier, f.class_name, f.probability_min,
                                             f.ranking, cone_of(f.cone),
                                             f.survey.value if f.survey else None)

        def messages(event: live.Event) -> list[tuple[live.Event, list[Any]]]:
            rows = sorted(selected.rows(event), key=lambda r: r["ranking"])
            if per_object:
                return [(event, rows)] if rows else []
            return [(event, [row]) for row in rows]

        async with _hub(info).subscribe(messages) as sub:
            while True:
                (event, rows), missed = await sub.get()
                top = rows[0]
                yield LiveClassification(
                    oid=event["oid"], candid=event.get("candid"),
                    classifier_name=event["classifier_name"],
                    classifier_version=event["classifier_version"],
                    class_name=top["class_name"], probability=top["probability"],
                    ranking=top["ranking"], ra=event["ra"], dec=event["dec"],
                    stored_at=event["stored_ms"] / 1000.0, missed=missed,
                    survey=Survey(event.get("survey", "ZTF")),
                    probabilities=[ClassProbability(class_name=r["class_name"],
                                                    probability=r["probability"])
                                   for r in rows])

    @strawberry.subscription(description="every new anomaly score passing FILTER (the shared "
                                         "model's), as objects are scored")
    async def anomalies(self, info: GatewayInfo, filter: AnomalyFilterInput | None = None
                        ) -> AsyncGenerator[LiveAnomaly, None]:
        f = filter or AnomalyFilterInput()
        if f.score_min is not None and not 0.0 <= f.score_min <= 1.0:
            raise GatewayError(BAD_USER_INPUT, "scoreMin must be within [0, 1]")
        if f.mine:
            async for scored in _my_anomalies(info, f):
                yield scored
            return
        selected = live.AnomalyFilter(f.score_min, f.survey.value if f.survey else None,
                                      cone_of(f.cone))
        async with _hub(info).subscribe(lambda e: [e] if selected.passes(e) else []) as sub:
            while True:
                event, missed = await sub.get()
                yield LiveAnomaly(
                    oid=event["oid"], score=event["score"], raw_score=event["raw"],
                    model_name=event["model_name"], model_version=event["model_version"],
                    mjd=event["mjd"], ra=event["ra"], dec=event["dec"],
                    stored_at=event["stored_ms"] / 1000.0, missed=missed,
                    survey=Survey(event.get("survey", "ZTF")))

    @strawberry.subscription(description="every new match of one filter (yours or a public "
                                         "one), as it is stored")
    async def filter_matches(self, info: GatewayInfo, filter: strawberry.ID
                             ) -> AsyncGenerator[FilterMatch, None]:
        async for match in filter_match_stream(info, str(filter)):
            yield match

    @strawberry.subscription(description="every newly stored alert detection passing FILTER")
    async def alerts(self, info: GatewayInfo, filter: AlertFilterInput | None = None
                     ) -> AsyncGenerator[LiveAlert, None]:
        f = filter or AlertFilterInput()
        selected = live.AlertFilter(cone_of(f.cone), f.fid, f.magpsf_min, f.magpsf_max,
                                    frozenset(f.oids) if f.oids is not None else None,
                                    f.survey.value if f.survey else None, f.band)
        async with _hub(info).subscribe(lambda e: [e] if selected.passes(e) else []) as sub:
            while True:
                event, missed = await sub.get()
                yield LiveAlert(
                    oid=event["oid"], candid=event["candid"], mjd=event["mjd"],
                    fid=event["fid"], magpsf=event["magpsf"], sigmapsf=event["sigmapsf"],
                    magpsf_corr=event["magpsf_corr"], isdiffpos=event["isdiffpos"],
                    ra=event["ra"], dec=event["dec"], stored_at=event["stored_ms"] / 1000.0,
                    missed=missed, survey=Survey(event.get("survey", "ZTF")),
                    band=event.get("band"), psf_flux=event.get("psf_flux"))


