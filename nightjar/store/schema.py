"""Collections, indexes and shard keys, declared once.

``nightjar db init`` applies :data:`COLLECTIONS` to any MongoDB (embedded or real);
:func:`shard_script` renders the ``sh.shardCollection`` and zone commands for a real
sharded cluster, to be run once with mongosh against a mongos.
"""

from __future__ import annotations

from dataclasses import dataclass

from nightjar.sky import HPX_ORDER

#: Shard key of every per-object collection: HEALPix anchor, then object id, so an
#: object and its light curve share one chunk and sky regions map to shards.
SHARD_KEY: tuple[tuple[str, int], ...] = (("hpx", 1), ("oid", 1))

OBJECTS = "objects"
DETECTIONS = "detections"
NON_DETECTIONS = "non_detections"
FORCED_PHOTOMETRY = "forced_photometry"
PROBABILITIES = "probabilities"
FEATURES = "features"
ANOMALY = "anomaly"
ANOMALY_LABELS = "anomaly_labels"
ANOMALY_USERS = "anomaly_users"
DEAD_LETTERS = "dead_letters"
LABELS = "labels"
TNS_REPORTS = "tns_reports"
LIVE_EVENTS = "live_events"
COUNTERS = "counters"
CLASSIFICATION_EVENTS = "classification_events"
FILTERS = "filters"
FILTER_MATCHES = "filter_matches"
WATCHLISTS = "watchlists"
WATCHLIST_ROWS = "watchlist_rows"
WATCHLIST_MATCHES = "watchlist_matches"
WATCHMAPS = "watchmaps"
COUNTERPARTS = "counterparts"
SOLAR_SYSTEM_OBJECTS = "solar_system_objects"
SOLAR_SYSTEM_DETECTIONS = "solar_system_detections"
LIGHT_CURVE_INDEX = "light_curve_index"
LIGHT_CURVE_COLLECTIONS = (DETECTIONS, NON_DETECTIONS, FORCED_PHOTOMETRY)
#: per-object collections besides the light curve: the classifiers' rows and features, the
#: anomaly scores and the cross-survey links (moved with the object's anchor)
ATTACHED_COLLECTIONS = (PROBABILITIES, FEATURES, ANOMALY, COUNTERPARTS)
#: the live feed and its counter: transient, not part of the data (left out of snapshots)
FEED_COLLECTIONS = (LIVE_EVENTS, COUNTERS)


@dataclass(frozen=True)
class IndexSpec:
    keys: tuple[tuple[str, int], ...]
    unique: bool = False

    @property
    def name(self) -> str:
        return "_".join(f"{k}_{d}" for k, d in self.keys)


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    indexes: tuple[IndexSpec, ...]
    shard_key: tuple[tuple[str, int | str], ...] | None = SHARD_KEY
    doc: str = ""
    zones: bool = True


_BY_OID_TIME = IndexSpec((("oid", 1), ("mjd", 1)))

COLLECTIONS: tuple[CollectionSpec, ...] = (
    CollectionSpec(OBJECTS, (
        IndexSpec(SHARD_KEY),
        IndexSpec((("oid", 1),)),  # the default order of the object listing
        IndexSpec((("survey", 1), ("oid", 1))),
        IndexSpec((("ndet", 1),)),
        IndexSpec((("firstmjd", 1),)),
        IndexSpec((("lastmjd", 1),)),
        IndexSpec((("anomaly.score", -1),)),  # objects(orderBy: ANOMALY)
    ), doc="one document per object: statistics and embedded per-band magstats, the latest "
           "anomaly score (anomaly: score, raw, model_version, mjd); _id = oid"),
    CollectionSpec(DETECTIONS, (IndexSpec(SHARD_KEY), _BY_OID_TIME),
                   doc="detections (alert candidates and prv_candidates); _id = candid"),
    CollectionSpec(NON_DETECTIONS, (IndexSpec(SHARD_KEY), _BY_OID_TIME),
                   doc="upper limits from prv_candidates; _id = oid_fid_mjd"),
    CollectionSpec(FORCED_PHOTOMETRY, (IndexSpec(SHARD_KEY), _BY_OID_TIME),
                   doc="forced photometry (fp_hists), flagged forced=true; _id = oid_pid"),
    CollectionSpec(LIGHT_CURVE_INDEX, (IndexSpec(SHARD_KEY),),
                   doc="what is stored of the light curve of each object whose alert packets "
                       "repeat their history (LSST): detections [id, mjd, has_stamp, "
                       "parent_candid, withdrawn, timeWithdrawnMjdTai], upper limits [id, "
                       "mjd] and forced-photometry ids, so ingestion reads back only what a "
                       "packet does not repeat; _id = oid"),
    CollectionSpec(PROBABILITIES, (
        IndexSpec(SHARD_KEY),
        IndexSpec((("oid", 1), ("classifier_name", 1))),
        IndexSpec((("classifier_name", 1), ("class_name", 1), ("ranking", 1),
                   ("probability", -1))),
    ), doc="classifier outputs, one row per object, classifier and class (ALeRCE's "
           "probability table); _id = oid:classifier_name:class_name"),
    CollectionSpec(FEATURES, (IndexSpec(SHARD_KEY),),
                   doc="light-curve features of each classified object (ALeRCE names, "
                       "null where undefined); _id = oid"),
    CollectionSpec(ANOMALY, (IndexSpec(SHARD_KEY), _BY_OID_TIME),
                   doc="anomaly scores, one per object, model version and light-curve length "
                       "(its history): score, raw, branches, top_features, mjd of the last "
                       "detection scored, ndet; _id = oid:model_version:mjd"),
    CollectionSpec(COUNTERPARTS, (IndexSpec(SHARD_KEY), IndexSpec((("oid", 1),))),
                   doc="cross-survey links: an object of one survey and one of another within "
                       "1.5 arcsec, one document per direction (oid, survey, other_oid, "
                       "other_survey, separation_arcsec); _id = oid|other_oid"),
    CollectionSpec(SOLAR_SYSTEM_OBJECTS, (
        IndexSpec((("designation_keys", 1),)),
    ), shard_key=(("_id", "hashed"),), zones=False,
        doc="solar-system objects seen by LSST: designation, the latest ssSource geometry "
            "and mpc_orbits orbit, first and last detection; _id = ssObjectId"),
    CollectionSpec(SOLAR_SYSTEM_DETECTIONS, (
        IndexSpec((("designation_keys", 1),)),
        IndexSpec((("ssObjectId", 1), ("mjd", 1))),
    ), shard_key=(("_id", "hashed"),), zones=False,
        doc="detections of known solar-system objects, of both surveys (LSST ssSources, ZTF "
            "candidates with ssnamenr), linked by designation_keys; _id = the detection's "
            "key"),
    CollectionSpec(DEAD_LETTERS, (
        IndexSpec((("reason", 1),)),
        IndexSpec((("first_seen", 1),)),
    ), shard_key=(("_id", "hashed"),), zones=False,
        doc="rejected inputs with raw bytes, source and reason; _id = sha256 of the bytes"),
    CollectionSpec(LABELS, (
        IndexSpec((("oid", 1), ("created", 1))),
        IndexSpec((("label", 1),)),
    ), shard_key=(("oid", "hashed"),), zones=False,
        doc="user labels (addLabel): oid, candid, label, comment, user, created; kept "
            "apart from the classifiers' output; _id = ObjectId"),
    CollectionSpec(TNS_REPORTS, (IndexSpec((("oid", 1), ("sent", 1))),),
                   shard_key=(("oid", "hashed"),), zones=False,
                   doc="AT reports sent to TNS: oid, the report as sent, its digest, who "
                       "sent it and when, the target API, status (SUBMITTED, ACCEPTED, "
                       "REJECTED), TNS's objname and messages; _id = TNS's report id"),
    CollectionSpec(ANOMALY_LABELS, (IndexSpec((("user", 1), ("created", 1))),
                                    IndexSpec((("oid", 1),))),
                   shard_key=(("user", "hashed"),), zones=False,
                   doc="users' anomaly labels (labelAnomaly: ANOMALY, NOT_ANOMALY, ARTEFACT) "
                       "with who, when, the model version and the object's feature, "
                       "probability and P(bogus) snapshot; the latest per user and object; "
                       "_id = user|oid"),
    CollectionSpec(ANOMALY_USERS, (), shard_key=(("_id", "hashed"),), zones=False,
                   doc="each user's anomaly model: leaf weights over the shared forests "
                       "(sparse, class -> leaf -> weight), fitted from their labels; "
                       "_id = user"),
    CollectionSpec(LIVE_EVENTS, (IndexSpec((("time", 1),)),), shard_key=None, zones=False,
                   doc="the live feed read by the gateway's subscriptions: one document per "
                       "stored batch, _id = sequence number, pruned after a retention time"),
    CollectionSpec(COUNTERS, (), shard_key=None, zones=False,
                   doc="sequence counters (live_events); _id = counter name"),
    CollectionSpec(CLASSIFICATION_EVENTS, (IndexSpec((("oid", 1), ("mjd", 1))),),
                   shard_key=(("oid", "hashed"),), zones=False,
                   doc="each (re)classification of an object: the classifiers that ran, their "
                       "versions and probabilities, the anomaly score and forecast surprise, "
                       "and the latest detection (mjd, candid) they saw; what filters of the "
                       "classification stage read, live and in backfills; _id = oid:mjd"),
    CollectionSpec(FILTERS, (IndexSpec((("owner", 1), ("name", 1)), unique=True),
                             IndexSpec((("state", 1),))),
                   shard_key=(("_id", "hashed"),), zones=False,
                   doc="users' filters: owner, name, the CEL expression and its versions, "
                       "stage, notify mode, state (active, paused, muted) with the reason, "
                       "sharing, delivery, quotas, expiry and counters; _id = filter id"),
    CollectionSpec(FILTER_MATCHES, (IndexSpec((("filter_id", 1), ("seq", 1))),
                                    IndexSpec((("filter_id", 1), ("oid", 1)))),
                   shard_key=(("filter_id", "hashed"),), zones=False,
                   doc="one document per filter version and alert it matched: object, alert, "
                       "survey, what the filter read, live or backfill, when; _id = "
                       "filter_id:version:alert id"),
    CollectionSpec(WATCHLISTS, (IndexSpec((("owner", 1), ("name", 1)), unique=True),),
                   shard_key=(("_id", "hashed"),), zones=False,
                   doc="users' watchlists: owner, name, sharing, default radius, row count, "
                       "loading state and progress, retroactive matching; _id = list id"),
    CollectionSpec(WATCHLIST_ROWS, (IndexSpec((("list_id", 1), ("first", 1))),),
                   shard_key=(("list_id", "hashed"),), zones=False,
                   doc="a watchlist's rows in chunks of 10,000: ids, names, ra, dec [deg] and "
                       "radius [arcsec] as little-endian arrays; _id = list_id:first row id"),
    CollectionSpec(WATCHLIST_MATCHES, (IndexSpec((("list_id", 1), ("oid", 1))),),
                   shard_key=(("list_id", "hashed"),), zones=False,
                   doc="detections within a watchlist row's radius: row, object, alert, "
                       "separation, live or retroactive; _id = list_id:row id:alert id"),
    CollectionSpec(WATCHMAPS, (IndexSpec((("owner", 1), ("name", 1)), unique=True),),
                   shard_key=(("_id", "hashed"),), zones=False,
                   doc="users' watchmaps (MOCs, sky maps): order-29 ranges with credible "
                       "levels, event name and time, time window; _id = map id"),
)


def _js_key(key: tuple[tuple[str, object], ...]) -> str:
    return "{" + ", ".join(f"{k}: {v!r}".replace("'", '"') for k, v in key) + "}"


def shard_script(database: str, shards: list[str], zone_order: int = 1) -> str:
    """mongosh script sharding every collection and pinning sky zones to shards.

    The sky is cut into the ``12 * 4**zone_order`` HEALPix pixels of ``zone_order``;
    each is one contiguous ``hpx`` range (nested scheme), assigned round-robin in
    blocks of neighbouring pixels so each shard holds compact sky regions.

    Parameters
    ----------
    database : str
        Database name.
    shards : list of str
        Shard names as listed by ``sh.status()``.
    zone_order : int
        HEALPix order of the zones (0 to 29).
    """
    if not shards:
        raise ValueError("at least one shard name is needed")
    npix = 12 * 4**zone_order
    shift = 2 * (HPX_ORDER - zone_order)
    lines = [
        "// Generated by `nightjar db shard-script`: run with mongosh against a mongos.",
        f'sh.enableSharding("{database}");',
    ]
    for spec in COLLECTIONS:
        if spec.shard_key:
            lines.append(f'sh.shardCollection("{database}.{spec.name}", '
                         f"{_js_key(spec.shard_key)});")
    lines += [f'sh.addShardToZone("{shard}", "sky-{i}");' for i, shard in enumerate(shards)]
    per_shard = -(-npix // len(shards))
    for spec in COLLECTIONS:
        if not (spec.shard_key and spec.zones):
            continue
        for i in range(len(shards)):
            lo_pix, hi_pix = i * per_shard, min((i + 1) * per_shard, npix)
            if lo_pix >= hi_pix:
                continue
            lo = f"{{hpx: NumberLong(\"{lo_pix << shift}\"), oid: MinKey}}"
            hi = (f"{{hpx: NumberLong(\"{hi_pix << shift}\"), oid: MinKey}}" if hi_pix < npix
                  else "{hpx: MaxKey, oid: MaxKey}")
            lines.append(f'sh.updateZoneKeyRange("{database}.{spec.name}", {lo}, {hi}, '
                         f'"sky-{i}");')
    return "\n".join(lines) + "\n"
