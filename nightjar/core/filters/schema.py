"""What a filter sees: the typed context, declared once, with units.

The checker (:mod:`.language`) reads it to refuse unknown fields and wrong types when a
filter is saved; :mod:`.context` fills it for each alert; the README's table of the
filter language is generated from :func:`context_table`.

A field marked *optional* may be absent (an LSST alert has no apparent magnitude before
it is corrected, an object without a colour has no ``g_r_max``): ``has(alert.mag)`` tests
it, and a comparison with an absent field is *undefined*, which does not match (CEL's
``||`` and ``&&`` absorb it as the language specifies: ``!has(alert.mag) || alert.mag <
19`` matches alerts without one).
"""

from __future__ import annotations

from dataclasses import dataclass

#: the ZTF and Rubin bands a band-keyed map may name
BANDS = ("u", "g", "r", "i", "z", "y")


@dataclass(frozen=True)
class Type:
    """A CEL type: a primitive (``int``, ``uint``, ``double``, ``string``, ``bool``,
    ``null``, ``dyn``), ``list`` of one type, ``map`` from one type to another, or a
    message of :data:`MESSAGES` (its name)."""

    name: str
    args: tuple[Type, ...] = ()

    def __str__(self) -> str:
        return f"{self.name}<{', '.join(map(str, self.args))}>" if self.args else self.name

    @property
    def is_message(self) -> bool:
        return self.name in MESSAGES

    @property
    def is_number(self) -> bool:
        return self.name in NUMBERS


INT, UINT, DOUBLE = Type("int"), Type("uint"), Type("double")
STRING, BOOL, NULL, DYN = Type("string"), Type("bool"), Type("null"), Type("dyn")
NUMBERS = frozenset({"int", "uint", "double"})


def list_of(item: Type) -> Type:
    return Type("list", (item,))


def map_of(key: Type, value: Type) -> Type:
    return Type("map", (key, value))


@dataclass(frozen=True)
class Field:
    """One field of a message: name, type, unit ("" when none), meaning, optional."""

    name: str
    type: Type
    unit: str
    doc: str
    optional: bool = False


def _f(name: str, type_: Type, unit: str, doc: str, optional: bool = False) -> Field:
    return Field(name, type_, unit, doc, optional)


BAND_STATS = "BandStats"
XMATCH_ENTRY = "CrossMatch"

#: message name -> its fields
MESSAGES: dict[str, tuple[Field, ...]] = {
    "Alert": (
        _f("id", STRING, "", "the detection's id: ZTF candid or LSST diaSourceId, as a string"),
        _f("mjd", DOUBLE, "MJD (UTC)", "time of the exposure's midpoint"),
        _f("band", STRING, "", "band: g, r, i (ZTF) or u, g, r, i, z, y (LSST)"),
        _f("ra", DOUBLE, "deg", "right ascension of the detection (ICRS)"),
        _f("dec", DOUBLE, "deg", "declination of the detection (ICRS)"),
        _f("flux_diff", DOUBLE, "nJy", "difference-image PSF flux (negative: fainter than "
           "the template)"),
        _f("flux_diff_err", DOUBLE, "nJy", "its 1-sigma error"),
        _f("positive", BOOL, "", "the difference flux is positive"),
        _f("snr", DOUBLE, "", "|flux_diff| / flux_diff_err"),
        _f("mag_diff", DOUBLE, "AB mag", "difference magnitude, from |flux_diff| (ZTF magpsf)"),
        _f("mag_diff_err", DOUBLE, "mag", "its 1-sigma error"),
        _f("mag", DOUBLE, "AB mag", "apparent magnitude (template plus difference), where "
           "correction applies", optional=True),
        _f("mag_err", DOUBLE, "mag", "its 1-sigma error", optional=True),
        _f("reliability", DOUBLE, "0-1", "real/bogus score: ZTF drb (rb when absent), LSST "
           "reliability", optional=True),
        _f("first", BOOL, "", "this is the object's first detection"),
    ),
    "Object": (
        _f("id", STRING, "", "object id: ZTF objectId or LSST diaObjectId, as a string"),
        _f("ndet", INT, "", "detections so far (as of the alert)"),
        _f("first_mjd", DOUBLE, "MJD (UTC)", "first detection"),
        _f("last_mjd", DOUBLE, "MJD (UTC)", "last detection (as of the alert)"),
        _f("age", DOUBLE, "day", "last_mjd - first_mjd"),
        _f("ra", DOUBLE, "deg", "mean right ascension"),
        _f("dec", DOUBLE, "deg", "mean declination"),
        _f("g_r_max", DOUBLE, "mag", "g - r at maximum brightness (difference magnitudes)",
           optional=True),
        _f("g_r_mean", DOUBLE, "mag", "g - r of the mean magnitudes (difference)",
           optional=True),
        _f("stellar", BOOL, "", "the nearest reference source looks like a star", optional=True),
        _f("band", map_of(STRING, Type(BAND_STATS)), "", "per-band statistics, keyed by band "
           "(``object.band.g`` or ``object.band[\"g\"]``; a band not seen is absent)"),
    ),
    BAND_STATS: (
        _f("ndet", INT, "", "detections in the band"),
        _f("first_mjd", DOUBLE, "MJD (UTC)", "first detection in the band"),
        _f("last_mjd", DOUBLE, "MJD (UTC)", "last detection in the band"),
        _f("mag_first", DOUBLE, "AB mag", "first difference magnitude"),
        _f("mag_last", DOUBLE, "AB mag", "last difference magnitude"),
        _f("mag_min", DOUBLE, "AB mag", "brightest difference magnitude"),
        _f("mag_max", DOUBLE, "AB mag", "faintest difference magnitude"),
        _f("mag_mean", DOUBLE, "AB mag", "mean difference magnitude"),
        _f("mag_sigma", DOUBLE, "mag", "standard deviation of the difference magnitudes"),
        _f("mag_last_app", DOUBLE, "AB mag", "last apparent magnitude", optional=True),
        _f("dmdt_first", DOUBLE, "mag/day", "rise rate from the last upper limit before the "
           "first detection (negative: brightening)", optional=True),
    ),
    "Anomaly": (
        _f("score", DOUBLE, "0-1", "how unusual the object is (percentile among the "
           "reference objects, gated by P(bogus))"),
        _f("model", STRING, "", "the anomaly model's name and version"),
    ),
    "Surprise": (
        _f("value", DOUBLE, "sigma", "how far the latest detection falls from its forecast"),
        _f("band", STRING, "", "the band of that detection"),
    ),
    XMATCH_ENTRY: (
        _f("id", STRING, "", "the catalogue source's id"),
        _f("dist", DOUBLE, "arcsec", "distance from the object's mean position"),
        _f("type", STRING, "", "the source's type where the catalogue gives one (GCVS and "
           "VSX variability type, SIMBAD-like class)", optional=True),
    ),
    "Tns": (
        _f("name", STRING, "", "TNS name with prefix (\"SN 2024abc\")"),
        _f("type", STRING, "", "TNS type (\"SN Ia\"); absent when unclassified", optional=True),
        _f("dist", DOUBLE, "arcsec", "distance to the TNS position"),
    ),
}

#: the context's top-level names (``survey``, ``alert``...) and their types
ROOT: tuple[Field, ...] = (
    _f("survey", STRING, "", "\"ZTF\" or \"LSST\""),
    _f("alert", Type("Alert"), "", "the alert's own detection"),
    _f("object", Type("Object"), "", "the object's statistics as of the alert"),
    _f("anomaly", Type("Anomaly"), "", "the latest anomaly score (classification stage)",
       optional=True),
    _f("surprise", Type("Surprise"), "", "the latest forecast surprise (classification "
       "stage)", optional=True),
    _f("xmatch", map_of(STRING, Type(XMATCH_ENTRY)), "", "nearest source per catalogue, "
       "keyed by catalogue name (a catalogue without a match is absent)"),
    _f("tns", Type("Tns"), "", "the TNS object within 2 arcsec", optional=True),
)


@dataclass(frozen=True)
class Function:
    """A function a filter may call: global (``prob(...)``) or on a receiver
    (``xmatch.has(...)``)."""

    name: str
    params: tuple[Type, ...]
    result: Type
    doc: str
    receiver: Type | None = None
    #: which pipeline stage must have run before it can be evaluated
    stage: str = "alert"


FUNCTIONS: tuple[Function, ...] = (
    Function("prob", (STRING, STRING), DOUBLE,
             "probability of a class by a classifier, e.g. prob(\"lc_classifier\", \"SNIa\"); "
             "undefined when that classifier has not classified the object",
             stage="classification"),
    Function("class_of", (STRING,), STRING,
             "the most probable class of a classifier; undefined when it has not run",
             stage="classification"),
    Function("classified", (STRING,), BOOL,
             "whether the classifier has classified the object", stage="classification"),
    Function("has", (STRING, DOUBLE), BOOL,
             "xmatch.has(catalogue, radius_arcsec): a source of that catalogue within the "
             "radius [arcsec] of the object's mean position", receiver=map_of(
                 STRING, Type(XMATCH_ENTRY))),
    Function("in_watchlist", (STRING,), BOOL,
             "the alert lies within a row's radius of the named watchlist"),
    Function("in_cone", (DOUBLE, DOUBLE, DOUBLE), BOOL,
             "in_cone(ra, dec, radius_arcsec): the alert lies within the radius [arcsec] of "
             "(ra, dec) [deg], by the exact great-circle distance; numbers written in the "
             "filter, radius up to 36000 (10 deg); a sky region the archive's index narrows "
             "a backfill by"),
    Function("in_watchmap", (STRING, DOUBLE), BOOL,
             "in_watchmap(name, credible): the alert lies inside the named watchmap (a MOC, "
             "or the given credible level [0-1] of a sky map) during its time window"),
)

#: CEL's own functions filters may use: name -> (receiver type or None, params, result)
BUILTINS: dict[str, tuple[Type | None, tuple[Type, ...], Type]] = {
    "contains": (STRING, (STRING,), BOOL),
    "startsWith": (STRING, (STRING,), BOOL),
    "endsWith": (STRING, (STRING,), BOOL),
    "matches": (STRING, (STRING,), BOOL),
}
CONVERSIONS = {"int": INT, "uint": UINT, "double": DOUBLE, "string": STRING}
#: the comprehension macros (receiver.macro(var, expr))
MACROS = ("all", "exists", "exists_one", "map", "filter")


def fields_of(message: str) -> dict[str, Field]:
    return {f.name: f for f in MESSAGES[message]}


def context_table() -> list[tuple[str, str, str, str]]:
    """(path, type, unit, meaning) of every field a filter can read, for documentation."""
    rows: list[tuple[str, str, str, str]] = []

    def walk(prefix: str, fields: tuple[Field, ...]) -> None:
        for fld in fields:
            path = f"{prefix}{fld.name}"
            doc = fld.doc + (" (optional)" if fld.optional else "")
            rows.append((path, str(fld.type), fld.unit, doc))
            target = fld.type
            if target.name == "map" and target.args[1].is_message:
                walk(f"{path}[key].", MESSAGES[target.args[1].name])
            elif target.is_message:
                walk(f"{path}.", MESSAGES[target.name])

    walk("", ROOT)
    return rows
