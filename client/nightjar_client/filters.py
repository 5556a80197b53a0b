"""ALeRCE-style keyword filters to the gateway's typed inputs (no I/O)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nightjar_client.errors import ParseError
from nightjar_client.generated.enums import ObjectOrderField, OrderDirection, Survey
from nightjar_client.generated.input_types import (
    AlertFilterInput,
    ClassificationFilterInput,
    ConeInput,
    FloatRange,
    IntRange,
    ObjectFilterInput,
    ObjectOrderInput,
)

#: ``order_by`` values (ALeRCE's column names) and the gateway's order fields
ORDER_FIELDS: dict[str, ObjectOrderField] = {
    "oid": ObjectOrderField.OID, "ndet": ObjectOrderField.NDET,
    "firstmjd": ObjectOrderField.FIRSTMJD, "lastmjd": ObjectOrderField.LASTMJD,
    "deltajd": ObjectOrderField.DELTAJD, "deltamjd": ObjectOrderField.DELTAJD,
    "meanra": ObjectOrderField.MEANRA, "meandec": ObjectOrderField.MEANDEC,
    "sigmara": ObjectOrderField.SIGMARA, "sigmadec": ObjectOrderField.SIGMADEC,
    "g_r_max": ObjectOrderField.G_R_MAX, "g_r_max_corr": ObjectOrderField.G_R_MAX_CORR,
    "g_r_mean": ObjectOrderField.G_R_MEAN, "g_r_mean_corr": ObjectOrderField.G_R_MEAN_CORR,
    "probability": ObjectOrderField.PROBABILITY,
    "anomaly": ObjectOrderField.ANOMALY,  # the shared anomaly score
    "my_anomaly": ObjectOrderField.MY_ANOMALY,  # your anomaly model's (needs the API key)
}
OBJECT_FILTERS = ("oid", "classifier", "class_name", "classifier_version", "probability",
                  "ranking", "ndet", "firstmjd", "lastmjd", "ra", "dec", "radius", "survey")
PAGING = ("order_by", "order_mode", "page_size", "page", "max_results")


@dataclass(frozen=True)
class ObjectQuery:
    """One ``query_objects`` call: the filter, the order and how much to fetch."""

    filter: ObjectFilterInput
    order: ObjectOrderInput
    page_size: int
    max_results: int
    page: int | None  # 1-based: only this page; None: every page up to max_results

    @property
    def with_class(self) -> bool:
        return self.filter.classifier is not None and self.filter.class_name is not None


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ParseError(f"{name} must be a finite number, not {value!r}")
    return float(value)


def _integer(name: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParseError(f"{name} must be an integer, not {value!r}")
    if minimum is not None and value < minimum:
        raise ParseError(f"{name} must be at least {minimum}, not {value}")
    return value


def _bounds(name: str, value: Any) -> tuple[Any, Any]:
    """(min, max) of ``value``: a [min, max] pair (None = open) or a single minimum."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ParseError(f"{name} must be [min, max] (None for an open end), "
                             f"not {value!r}")
        return value[0], value[1]
    return value, None


def int_range(name: str, value: Any) -> IntRange | None:
    if value is None:
        return None
    low, high = (None if v is None else _integer(name, v) for v in _bounds(name, value))
    return IntRange(min=low, max=high)


def float_range(name: str, value: Any) -> FloatRange | None:
    if value is None:
        return None
    low, high = (None if v is None else _number(name, v) for v in _bounds(name, value))
    return FloatRange(min=low, max=high)


def cone(ra: Any, dec: Any, radius: Any) -> ConeInput | None:
    """A cone from ``ra``, ``dec`` [deg] and ``radius`` [arcsec]: all three or none."""
    given = [v is not None for v in (ra, dec, radius)]
    if not any(given):
        return None
    if not all(given):
        raise ParseError("a cone needs ra, dec (deg) and radius (arcsec) together")
    radius_arcsec = _number("radius", radius)
    if radius_arcsec <= 0:
        raise ParseError(f"radius must be positive (arcsec), not {radius}")
    return ConeInput(ra=_number("ra", ra), dec=_number("dec", dec), radius=radius_arcsec)


def _oids(value: Any) -> list[str] | None:
    if value is None:
        return None
    oids = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(o, str) for o in oids):
        raise ParseError(f"oid must be a string or a list of strings, not {value!r}")
    return oids


def _text(name: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ParseError(f"{name} must be a string, not {value!r}")
    return value


def survey(value: Any) -> Survey | None:
    """``"ztf"``/``"lsst"`` (any case) as the gateway's Survey; None stays None."""
    if value is None:
        return None
    try:
        return Survey(str(value).upper())
    except ValueError:
        raise ParseError(f"survey must be one of {', '.join(s.value for s in Survey)}, not "
                         f"{value!r}") from None


def surveys(value: Any) -> list[Survey] | None:
    """One survey or several (``"lsst"``, ``["ztf", "lsst"]``) as Survey values."""
    if value is None:
        return None
    found = [survey(v) for v in ([value] if isinstance(value, str) else list(value))]
    return [s for s in found if s is not None]


def _unknown(kwargs: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ParseError(f"unknown argument(s) {', '.join(unknown)}; the arguments are "
                         f"{', '.join(allowed)}")


def object_query(kwargs: Mapping[str, Any], page_size: int, max_results: int) -> ObjectQuery:
    """An :class:`ObjectQuery` from ``query_objects``' keyword arguments.

    ``class`` is accepted for ``class_name`` (ALeRCE's API name).  Ranges (``ndet``,
    ``firstmjd``, ``lastmjd``) are ``[min, max]`` with None for an open end, or a single
    minimum.  Raises :class:`ParseError` on anything else.
    """
    kwargs = dict(kwargs)
    if "class" in kwargs:
        if "class_name" in kwargs:
            raise ParseError("give class_name or class, not both")
        kwargs["class_name"] = kwargs.pop("class")
    _unknown(kwargs, OBJECT_FILTERS + PAGING)
    probability = kwargs.get("probability")
    ranking = kwargs.get("ranking")
    flt = ObjectFilterInput(
        oids=_oids(kwargs.get("oid")),
        classifier=_text("classifier", kwargs.get("classifier")),
        class_name=_text("class_name", kwargs.get("class_name")),
        classifier_version=_text("classifier_version", kwargs.get("classifier_version")),
        probability_min=None if probability is None else _number("probability", probability),
        ranking=None if ranking is None else _integer("ranking", ranking, 0),
        ndet=int_range("ndet", kwargs.get("ndet")),
        firstmjd=float_range("firstmjd", kwargs.get("firstmjd")),
        lastmjd=float_range("lastmjd", kwargs.get("lastmjd")),
        cone=cone(kwargs.get("ra"), kwargs.get("dec"), kwargs.get("radius")),
        survey=survey(kwargs.get("survey")))
    order_by = kwargs.get("order_by")
    if order_by is not None and str(order_by).lower() not in ORDER_FIELDS:
        raise ParseError(f"order_by {order_by!r} is not one of {', '.join(ORDER_FIELDS)}")
    order_mode = kwargs.get("order_mode")
    if order_mode is not None and str(order_mode).upper() not in ("ASC", "DESC"):
        raise ParseError(f"order_mode must be ASC or DESC, not {order_mode!r}")
    order = ObjectOrderInput(
        field=None if order_by is None else ORDER_FIELDS[str(order_by).lower()],
        direction=None if order_mode is None else OrderDirection(str(order_mode).upper()))
    if order.field == ObjectOrderField.PROBABILITY and not (flt.classifier and flt.class_name):
        raise ParseError("order_by='probability' needs classifier and class_name")
    page = kwargs.get("page")
    return ObjectQuery(
        filter=flt, order=order,
        page_size=_integer("page_size", kwargs.get("page_size", page_size), 1),
        max_results=_integer("max_results", kwargs.get("max_results", max_results), 1),
        page=None if page is None else _integer("page", page, 1))


def classification_filter(classifier: Any = None, class_name: Any = None,
                          probability: Any = None, ranking: Any = None, ra: Any = None,
                          dec: Any = None, radius: Any = None) -> ClassificationFilterInput:
    """The filter of ``subscribe_classifications`` (None = any)."""
    return ClassificationFilterInput(
        classifier=_text("classifier", classifier), class_name=_text("class_name", class_name),
        probability_min=None if probability is None else _number("probability", probability),
        ranking=None if ranking is None else _integer("ranking", ranking, 0),
        cone=cone(ra, dec, radius))


def alert_filter(oid: Any = None, fid: Any = None, magpsf: Any = None, ra: Any = None,
                 dec: Any = None, radius: Any = None) -> AlertFilterInput:
    """The filter of ``subscribe_alerts``; ``magpsf`` is [min, max] in mag."""
    mags = float_range("magpsf", magpsf)
    return AlertFilterInput(
        oids=_oids(oid), fid=None if fid is None else _integer("fid", fid, 1),
        magpsf_min=mags.min if mags else None, magpsf_max=mags.max if mags else None,
        cone=cone(ra, dec, radius))
