"""Classifier output: probabilities, features, the classifiers and the taxonomy."""

from __future__ import annotations

import strawberry

from ml.lc_classifier.taxonomy import (
    BRANCH_CLASSIFIERS,
    FULL_CLASSIFIER,
    HIERARCHY,
    TOP_CLASSIFIER,
)
from ml.registry import ModelRegistry
from services.gateway.schema.context import BigInt, GatewayInfo, Survey

STAMP_CLASSIFIER = "stamp_classifier"

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


@strawberry.type(description="one light-curve feature (ALeRCE's name and definition)")
class Feature:
    name: str = strawberry.field(description="e.g. Multiband_period, Amplitude_1 (_1 = g, _2 = r)")
    value: float | None = strawberry.field(description="null when undefined for this object")



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

    lc = versions(FULL_CLASSIFIER)
    lc_survey = survey(FULL_CLASSIFIER)
    out = [
        Classifier(name=FULL_CLASSIFIER, versions=lc,
                   classes=classes(FULL_CLASSIFIER,
                                   tuple(c for cs in HIERARCHY.values() for c in cs)),
                   description="hierarchical light-curve classifier, 15 classes (ALeRCE's "
                               "lc_classifier: top-level probability x branch probability)",
                   parent_classifier=None, parent_class=None, survey=lc_survey),
        Classifier(name=TOP_CLASSIFIER, versions=lc, classes=list(HIERARCHY),
                   description="top level of the light-curve classifier",
                   parent_classifier=None, parent_class=None, survey=lc_survey),
    ]
    out += [Classifier(name=name, versions=lc, classes=list(HIERARCHY[top]),
                       description=f"{top} branch of the light-curve classifier",
                       parent_classifier=TOP_CLASSIFIER, parent_class=top, survey=lc_survey)
            for top, name in BRANCH_CLASSIFIERS.items()]
    out.append(Classifier(name=STAMP_CLASSIFIER, versions=versions(STAMP_CLASSIFIER),
                          classes=classes(STAMP_CLASSIFIER,
                                          ("AGN", "SN", "VS", "asteroid", "bogus")),
                          description="stamp classifier: the first alert's cutouts and "
                                      "metadata", parent_classifier=None, parent_class=None,
                          survey=survey(STAMP_CLASSIFIER)))
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

