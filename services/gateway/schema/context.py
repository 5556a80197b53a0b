"""What every part of the schema shares: the request context, DataLoaders, scalars and
the common inputs (cones, ranges, surveys).

Resolvers are thin: they translate arguments, call :class:`NightjarStore` (through the
request's DataLoaders, so a page of objects costs one read per list field, not one per
object), the gRPC services or the live hub (all injected through the request context)
and map the answers onto types.  Field names are ALeRCE's in camelCase (``magpsfCorr``,
``sigmapsfCorrExt``, ``magmeanCorr``...).  64-bit ids (ZTF ``candid``, ``pid``,
``rfid``, LSST ``diaSourceId``) exceed GraphQL's 32-bit ``Int`` and JavaScript's 2**53,
so they travel as the ``BigInt`` scalar, serialised as a decimal string.  Arguments are
lenient: a null or absent filter, order, page size or field means its default, never an
error.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NewType

import grpc
import strawberry
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from ml.registry import ModelRegistry
from nightjar.context.tns_report import TnsReporter
from nightjar.runner.filters import FilterService
from nightjar.runner.watch import WatchService
from nightjar.sky import Cone
from nightjar.store.mongo import NightjarStore
from nightjar.store.schema import DETECTIONS, FORCED_PHOTOMETRY, NON_DETECTIONS
from services.gateway.counts import CountCache
from services.gateway.errors import BAD_USER_INPUT, UNAVAILABLE, GatewayError
from services.gateway.limits import GatewayLimits
from services.gateway.live import LiveHub


def _big_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("a BigInt is an integer or a string of decimal digits")
    try:
        return int(value)
    except ValueError:
        raise ValueError("a BigInt is an integer or a string of decimal digits") from None


BigInt = strawberry.scalar(
    NewType("BigInt", int),
    serialize=lambda v: str(v),
    parse_value=lambda v: _big_int(v),
    description="64-bit integer (ZTF candid, pid, rfid), serialised as a decimal string",
)



@strawberry.enum(description="The survey an object, detection or event comes from")
class Survey(Enum):
    ZTF = "ZTF"
    LSST = "LSST"


def survey_of(doc: Mapping[str, Any]) -> Survey:
    """The survey of a stored document (ZTF for documents stored before surveys were)."""
    return Survey(doc.get("survey") or "ZTF")


class Loaders:
    """Per-request DataLoaders: one store read per list field for all objects of a page."""

    def __init__(self, store: NightjarStore):
        def grouped(read: Any) -> DataLoader[str, Any]:
            async def load(oids: list[str]) -> list[Any]:
                found = await read(oids)
                return [found.get(oid) for oid in oids]
            return DataLoader(load_fn=load)

        self.detections = grouped(lambda oids: store.light_curves(DETECTIONS, oids))
        self.non_detections = grouped(lambda oids: store.light_curves(NON_DETECTIONS, oids))
        self.forced_photometry = grouped(
            lambda oids: store.light_curves(FORCED_PHOTOMETRY, oids))
        self.probabilities = grouped(store.probabilities_of)
        self.features = grouped(store.features_of)
        self.anomaly = grouped(store.anomaly_history)
        self.labels = grouped(store.labels_of)
        self.objects = grouped(store.objects_by_id)
        self.counterparts = grouped(store.counterparts_of)




@dataclass
class GatewayContext:
    """What resolvers reach: the store, the gRPC channel, the live hub, the caller."""

    store: NightjarStore
    #: channel to Nightjar's gRPC services (catalogues, TNS, stamps); None = not configured
    grpc_channel: grpc.aio.Channel | None = None
    hub: LiveHub | None = None
    registry: ModelRegistry | None = None
    limits: GatewayLimits = field(default_factory=GatewayLimits)
    #: the API key's owner, None for an anonymous caller
    user: str | None = None
    #: users whose ARTEFACT labels make the shared anomaly score treat an object as bogus
    artefact_votes: int = 2
    #: users' filters, watchlists and watchmaps (None: this gateway serves none)
    filters: FilterService | None = None
    watch: WatchService | None = None
    #: sends AT reports to TNS (None: this gateway cannot)
    tns: TnsReporter | None = None
    #: API key owners who may send TNS reports (empty: every key holder)
    tns_reporters: frozenset[str] = frozenset()
    #: counts reused for a few seconds across this process's requests (default: none)
    counts: CountCache = field(default_factory=lambda: CountCache(ttl_s=0.0))
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.store)


GatewayInfo = Info[GatewayContext, None]


def iso_utc(when: Any) -> str:
    """A stored time as ISO 8601 UTC with a Z (text stored as text)."""
    if isinstance(when, dt.datetime):
        when = when.replace(tzinfo=when.tzinfo or dt.UTC).astimezone(dt.UTC)
        return when.isoformat().replace("+00:00", "Z")
    return str(when)


def channel_of(info: GatewayInfo) -> grpc.aio.Channel:
    channel = info.context.grpc_channel
    if channel is None:
        raise GatewayError(UNAVAILABLE, "this gateway has no gRPC services configured "
                                        "(run `nightjar serve`, or set NIGHTJAR_GRPC_TARGET)")
    return channel


def pick(cls: type, doc: Mapping[str, Any], **extra: Any) -> Any:
    """Build a strawberry type from a document: its declared fields, missing ones null."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return cls(**{n: doc.get(n) for n in names if n not in extra}, **extra)


def cone_of(cone: ConeInput | None) -> Cone | None:
    if cone is None or cone.ra is None or cone.dec is None or cone.radius is None:
        return None
    try:
        return Cone(cone.ra, cone.dec, cone.radius)
    except ValueError as exc:
        raise GatewayError(BAD_USER_INPUT, str(exc)) from exc



@strawberry.input(description="A cone: centre in degrees, radius in arcseconds")
class ConeInput:
    ra: float
    dec: float
    radius: float


@strawberry.input(description="An inclusive range; a null bound is open")
class IntRange:
    min: int | None = None
    max: int | None = None


@strawberry.input(description="An inclusive range; a null bound is open")
class FloatRange:
    min: float | None = None
    max: float | None = None

