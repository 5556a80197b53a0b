"""The facade: ALeRCE's method names over Nightjar's GraphQL gateway.

Every method is an ordinary (blocking) call, usable in scripts and in notebooks alike:
the requests run on a private event loop in a background thread, so a notebook's own
running loop is no obstacle.  The subscriptions are async iterators that run in the
caller's loop (``async for c in nj.subscribe_classifications(...)``).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import fastavro
import numpy as np
from astropy.io import fits
from pydantic import BaseModel
from websockets.exceptions import WebSocketException

from nightjar_client.errors import TRANSIENT_CODES, APIError, ObjectNotFoundError, ParseError
from nightjar_client.filters import (
    ObjectQuery,
    alert_filter,
    classification_filter,
    object_query,
)
from nightjar_client.filters import surveys as survey_list
from nightjar_client.generated.enums import AnomalyLabel, FilterNotify, FilterState
from nightjar_client.generated.exceptions import (
    GraphQLClientError,
    GraphQLClientGraphQLMultiError,
)
from nightjar_client.generated.fragments import (
    DetectionFields,
    ForcedPhotometryFields,
    NonDetectionFields,
    ObjectFields,
)
from nightjar_client.generated.input_types import (
    DeliveryInput,
    FilterInput,
    FilterUpdateInput,
    WatchlistInput,
    WatchmapInput,
)
from nightjar_client.generated.live_alerts import LiveAlertsAlerts
from nightjar_client.generated.live_classifications import (
    LiveClassificationsClassifications,
)
from nightjar_client.generated.live_filter_matches import LiveFilterMatchesFilterMatches
from nightjar_client.generated.object_mag_stats import ObjectMagStatsObjectMagstats
from nightjar_client.generated.object_probabilities import (
    ObjectProbabilitiesObjectProbabilities,
)
from nightjar_client.generated.object_stamps import ObjectStampsObjectStamps
from nightjar_client.tables import check_format, to_format
from nightjar_client.transport import GatewayClient, RetryPolicy, graphql_error

log = logging.getLogger("nightjar_client")

T = TypeVar("T")
M = TypeVar("M")
#: a classification as the ``classifications`` subscription delivers it
LiveClassification = LiveClassificationsClassifications
#: a stored alert detection as the ``alerts`` subscription delivers it
LiveAlert = LiveAlertsAlerts

DEFAULT_URL = "http://127.0.0.1:8000"
URL_VARIABLE, KEY_VARIABLE = "NIGHTJAR_URL", "NIGHTJAR_API_KEY"
OBJECT_COLUMNS = list(ObjectFields.model_fields)
CLASS_COLUMNS = ["classifier", "classifier_version", "class", "probability", "ranking"]
STAMP_KINDS = ("science", "template", "difference")


class _LoopThread:
    """A private event loop in a daemon thread, for the blocking methods."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="nightjar-client")
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self.thread:
            coroutine.close()
            raise RuntimeError("a blocking Nightjar method was called from the client's own "
                               "event loop (it would wait for itself)")
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. a KeyboardInterrupt in the notebook: stop the request
            raise

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


def _row(model: BaseModel) -> dict[str, Any]:
    """A generated model as a row: snake_case keys, enums as their names.  The generator
    appends ``_`` to names that shadow Python's (``type_``); a row carries the API's."""
    return {key.removesuffix("_"): value
            for key, value in model.model_dump(mode="json").items()}


def _found(value: T | None, what: str) -> T:
    if value is None:
        raise ObjectNotFoundError(f"no {what}")
    return value


class Nightjar:
    """A client of one Nightjar gateway.

    Parameters
    ----------
    url : str, optional
        The gateway, e.g. ``http://127.0.0.1:8000``; default ``$NIGHTJAR_URL``, else
        ``http://127.0.0.1:8000`` (``nightjar demo``).
    api_key : str, optional
        Default ``$NIGHTJAR_API_KEY``.  Needed by :meth:`add_label`; raises the rate limit.
    timeout : float
        Per-request timeout [s].
    max_retries : int
        Retries of a transient failure (unreachable gateway, HTTP 429/502/503/504,
        ``RATE_LIMITED``, ``UNAVAILABLE``), with exponential backoff from ``backoff`` [s]
        up to ``max_backoff`` [s]; a rate limit's ``Retry-After`` is honoured.
    page_size, max_results : int
        Defaults of :meth:`query_objects`.

    Examples
    --------
    >>> from nightjar_client import Nightjar
    >>> nj = Nightjar("http://127.0.0.1:8000")
    >>> sne = nj.query_objects(classifier="stamp_classifier", class_name="SN",
    ...                        probability=0.5, order_by="probability")
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, *,
                 timeout: float = 30.0, max_retries: int = 4, backoff: float = 0.5,
                 max_backoff: float = 30.0, page_size: int = 100, max_results: int = 1000):
        self.url = (url or os.environ.get(URL_VARIABLE) or DEFAULT_URL).rstrip("/")
        self._api_key = api_key if api_key is not None else os.environ.get(KEY_VARIABLE)
        self.policy = RetryPolicy(max_retries=max_retries, backoff=backoff,
                                  max_backoff=max_backoff, timeout=timeout)
        self.page_size, self.max_results = page_size, max_results
        self._loop = _LoopThread()
        self._client = GatewayClient(self.url, self._api_key or None, self.policy)

    def __repr__(self) -> str:
        return f"Nightjar({self.url!r}, api_key={'set' if self._api_key else None})"

    def close(self) -> None:
        """Close the connections (the client is unusable afterwards)."""
        if not self._loop.loop.is_closed():
            self._loop.run(self._client.aclose())
            self._loop.close()

    def __enter__(self) -> Nightjar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._loop.run(coroutine)

    # ---- objects -----------------------------------------------------------------------

    def query_objects(self, format: str = "pandas", index: str | None = None,
                      sort: str | None = None, **filters: Any) -> Any:
        """Objects passing ALeRCE-style filters, every page up to ``max_results``.

        Parameters
        ----------
        format : {"pandas", "json", "votable", "csv"}
        index, sort : str, optional
            pandas only: sort by ``sort``, then index by ``index``.
        **filters
            ``oid`` (str or list), ``classifier``, ``class_name`` (or ``class``),
            ``classifier_version``, ``probability`` (minimum), ``ranking`` (1 by default
            when a class is given; 0 = any), ``ndet``, ``firstmjd``, ``lastmjd``
            ([min, max], None = open; a single value is a minimum), ``ra``, ``dec`` [deg]
            and ``radius`` [arcsec]; ``survey`` ("ztf" or "lsst"); ``order_by`` (oid, ndet,
            firstmjd, lastmjd, deltajd, meanra, meandec, sigmara, sigmadec, g_r_max,
            g_r_max_corr, g_r_mean, g_r_mean_corr, probability, anomaly, my_anomaly: your
            anomaly model's order, needs the API key), ``order_mode`` (ASC,
            DESC); ``page_size`` (objects per request), ``max_results`` (stop after this
            many; a warning says when more match), ``page`` (1-based: that page only).

        Returns
        -------
        One row per object: its statistics and, when a classifier and class are
        given, the matching probability row (``classifier``, ``classifier_version``,
        ``class``, ``probability``, ``ranking``).
        """
        fmt = check_format(format)
        query = object_query(filters, self.page_size, self.max_results)
        rows, more = self._run(self._object_rows(query))
        if more:
            warnings.warn(f"stopped at max_results={query.max_results}: more objects match "
                          "(raise max_results, or narrow the filters)", stacklevel=2)
        columns = OBJECT_COLUMNS + (CLASS_COLUMNS if query.with_class else [])
        return to_format(rows, fmt, columns, index, sort)

    async def _object_rows(self, query: ObjectQuery) -> tuple[list[dict[str, Any]], bool]:
        """The rows, and whether more objects match than ``max_results``."""
        rows: list[dict[str, Any]] = []
        after, number = None, 1
        while True:
            wanted = query.page_size if query.page else min(query.page_size,
                                                             query.max_results - len(rows))
            answer = await self._client.objects_page(filter_=query.filter, order_by=query.order,
                                                     first=wanted, after=after)
            page = answer.objects
            if query.page is None or number == query.page:
                for edge in page.edges:
                    row = _row(edge.node)
                    if query.with_class:
                        matched = edge.matched_probability
                        row.update(dict.fromkeys(CLASS_COLUMNS) if matched is None else {
                            "classifier": matched.classifier_name,
                            "classifier_version": matched.classifier_version,
                            "class": matched.class_name, "probability": matched.probability,
                            "ranking": matched.ranking})
                    rows.append(row)
            if not page.page_info.has_next_page or number == query.page:
                return rows, False
            if query.page is None and len(rows) >= query.max_results:
                return rows, True
            after, number = page.page_info.end_cursor, number + 1

    def count_objects(self, **filters: Any) -> int:
        """How many objects pass ``filters`` (those of :meth:`query_objects`)."""
        query = object_query(filters, 1, 1)
        answer = self._run(self._client.objects_page(filter_=query.filter, first=1,
                                                     with_count=True))
        return int(answer.objects.total_count or 0)

    def query_object(self, oid: str, format: str = "json") -> Any:
        """One object's statistics (json: a dict; else a one-row table)."""
        fmt = check_format(format)
        found = _found(self._run(self._client.object_summary(oid)).object_, f"object {oid}")
        return _row(found) if fmt == "json" else to_format([_row(found)], fmt, OBJECT_COLUMNS)

    def query_lightcurve(self, oid: str, format: str = "json",
                         surveys: str | Sequence[str] | None = None) -> Any:
        """The light curve, of a ZTF or an LSST object.

        json (as ALeRCE's client): ``{"detections": [...], "non_detections": [...],
        "forced_photometry": [...]}`` (each with ``survey``, ``band`` and the fluxes
        ``psf_flux``/``science_flux`` [nJy]).  pandas, votable, csv: one table of every
        point, each saying its ``survey``, ``band`` and ``kind`` (DIFFERENCE, CORRECTED,
        FORCED, UPPER_LIMIT) with ``mag``/``mag_err`` [mag] and ``flux``/``flux_err``
        [nJy], in time order.  ``surveys`` (e.g. ``["ztf", "lsst"]``, table formats only)
        adds the points of the object's counterparts in those surveys.
        """
        fmt = check_format(format)
        wanted = survey_list(surveys)
        if fmt == "json" and wanted is not None:
            raise ParseError("surveys combines light curves as one table: use a table "
                             "format (pandas, votable, csv)")
        if fmt == "json":
            tables = _found(self._run(self._client.object_lightcurve_tables(oid)).object_,
                            f"object {oid}")
            return {"detections": [_row(d) for d in tables.detections],
                    "non_detections": [_row(d) for d in tables.non_detections],
                    "forced_photometry": [_row(d) for d in tables.forced_photometry]}
        points = _found(self._run(self._client.object_lightcurve_points(
            oid, surveys=wanted)).object_, f"object {oid}")
        return to_format([_row(p) for p in points.lightcurve], fmt,
                         ["oid", "survey", "mjd", "fid", "band", "kind", "mag", "mag_err",
                          "flux", "flux_err", "unit", "candid", "isdiffpos", "derived"])

    def query_counterparts(self, oid: str, format: str = "json") -> Any:
        """The same source in the other surveys: objects within 1.5 arcsec (``oid``,
        ``survey``, ``separation`` [arcsec]), nearest first."""
        fmt = check_format(format)
        found = _found(self._run(self._client.object_counterparts(oid)).object_,
                       f"object {oid}")
        rows = [_row(c) for c in found.counterparts]
        return rows if fmt == "json" else to_format(rows, fmt, ["oid", "survey", "separation"])

    def query_solar_system(self, designation: str, format: str = "json") -> Any:
        """A known minor planet (any designation form: ``K01S97B``, ``2001 SB97``, ``433``)
        and its detections by every survey.

        json: a dict (``designation``, ``designations``, ``ss_object_id``, ``orbit``,
        ``detections``); table formats: the detections.  Raises ObjectNotFoundError when
        no survey saw it.
        """
        fmt = check_format(format)
        found = _found(self._run(self._client.solar_system_object(designation))
                       .solar_system_object, f"minor planet {designation}")
        detections = [_row(d) for d in found.detections]
        if fmt != "json":
            return to_format(detections, fmt, list(detections[0]) if detections else [])
        return {**_row(found), "detections": detections}

    def _object_table(self, oid: str, fetch: Callable[[], Coroutine[Any, Any, Any]],
                      field: str, format: str, index: str | None, sort: str | None,
                      columns: list[str]) -> Any:
        fmt = check_format(format)
        found = _found(self._run(fetch()).object_, f"object {oid}")
        return to_format([_row(r) for r in getattr(found, field)], fmt, columns, index, sort)

    def query_detections(self, oid: str, format: str = "json", index: str | None = None,
                         sort: str | None = None) -> Any:
        """Detections (alert candidates and prv_candidates) in time order, with the
        corrected magnitudes (``magpsf_corr`` [mag]...)."""
        return self._object_table(oid, lambda: self._client.object_detections(oid),
                                  "detections", format, index, sort,
                                  list(DetectionFields.model_fields))

    def query_non_detections(self, oid: str, format: str = "json", index: str | None = None,
                             sort: str | None = None) -> Any:
        """Upper limits (``diffmaglim`` [mag]) in time order."""
        return self._object_table(oid, lambda: self._client.object_non_detections(oid),
                                  "non_detections", format, index, sort,
                                  list(NonDetectionFields.model_fields))

    def query_forced_photometry(self, oid: str, format: str = "json",
                                index: str | None = None, sort: str | None = None) -> Any:
        """Forced photometry (ZTF fp_hists) in time order."""
        return self._object_table(oid, lambda: self._client.object_forced_photometry(oid),
                                  "forced_photometry", format, index, sort,
                                  list(ForcedPhotometryFields.model_fields))

    def query_magstats(self, oid: str, format: str = "json", index: str | None = None,
                       sort: str | None = None) -> Any:
        """Per-band magnitude statistics."""
        return self._object_table(oid, lambda: self._client.object_mag_stats(oid),
                                  "magstats", format, index, sort,
                                  list(ObjectMagStatsObjectMagstats.model_fields))

    def query_probabilities(self, oid: str, classifier: str | None = None,
                            format: str = "json", index: str | None = None,
                            sort: str | None = None) -> Any:
        """Classifier probabilities (every classifier, or ``classifier``'s), by ranking."""
        return self._object_table(
            oid, lambda: self._client.object_probabilities(oid, classifier=classifier),
            "probabilities", format, index, sort,
            list(ObjectProbabilitiesObjectProbabilities.model_fields))

    def query_features(self, oid: str, format: str = "json", index: str | None = None,
                       sort: str | None = None) -> Any:
        """The light-curve features behind the latest classification (``name``, ``value``;
        empty until the object is classified)."""
        return self._object_table(oid, lambda: self._client.object_features(oid),
                                  "features", format, index, sort, ["name", "value"])

    def query_feature(self, oid: str, name: str, format: str = "json") -> Any:
        """One feature, e.g. ``Multiband_period`` (ALeRCE's names; ``_1`` = g, ``_2`` = r)."""
        fmt = check_format(format)
        rows = [row for row in self.query_features(oid) if row["name"] == name]
        if not rows:
            raise ObjectNotFoundError(f"{oid} has no feature {name!r}")
        return to_format(rows, fmt, ["name", "value"])

    def query_anomaly(self, oid: str) -> dict[str, Any] | None:
        """How unusual the object is: its latest anomaly ``score`` (a percentile in
        [0, 1]; 1 = more unusual than every reference object), ``raw_score``, the model,
        the stamp classifier's ``bogus`` probability that gated it, per-branch
        ``branches``, the three ``top_features`` that isolated it and the ``history`` of
        scores as its light curve grew (oldest first); None until it is scored."""
        found = _found(self._run(self._client.object_anomaly(oid)).object_, f"object {oid}")
        return None if found.anomaly is None else _row(found.anomaly)

    def query_anomaly_history(self, oid: str, format: str = "json", index: str | None = None,
                              sort: str | None = None) -> Any:
        """Every anomaly score of the object, oldest first (``mjd`` of the last detection
        scored, ``ndet``, ``score``, ``raw_score``, ``model_version``)."""
        fmt = check_format(format)
        scored = self.query_anomaly(oid)
        rows = [] if scored is None else scored["history"]
        return to_format(rows, fmt, ["mjd", "ndet", "score", "raw_score", "model_version"],
                         index, sort)

    def query_forecast(self, oid: str, band: str, mjd: Sequence[float],
                       format: str = "json", index: str | None = None,
                       sort: str | None = None) -> Any:
        """The forecast of one band (ZTF g r i; LSST u g r i z y) at times ``mjd`` [MJD]:
        one row per time with ``magnitude`` and the 68/95 % bounds [mag]
        (``lower_68``/``lower_95`` the bright ones; a faint bound, ``upper_68`` or
        ``upper_95``, is None where a transient's interval reaches zero flux) and
        ``valid``, plus ``band``, ``model`` (spm, harmonic, drw or none),
        ``branch``, ``magnitude_kind`` (DIFFERENCE for spm, else APPARENT) and
        ``reason`` (why nothing is valid) on every row.  The object's latest ``surprise``
        is :meth:`query_surprise`."""
        fmt = check_format(format)
        found = _found(self._run(self._client.object_forecast(oid, band, list(mjd))).object_,
                       f"object {oid}")
        head = _row(found.forecast)
        points = head.pop("points")
        return to_format([{**p, **head} for p in points], fmt,
                         ["mjd", "valid", "magnitude", "lower_68", "upper_68", "lower_95",
                          "upper_95", "band", "model", "branch", "magnitude_kind", "reason"],
                         index, sort)

    def query_surprise(self, oid: str) -> dict[str, Any] | None:
        """How far the object's latest classified detection fell from the forecast made
        from the ones before it: ``value`` (standardised; positive = brighter than
        forecast, |value| > 3 = not predicted), ``mjd``, ``band``, ``fid``, ``model``;
        None until a valid forecast could be made."""
        found = _found(self._run(self._client.object_surprise(oid)).object_, f"object {oid}")
        return None if found.surprise is None else _row(found.surprise)

    def query_labels(self, oid: str, format: str = "json", index: str | None = None,
                     sort: str | None = None) -> Any:
        """Users' labels of the object (:meth:`add_label`), oldest first."""
        return self._object_table(oid, lambda: self._client.object_labels(oid), "labels",
                                  format, index, sort,
                                  ["oid", "candid", "label", "comment", "user", "created"])

    # ---- classifiers -------------------------------------------------------------------

    def query_classifiers(self, format: str = "json") -> Any:
        """Every classifier and version with its classes, survey and registered model (one
        row per version; the light-curve classifiers appear once per survey)."""
        fmt = check_format(format)
        no_version: list[str | None] = [None]
        rows = [{"classifier_name": c.name, "classifier_version": version,
                 "classes": list(c.classes), "description": c.description,
                 "parent_classifier": c.parent_classifier, "parent_class": c.parent_class,
                 "survey": c.survey.value, "model": c.model}
                for c in self._run(self._client.classifiers()).classifiers
                for version in (c.versions or no_version)]
        return to_format(rows, fmt, ["classifier_name", "classifier_version", "classes",
                                        "description", "parent_classifier", "parent_class",
                                        "survey", "model"])

    def query_classes(self, classifier_name: str, classifier_version: str,
                      format: str = "json") -> Any:
        """The classes of one classifier version (json: a list of names)."""
        fmt = check_format(format)
        for c in self._run(self._client.classifiers()).classifiers:
            if c.name == classifier_name and classifier_version in c.versions:
                return list(c.classes) if fmt == "json" else to_format(
                    [{"class_name": name} for name in c.classes], fmt, ["class_name"])
        raise ObjectNotFoundError(f"no classifier {classifier_name} {classifier_version} "
                                  "(query_classifiers() lists them)")

    # ---- catalogues and TNS ------------------------------------------------------------

    def catshtm_conesearch(self, ra: float, dec: float, radius: float,
                           catalog_name: str = "all", format: str = "pandas",
                           limit: int = 100) -> Any:
        """Catalogue sources within ``radius`` [arcsec] of (``ra``, ``dec``) [deg],
        nearest first (at most ``limit`` per catalogue).

        ``catalog_name="all"`` gives ``{catalogue: result}`` for the catalogues with
        sources there (as ALeRCE's client); a name gives that catalogue's result.
        """
        fmt = check_format(format)

        async def search(name: str) -> list[dict[str, Any]]:
            found = await self._client.catalog_cone_search(name, ra, dec, radius, limit=limit)
            return [_source_row(s) for s in found.cone_search]

        if catalog_name != "all":
            return to_format(self._run(search(catalog_name)), fmt, SOURCE_COLUMNS)

        async def every() -> dict[str, list[dict[str, Any]]]:
            names = [c.name for c in (await self._client.catalogs()).catalogs]
            found = await asyncio.gather(*(search(n) for n in names))
            return {n: rows for n, rows in zip(names, found, strict=True) if rows}

        return {name: to_format(rows, fmt, SOURCE_COLUMNS)
                for name, rows in self._run(every()).items()}

    def catshtm_crossmatch(self, ra: float, dec: float, radius: float | None = None,
                           catalog_name: str = "all", format: str = "pandas") -> Any:
        """The nearest source of each catalogue within ``radius`` [arcsec] (None: each
        catalogue's default) of (``ra``, ``dec``) [deg].

        ``catalog_name="all"`` gives ``{catalogue: one-row result}`` for the catalogues
        with a match; a name gives that catalogue's result (empty when none).
        """
        fmt = check_format(format)
        catalogs = None if catalog_name == "all" else [catalog_name]
        found = self._run(self._client.catalog_crossmatch(ra, dec, radius=radius,
                                                          catalogs=catalogs))
        rows = [_source_row(s) for s in found.crossmatch]
        if catalogs is not None:
            return to_format(rows, fmt, SOURCE_COLUMNS)
        return {row["catalog"]: to_format([row], fmt, SOURCE_COLUMNS) for row in rows}

    def query_catalogs(self, format: str = "json") -> Any:
        """The catalogues of the catalogue service, with their size and default radius."""
        fmt = check_format(format)
        rows = [{"name": c.name, "row_count": c.row_count,
                 "default_radius_arcsec": c.default_radius_arcsec, "source": c.source,
                 "columns": [col.name for col in c.columns]}
                for c in self._run(self._client.catalogs()).catalogs]
        return to_format(rows, fmt, ["name", "row_count", "default_radius_arcsec",
                                        "source", "columns"])

    def query_tns(self, oid: str | None = None, ra: float | None = None,
                  dec: float | None = None, radius: float | None = None,
                  format: str = "json") -> Any:
        """TNS objects near an object, or near (``ra``, ``dec``) [deg] within ``radius``
        [arcsec] (default 2)."""
        fmt = check_format(format)
        if oid is None and (ra is None or dec is None):
            raise ParseError("query_tns needs an oid, or ra and dec")
        found = self._run(self._client.tns_search(oid=oid, ra=ra, dec=dec, radius=radius))
        return to_format([_row(t) for t in found.tns], fmt,
                         ["name", "type", "redshift", "ra", "dec", "discovery_date",
                          "reporting_group", "distance_arcsec"])

    # ---- stamps, packets, finding charts ------------------------------------------------

    async def _stamp(self, oid: str, candid: int | None) -> ObjectStampsObjectStamps:
        found = _found((await self._client.object_stamps(oid)).object_, f"object {oid}")
        if not found.stamps:
            raise ObjectNotFoundError(f"{oid} has no alert with cutouts")
        if candid is None:
            # as ALeRCE: the object's first detection with cutouts
            return min(found.stamps, key=lambda s: (s.mjd, s.candid))
        for stamp in found.stamps:
            if stamp.candid == int(candid):
                return stamp
        raise ObjectNotFoundError(f"{oid} has no alert {candid} with cutouts")

    def get_stamps(self, oid: str, candid: int | None = None,
                   format: str = "HDUList") -> Any:
        """The science, template and difference cutouts of one alert (default: the
        object's first alert with cutouts).

        Returns
        -------
        astropy.io.fits.HDUList
            ``format="HDUList"``: three HDUs (EXTNAME SCIENCE, TEMPLATE, DIFFERENCE).
        list of numpy.ndarray
            ``format="numpy"``: [science, template, difference].
        """
        name = check_format(format, ("hdulist", "numpy"))

        async def fetch() -> list[fits.ImageHDU | fits.PrimaryHDU]:
            stamp = await self._stamp(oid, candid)
            answers = await asyncio.gather(*(self._client.get(getattr(stamp, kind))
                                             for kind in STAMP_KINDS))
            hdus: list[fits.ImageHDU | fits.PrimaryHDU] = []
            for kind, answer in zip(STAMP_KINDS, answers, strict=True):
                if not answer.content.startswith(b"SIMPLE"):
                    # some early alerts carry JPEG "cutouts"; the stamps service serves
                    # the bytes as they came
                    raise APIError("INTERNAL", f"the {kind} cutout of alert {stamp.candid} "
                                               f"is not FITS (starts {answer.content[:8]!r})")
                with fits.open(io.BytesIO(answer.content)) as opened:
                    image = next(h for h in opened if h.data is not None)
                    header = image.header.copy()
                    header["EXTNAME"] = kind.upper()
                    header["CANDID"] = (str(stamp.candid), "ZTF alert candid")
                    data = np.array(image.data)
                hdus.append(fits.PrimaryHDU(data, header) if not hdus
                            else fits.ImageHDU(data, header))
            return hdus

        hdus = self._run(fetch())
        if name == "numpy":
            return [np.asarray(h.data) for h in hdus]
        return fits.HDUList(hdus)

    def plot_stamps(self, oid: str, candid: int | None = None) -> Any:
        """A matplotlib figure of the three cutouts (zscale), for notebooks.

        Needs matplotlib (``pip install 'nightjar-client[plot]'``).
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError("plot_stamps needs matplotlib: "
                              "pip install 'nightjar-client[plot]'") from exc
        from astropy.visualization import ImageNormalize, ZScaleInterval

        hdus = self.get_stamps(oid, candid)
        figure, axes = plt.subplots(1, 3, figsize=(9, 3.3))
        for axis, hdu in zip(axes, hdus, strict=True):
            data = np.nan_to_num(np.asarray(hdu.data, dtype=float))
            axis.imshow(data, origin="lower", cmap="gray",
                        norm=ImageNormalize(data, interval=ZScaleInterval()))
            axis.set_title(str(hdu.header["EXTNAME"]).lower())
            axis.set_xticks([])
            axis.set_yticks([])
        figure.suptitle(f"{oid}  candid {hdus[0].header['CANDID']}")
        figure.tight_layout()
        return figure

    def get_avro(self, oid: str, candid: int | None = None, format: str = "dict") -> Any:
        """The alert packet as ZTF sent it (default: the object's first alert with
        cutouts): ``format="dict"`` decodes it, ``"bytes"`` gives the Avro file."""
        name = check_format(format, ("dict", "bytes"))

        async def fetch() -> bytes:
            stamp = await self._stamp(oid, candid)
            return (await self._client.get(stamp.avro_url)).content

        content = self._run(fetch())
        if name == "bytes":
            return content
        return next(iter(fastavro.reader(io.BytesIO(content))))

    def get_finding_chart(self, oid: str, path: str | os.PathLike[str]) -> Path:
        """Write the object's finding chart (PDF) to ``path``; return the path."""
        async def fetch() -> bytes:
            found = _found((await self._client.object_downloads(oid)).object_, f"object {oid}")
            return (await self._client.get(found.downloads.finding_chart)).content

        target = Path(path)
        target.write_bytes(self._run(fetch()))
        return target

    # ---- labels ------------------------------------------------------------------------

    def add_label(self, oid: str, label: str, candid: int | None = None,
                  comment: str | None = None) -> dict[str, Any]:
        """Label an object (e.g. ``BOGUS``, ``POSSIBLE_SN``), optionally one of its
        alerts; needs the API key.  Returns the stored label (with owner and time)."""
        added = self._run(self._client.add_label(oid, label, candid=candid, comment=comment))
        return _row(added.add_label)

    def label_anomaly(self, oid: str, label: str) -> dict[str, Any]:
        """Teach your anomaly model: label a scored object ``ANOMALY``, ``NOT_ANOMALY``
        or ``ARTEFACT`` (needs the API key).  Your model is refitted from all your labels;
        returns the stored label with your label count, how many users call the object
        an artefact and whether that made the shared score treat it as bogus."""
        try:
            choice = AnomalyLabel(label.upper())
        except ValueError as exc:
            raise ParseError(f"an anomaly label is one of "
                             f"{[m.value for m in AnomalyLabel]}, not {label!r}") from exc
        return _row(self._run(self._client.label_anomaly(oid, choice)).label_anomaly)

    def query_my_anomalies(self, first: int = 50, format: str = "json",
                           index: str | None = None, sort: str | None = None) -> Any:
        """Scored objects, most unusual first by your anomaly model (the shared one until
        you label; needs the API key): ``oid``, ``score``, ``raw_score``,
        ``shared_raw_score``."""
        fmt = check_format(format)
        ranked = self._run(self._client.my_anomalies(first)).my_anomalies
        return to_format([_row(r) for r in ranked], fmt,
                         ["oid", "score", "raw_score", "shared_raw_score"], index, sort)

    # ---- filters, watchlists, watchmaps -------------------------------------------------

    def create_filter(self, name: str, expression: str, notify: str = "every",
                      public: bool = False, description: str = "", *, kafka: bool = False,
                      webhook_url: str | None = None, webhook_secret: str | None = None,
                      slack: bool = False, email: str | None = None,
                      digest_minutes: int = 60) -> dict[str, Any]:
        """Save a filter (needs the API key): a CEL expression over the alert context,
        e.g. ``'survey == "LSST" && prob("lc_classifier", "SNIa") > 0.6'``.  ``notify``:
        ``every`` alert, the ``first`` per object, or on a ``class_change``.  A refused
        expression raises :class:`APIError` (code ``BAD_USER_INPUT``) whose message
        gives the line and column.  Delivery besides the store: ``kafka`` (the filter's
        own topic), ``webhook_url`` with ``webhook_secret`` (HMAC-SHA256 signed POSTs;
        ``slack`` for Slack's body), ``email`` digests every ``digest_minutes``."""
        delivery = (DeliveryInput(kafka=kafka, webhook_url=webhook_url,
                                  webhook_secret=webhook_secret, slack=slack, email=email,
                                  digest_minutes=digest_minutes)
                    if kafka or webhook_url or email else None)
        made = self._run(self._client.create_filter(FilterInput(
            name=name, expression=expression, notify=FilterNotify(notify.upper()),
            public=public, description=description, delivery=delivery)))
        return _row(made.create_filter)

    def update_filter(self, filter_id: str, expression: str | None = None,
                      notify: str | None = None, public: bool | None = None,
                      state: str | None = None) -> dict[str, Any]:
        """Edit one of your filters (a new expression is a new version); ``state``
        ``"paused"`` pauses it, ``"active"`` resumes it."""
        changes = FilterUpdateInput(
            expression=expression, notify=FilterNotify(notify.upper()) if notify else None,
            public=public, state=FilterState(state.upper()) if state else None)
        return _row(self._run(self._client.update_filter(filter_id, changes)).update_filter)

    def delete_filter(self, filter_id: str) -> bool:
        """Delete one of your filters and its matches."""
        return bool(self._run(self._client.delete_filter(filter_id)).delete_filter)

    def copy_filter(self, filter_id: str, name: str) -> dict[str, Any]:
        """Copy a public filter (the gallery of :meth:`list_filters`) into your filters."""
        return _row(self._run(self._client.copy_filter(filter_id, name)).copy_filter)

    def list_filters(self) -> list[dict[str, Any]]:
        """Your filters and the public gallery."""
        return [_row(f) for f in self._run(self._client.filters()).filters]

    def dry_run_filter(self, expression: str, since: float | None = None,
                       until: float | None = None, max_objects: int = 2000
                       ) -> dict[str, Any]:
        """Check an expression and count what it would match over the stored alerts:
        ``valid`` and ``error`` (message, line, column), ``matched_alerts``,
        ``matched_objects``, ``examples``..."""
        found = self._run(self._client.dry_run_filter(expression, max_objects, since=since,
                                                      until=until))
        return _row(found.dry_run_filter)

    def filter_matches(self, filter_id: str, after: int = 0, format: str = "json",
                       max_results: int | None = None) -> Any:
        """A filter's matches, oldest first, from after sequence ``after`` (what matched
        while you were away): ``seq``, ``oid``, ``survey``, ``alert_id``, ``mjd``,
        ``ra``, ``dec``, ``version``, ``source``, ``permalink``, ``read`` (what the
        filter read, as JSON values)."""
        fmt = check_format(format)
        limit = max_results or self.max_results
        rows: list[dict[str, Any]] = []
        cursor: str | None = str(after) if after else None
        while len(rows) < limit:
            page = self._run(self._client.filter_matches(
                filter_id, min(self.page_size, limit - len(rows)), after=cursor)).filter_matches
            rows += [_match_row(m) for m in page.items]
            if not page.has_next_page:
                break
            cursor = page.end_cursor
        return rows if fmt == "json" else to_format(
            [{k: v for k, v in r.items() if k != "read"} for r in rows], fmt, MATCH_COLUMNS)

    def subscribe_filter(self, filter_id: str, *, max_reconnects: int | None = None
                         ) -> AsyncIterator[LiveFilterMatchesFilterMatches]:
        """New matches of one filter as they are stored (async iterator; your API key is
        sent, so your private filters work).  After a reconnect, :meth:`filter_matches`
        with ``after`` = the last ``seq`` seen fills the gap."""
        return self._live(lambda client: client.live_filter_matches(filter_id),
                          lambda message: message.filter_matches, max_reconnects)

    def create_watchlist(self, name: str, source: str | os.PathLike[str] | bytes,
                         radius: float = 2.0, public: bool = False,
                         retroactive: bool = True) -> dict[str, Any]:
        """Upload a watchlist: a CSV or VOTable file (path) or its content, with name,
        ra, dec [deg] and an optional radius [arcsec] per row (default ``radius``; at most
        3600).  It is validated at once (a bad row raises with its number), then loaded
        and matched over the archive in the background: :meth:`watchlists` shows the
        progress."""
        if isinstance(source, bytes):
            content = source.decode()
        else:
            text = str(source)
            content = (Path(text).read_text() if "\n" not in text and Path(text).exists()
                       else text)
        made = self._run(self._client.create_watchlist(WatchlistInput(
            name=name, content=content, radius=radius, public=public,
            retroactive=retroactive)))
        return _row(made.create_watchlist)

    def watchlists(self) -> list[dict[str, Any]]:
        """Your watchlists and the public ones, with loading progress and match counts."""
        return [_row(w) for w in self._run(self._client.watchlists()).watchlists]

    def create_watchmap(self, name: str, path: str | os.PathLike[str],
                        since: float | None = None, until: float | None = None,
                        window_days: float | None = None, public: bool = False
                        ) -> dict[str, Any]:
        """Upload a watchmap: a MOC or a multi-order HEALPix sky map (FITS); filters use
        it as ``in_watchmap("NAME", 0.9)``."""
        import base64

        data = base64.b64encode(Path(path).read_bytes()).decode()
        made = self._run(self._client.create_watchmap(WatchmapInput(
            name=name, content_base_64=data, since=since, until=until, window_days=window_days,
            public=public)))
        return _row(made.create_watchmap)

    # ---- live ---------------------------------------------------------------------------

    def subscribe_classifications(
            self, classifier: str | None = None, class_name: str | None = None,
            probability: float | None = None, ranking: int | None = None,
            ra: float | None = None, dec: float | None = None, radius: float | None = None,
            *, max_reconnects: int | None = None) -> AsyncIterator[LiveClassification]:
        """New classifications as they are stored, one per class row (async iterator).

        Filters: ``classifier``, ``class_name``, ``probability`` (minimum), ``ranking``
        (1: only the most probable class), a cone ``ra``, ``dec`` [deg], ``radius``
        [arcsec].  A dropped connection is reopened with exponential backoff
        (``max_reconnects`` times in a row, default forever); what is stored while it is
        down is not replayed (``missed`` counts only what a slow reader lost).
        """
        flt = classification_filter(classifier, class_name, probability, ranking, ra, dec,
                                    radius)
        return self._live(lambda client: client.live_classifications(filter_=flt),
                          lambda message: message.classifications, max_reconnects)

    def subscribe_alerts(self, oid: str | list[str] | None = None, fid: int | None = None,
                         magpsf: Any = None, ra: float | None = None,
                         dec: float | None = None, radius: float | None = None, *,
                         max_reconnects: int | None = None) -> AsyncIterator[LiveAlert]:
        """Newly stored alert detections (async iterator); ``magpsf`` is [min, max] [mag].
        Reconnects as :meth:`subscribe_classifications` does."""
        flt = alert_filter(oid, fid, magpsf, ra, dec, radius)
        return self._live(lambda client: client.live_alerts(filter_=flt),
                          lambda message: message.alerts, max_reconnects)

    async def _live(self, subscribe: Callable[[GatewayClient], AsyncIterator[M]],
                    pick: Callable[[M], T], max_reconnects: int | None) -> AsyncIterator[T]:
        """``pick`` of each message of ``subscribe``, reconnecting with backoff."""
        # its own transport: this runs in the caller's event loop, not the client's
        client = GatewayClient(self.url, self._api_key or None, self.policy)
        failures = 0
        try:
            while True:
                try:
                    async for message in subscribe(client):
                        failures = 0
                        yield pick(message)
                    cause = "the gateway closed the subscription"
                except GraphQLClientGraphQLMultiError as exc:
                    error = graphql_error(exc)
                    if error.code not in TRANSIENT_CODES:
                        raise error from exc
                    cause = str(error)
                except (OSError, WebSocketException, GraphQLClientError,
                        TimeoutError) as exc:
                    cause = f"{type(exc).__name__}: {exc}"
                if max_reconnects is not None and failures >= max_reconnects:
                    raise APIError("UNAVAILABLE", f"subscription lost after {failures} "
                                                  f"reconnects: {cause}")
                delay = self.policy.delay(failures)
                failures += 1
                log.warning("subscription to %s interrupted (%s); reconnecting in %.1f s",
                            self.url, cause, delay)
                await asyncio.sleep(delay)
        finally:
            await client.aclose()


MATCH_COLUMNS = ["seq", "filter_name", "version", "oid", "survey", "alert_id", "mjd", "ra",
                 "dec", "stage", "source", "permalink", "created"]


def _match_row(match: Any) -> dict[str, Any]:
    row = _row(match)
    row["read"] = {r["path"]: json.loads(r["value"]) for r in row.pop("read", [])}
    return row


SOURCE_COLUMNS = ["catalog", "source_id", "ra", "dec", "distance_arcsec"]


def _source_row(source: Any) -> dict[str, Any]:
    """A catalogue source as one flat row: its position, then the catalogue's columns."""
    row = {"catalog": source.catalog, "source_id": source.source_id, "ra": source.ra,
           "dec": source.dec, "distance_arcsec": source.distance_arcsec}
    return {**row, **{k: v for k, v in (source.columns or {}).items() if k not in row}}
