"""Classifier output: probabilities, features, the classifiers and the taxonomy."""

from __future__ import annotations

from typing import Any

import strawberry

from ml.lc_classifier.taxonomy import (
    BRANCH_CLASSIFIERS,
    FULL_CLASSIFIER,
    HIERARCHY,
    LSST_CLASSIFIER,
    TOP_CLASSIFIER,
)
from ml.registry import ModelRegistry
from ml.stamp_classifier import LSST_NAME as LSST_STAMP_CLASSIFIER
from ml.stamp_classifier import NAME as STAMP_CLASSIFIER
from services.gateway.schema.context import BigInt, GatewayInfo, Survey


@strawberry.type(description="one classifier's probability of one class for an object "
                             "(ALeRCE's probability row)")
class Probability:
    classifier_name: str = strawberry.field(
        description="lc_classifier (15 classes), lc_classifier_top, lc_classifier_transient, "
                    "lc_classifier_stochastic, lc_classifier_periodic, or stamp_classifier "
                    "(AGN, SN, VS, asteroid, bogus from the object's first alert)")
    classifier_version: str = strawberry.field(description="semantic version of the model")
    class_name: str
    probability: float
    ranking: int = strawberry.field(description="1 = the most probable class of this classifier")
    candid: BigInt | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="the alert the stamp classifier classified; null for the "
                                  "light-curve classifiers (they use the whole light curve)")


@strawberry.type(description="One class's probability")
class ClassProbability:
    class_name: str
    probability: float


@strawberry.type(description="one light-curve feature (ALeRCE's name and definition)")
class Feature:
    name: str = strawberry.field(description="e.g. Multiband_period, Amplitude_1 (_1 = g, _2 = r)")
    value: float | None = strawberry.field(description="null when undefined for this object")



@strawberry.type(description="a feature that did much to isolate an object in the anomaly "
                             "model's forests")
class AnomalyFeature:
    name: str = strawberry.field(description="feature name (ALeRCE's)")
    value: float | None = strawberry.field(description="the object's value; null = missing")
    contribution: float = strawberry.field(
        description="share of the isolating splits on this feature (all features sum to 1)")


@strawberry.type(description="the anomaly score within one top-level class")
class BranchScore:
    branch: str = strawberry.field(description="Transient, Stochastic or Periodic")
    score: float | None = strawberry.field(
        description="isolation score weighted within the branch, in (0, 1]; null when the "
                    "model has no forest for the branch")


@strawberry.type(description="one past anomaly score of an object")
class AnomalyPoint:
    mjd: float = strawberry.field(description="last detection scored [MJD]")
    ndet: int = strawberry.field(description="detections in the light curve scored")
    score: float
    raw_score: float
    model_version: str


@strawberry.type(description="How unusual an object is: the anomaly model's score of its "
                             "latest classified light curve, why, and how it changed")
class Anomaly:
    score: float = strawberry.field(
        description="percentile in [0, 1] against the model's versioned reference "
                    "distribution; 1 = more unusual than every reference object")
    raw_score: float = strawberry.field(
        description="the class-weighted isolation score, gated by 1 - P(bogus)")
    model_name: str
    model_version: str
    mjd: float = strawberry.field(description="last detection scored [MJD]")
    ndet: int
    bogus: float | None = strawberry.field(
        description="the stamp classifier's P(bogus) that gated the score; null = unknown")
    branches: list[BranchScore]
    top_features: list[AnomalyFeature] = strawberry.field(
        description="the three features that did most to isolate it, most first")
    history: list[AnomalyPoint] = strawberry.field(
        description="every score of this object, oldest first (it changes as the light "
                    "curve grows)")


def anomaly_of(docs: list[dict[str, Any]]) -> Anomaly | None:
    """The latest of an object's stored scores (oldest first), with its history."""
    if not docs:
        return None
    latest = docs[-1]
    return Anomaly(
        score=latest["score"], raw_score=latest["raw"], model_name=latest["model_name"],
        model_version=latest["model_version"], mjd=latest["mjd"], ndet=latest["ndet"],
        bogus=latest.get("bogus"),
        branches=[BranchScore(branch=b, score=v) for b, v in latest["branches"].items()],
        top_features=[AnomalyFeature(name=f["name"], value=f["value"],
                                     contribution=f["contribution"])
                      for f in latest["top_features"]],
        history=[AnomalyPoint(mjd=d["mjd"], ndet=d["ndet"], score=d["score"],
                              raw_score=d["raw"], model_version=d["model_version"])
                 for d in docs])


@strawberry.type(description="A classifier, its registered versions and classes")
class Classifier:
    name: str
    versions: list[str] = strawberry.field(description="registered versions, newest first")
    classes: list[str]
    description: str
    parent_classifier: str | None = strawberry.field(
        description="for a branch of the hierarchical classifier: the top-level classifier")
    parent_class: str | None = strawberry.field(
        description="the top-level class this branch refines")
    survey: Survey = strawberry.field(default=Survey.ZTF, description=(
        "the survey whose objects it classifies (trained on that survey's data); other "
        "surveys' objects get no probabilities from it"))
    model: str = strawberry.field(default="", description=(
        "the registered model behind it (lc_classifier for ZTF, lsst_lc_classifier for "
        "LSST: the rows of both carry the taxonomy's classifier names)"))


@strawberry.type(description="A class of the light-curve taxonomy (Sánchez-Sáez et al. 2021)")
class TaxonomyNode:
    name: str
    level: str = strawberry.field(description='"top" (Transient, Stochastic, Periodic) or '
                                              '"class"')
    parent: str | None
    children: list[str]


def _classifiers(registry: ModelRegistry | None) -> list[Classifier]:
    registry = registry or ModelRegistry([])

    def versions(name: str) -> list[str]:
        return [m.version for m in registry.versions(name)]

    def classes(name: str, default: tuple[str, ...]) -> list[str]:
        found = registry.versions(name)
        return list(found[0].card.get("classes", default)) if found else list(default)

    def survey(name: str) -> Survey:
        found = registry.versions(name)
        return Survey(found[0].card.get("survey", "ZTF")) if found else Survey.ZTF

    out: list[Classifier] = []
    for model_name in (FULL_CLASSIFIER, LSST_CLASSIFIER):
        lc = versions(model_name)
        if model_name != FULL_CLASSIFIER and not lc:
            continue  # no LSST model registered: LSST objects stay unclassified
        lc_survey = survey(model_name)
        out += [
            Classifier(name=FULL_CLASSIFIER, versions=lc, model=model_name,
                       classes=classes(model_name,
                                       tuple(c for cs in HIERARCHY.values() for c in cs)),
                       description="hierarchical light-curve classifier, 15 classes "
                                   "(ALeRCE's lc_classifier: top-level probability x "
                                   "branch probability)",
                       parent_classifier=None, parent_class=None, survey=lc_survey),
            Classifier(name=TOP_CLASSIFIER, versions=lc, classes=list(HIERARCHY),
                       model=model_name, description="top level of the light-curve "
                                                     "classifier",
                       parent_classifier=None, parent_class=None, survey=lc_survey),
        ]
        out += [Classifier(name=name, versions=lc, classes=list(HIERARCHY[top]),
                           model=model_name,
                           description=f"{top} branch of the light-curve classifier",
                           parent_classifier=TOP_CLASSIFIER, parent_class=top,
                           survey=lc_survey)
                for top, name in BRANCH_CLASSIFIERS.items()]
    for model_name in (STAMP_CLASSIFIER, LSST_STAMP_CLASSIFIER):
        stamp = versions(model_name)
        if model_name != STAMP_CLASSIFIER and not stamp:
            continue  # no LSST stamp model registered: LSST objects go without
        out.append(Classifier(name=STAMP_CLASSIFIER, versions=stamp,
                              classes=classes(model_name,
                                              ("AGN", "SN", "VS", "asteroid", "bogus")),
                              description="stamp classifier: the first alert's cutouts and "
                                          "metadata", parent_classifier=None,
                              parent_class=None, survey=survey(model_name), model=model_name))
    return out



@strawberry.type
class ClassificationQueries:
    @strawberry.field(description="the classifiers, their versions and classes")
    def classifiers(self, info: GatewayInfo) -> list[Classifier]:
        return _classifiers(info.context.registry)

    @strawberry.field(description="the light-curve taxonomy: top classes and their classes")
    def taxonomy(self) -> list[TaxonomyNode]:
        tops = [TaxonomyNode(name=top, level="top", parent=None, children=list(classes))
                for top, classes in HIERARCHY.items()]
        return tops + [TaxonomyNode(name=c, level="class", parent=top, children=[])
                       for top, classes in HIERARCHY.items() for c in classes]

