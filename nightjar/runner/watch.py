"""Watchlists and watchmaps on the stream and over the archive.

* :class:`WatchService` creates watchlists (CSV or VOTable, rows validated, stored in
  chunks with progress), adds and removes rows, creates watchmaps (MOCs and multi-order
  sky maps), and matches a list retroactively over the archive when it is created or
  grows; ownership is checked here.
* :class:`WatchIndexes` holds every watchlist and watchmap in memory, reloaded when any
  changes: the pipeline matches each stored alert's detection against every list (a
  watchlist match), and filters ask it for ``in_watchlist`` and ``in_watchmap``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nightjar.core.watch import (
    DEFAULT_RADIUS_ARCSEC,
    SkyRegion,
    WatchlistIndex,
    WatchRows,
    hpx29,
    read_skymap,
    read_watchlist,
    region_from_moc_ranges,
)
from nightjar.settings import Settings
from nightjar.sky import ANCHOR_MARGIN_ARCSEC
from nightjar.store.mongo import NightjarStore
from nightjar.store.schema import DETECTIONS, OBJECTS
from nightjar.store.watch import WatchStore, region_of

if TYPE_CHECKING:
    from nightjar.runner.ingest import BatchResult

log = logging.getLogger(__name__)

Doc = dict[str, Any]
OPERATOR = "operator"


class WatchAccessError(PermissionError):
    """The caller may not read or change this watchlist or watchmap."""


@dataclass
class LoadedList:
    doc: Doc
    ids: np.ndarray
    index: WatchlistIndex


@dataclass
class LoadedMap:
    doc: Doc
    region: SkyRegion

    def level(self, hpx: int, mjd: float) -> float | None:
        window = self.doc.get("window") or {}
        since, until = window.get("since"), window.get("until")
        if (since is not None and mjd < since) or (until is not None and mjd > until):
            return None
        return self.region.level_at(hpx)


def _visible(docs: Iterable[Doc], owner: str) -> dict[str, str]:
    """name -> id of what an owner may use: their own by name, others' public ones as
    "owner/name" (every one as "owner/name" for the operator)."""
    out: dict[str, str] = {}
    for doc in docs:
        if doc["owner"] == owner:
            out[doc["name"]] = doc["_id"]
        if doc["owner"] != owner and (doc.get("public") or owner == OPERATOR):
            out[f"{doc['owner']}/{doc['name']}"] = doc["_id"]
    return out


class WatchIndexes:
    """Every watchlist and watchmap in memory (the filters' and the pipeline's look-up).

    Parameters
    ----------
    watch : WatchStore
    refresh_s : float
        How often the store is asked whether anything changed [s].
    """

    def __init__(self, watch: WatchStore, refresh_s: float = 2.0):
        self.watch = watch
        self.refresh_s = refresh_s
        self.lists: dict[str, LoadedList] = {}
        self.maps: dict[str, LoadedMap] = {}
        self._version: Any = object()
        self._checked = -1e9
        #: the last batch's positions -> the lists they fell in, and the lists asked
        self._batch_hits: dict[tuple[float, float], frozenset[str]] = {}
        self._batch_lists: frozenset[str] = frozenset()

    async def refresh(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._checked < self.refresh_s:
            return
        self._checked = time.monotonic()
        version = await self.watch.lists_version()
        if version == self._version and not force:
            return
        self._version = version
        lists: dict[str, LoadedList] = {}
        for doc in await self.watch.lists():
            if doc.get("state") != "ready":
                continue
            old = self.lists.get(doc["_id"])
            if old is not None and old.doc.get("revision") == doc.get("revision"):
                lists[doc["_id"]] = LoadedList(doc, old.ids, old.index)
                continue
            ids, rows = await self.watch.rows(doc["_id"])
            lists[doc["_id"]] = LoadedList(doc, ids, WatchlistIndex(rows))
        self.lists = lists
        self._batch_hits, self._batch_lists = {}, frozenset()  # of the lists as they were
        self.maps = {doc["_id"]: LoadedMap(doc, region_of(doc))
                     for doc in await self.watch.maps(with_region=True)}

    def names_for(self, owner: str) -> tuple[dict[str, str], dict[str, str]]:
        """(watchlists, watchmaps) an owner's filters may name: name -> id."""
        return (_visible((w.doc for w in self.lists.values()), owner),
                _visible((m.doc for m in self.maps.values()), owner))

    # -- the filters' look-up ----------------------------------------------------------
    def watchlists_at(self, ra: float, dec: float, names: Iterable[str]) -> frozenset[str]:
        out = set()
        for list_id in names:
            loaded = self.lists.get(list_id)
            if loaded is None:
                continue
            known = self._batch_hits.get((ra, dec))  # matched with the batch already
            if known is not None and list_id in self._batch_lists:
                if list_id in known:
                    out.add(list_id)
            elif loaded.index.matches(ra, dec):
                out.add(list_id)
        return frozenset(out)

    def prime(self, positions: Sequence[tuple[float, float]], list_ids: Iterable[str]
              ) -> None:
        """Match these positions [deg] against these lists at once (a backfill's chunk of
        objects), so that :meth:`watchlists_at` answers them without a look-up each."""
        wanted = sorted({i for i in list_ids if i in self.lists})
        if not wanted or not positions:
            return
        ra = np.array([float(p[0]) for p in positions])
        dec = np.array([float(p[1]) for p in positions])
        self._remember(ra, dec, [(i, self.lists[i].index.matches_many(ra, dec)[0])
                                 for i in wanted])

    def _remember(self, ra: np.ndarray, dec: np.ndarray,
                  found: Sequence[tuple[str, np.ndarray]]) -> None:
        """Keep which of these positions [deg] fell in which of the lists looked up
        (``found``: each list's indices of the positions it holds), for
        :meth:`watchlists_at` on the same batch."""
        hits: dict[tuple[float, float], set[str]] = {
            (float(r), float(d)): set() for r, d in zip(ra.tolist(), dec.tolist(), strict=True)}
        for list_id, positions in found:
            for i in set(positions.tolist()):
                hits[(float(ra[i]), float(dec[i]))].add(list_id)
        self._batch_hits = {k: frozenset(v) for k, v in hits.items()}
        self._batch_lists = frozenset(list_id for list_id, _ in found)

    def watchmaps_at(self, ra: float, dec: float, mjd: float,
                     names: Iterable[str]) -> dict[str, float]:
        wanted = [self.maps[n] for n in names if n in self.maps]
        if not wanted:
            return {}
        pixel = int(hpx29(ra, dec))
        out: dict[str, float] = {}
        for loaded in wanted:
            level = loaded.level(pixel, mjd)
            if level is not None:
                out[loaded.doc["_id"]] = level
        return out

    # -- the pipeline's watchlist matches ----------------------------------------------
    def match_detections(self, alerts: Sequence[tuple[str, str, Doc]], *,
                         source: str = "live") -> list[Doc]:
        """Watchlist matches of (oid, survey, detection) against every list, the whole
        batch at once; remembers which positions fell in which lists, so the filters'
        ``in_watchlist`` on this batch needs no second look-up."""
        ra = np.array([float(d["ra"]) for _, _, d in alerts])
        dec = np.array([float(d["dec"]) for _, _, d in alerts])
        out = []
        found: list[tuple[str, np.ndarray]] = []
        for loaded in self.lists.values():
            positions, rows, seps = loaded.index.matches_many(ra, dec)
            for i, row, sep in zip(positions.tolist(), rows.tolist(), seps.tolist(),
                                   strict=True):
                oid, survey, detection = alerts[i]
                out.append(watch_match(loaded, row, sep, oid, survey, detection, source))
            found.append((loaded.doc["_id"], positions))
        self._remember(ra, dec, found)
        return out

    async def on_batch(self, result: BatchResult) -> list[Doc]:
        """Match every stored alert of a batch against every watchlist; store the
        matches; return the new ones."""
        await self.refresh()
        self._batch_hits, self._batch_lists = {}, frozenset()
        if not self.lists:
            return []
        alerts = [(alert.oid, alert.survey, result.detections[alert.key])
                  for alert in result.alerts if alert.key in result.detections]
        return await self.watch.put_matches(self.match_detections(alerts))


def watch_match(loaded: LoadedList, row: int, sep: float, oid: str, survey: str,
                detection: Doc, source: str) -> Doc:
    row_id = int(loaded.ids[row])
    alert_id = str(detection["candid"])
    return {"_id": f"{loaded.doc['_id']}:{row_id}:{alert_id}", "list_id": loaded.doc["_id"],
            "list_name": loaded.doc["name"], "owner": loaded.doc["owner"], "row_id": row_id,
            "row_name": loaded.index.rows.names[row],
            "row_ra": float(loaded.index.ra[row]), "row_dec": float(loaded.index.dec[row]),
            "radius_arcsec": float(loaded.index.radius[row]), "oid": oid, "survey": survey,
            "alert_id": alert_id, "mjd": float(detection["mjd"]),
            "ra": float(detection["ra"]), "dec": float(detection["dec"]),
            "separation_arcsec": sep, "source": source}


@dataclass
class Progress:
    """Where a watchlist upload or retroactive match stands."""

    stage: str
    done: int = 0
    total: int = 0
    matches: int = 0
    seconds: float = 0.0
    extra: Doc = field(default_factory=dict)


class WatchService:
    """Watchlists and watchmaps for the CLI and the gateway.

    Parameters
    ----------
    watch : WatchStore
    indexes : WatchIndexes
        Refreshed after each change, so filters can name a new list at once.
    """

    def __init__(self, watch: WatchStore, indexes: WatchIndexes):
        self.watch = watch
        self.indexes = indexes
        self._tasks: set[asyncio.Task[None]] = set()

    async def _get(self, actor: str, ref: str, *, edit: bool) -> Doc:
        doc = await self.watch.get_list(ref) or await self.watch.list_by_name(actor, ref)
        if doc is None and actor == OPERATOR:
            named = [d for d in await self.watch.lists() if d["name"] == ref]
            doc = named[0] if len(named) == 1 else None
        if doc is None and "/" in ref:
            owner, name = ref.split("/", 1)
            doc = await self.watch.list_by_name(owner, name)
        ok = doc is not None and (actor in (OPERATOR, doc["owner"]) or (
            not edit and doc.get("public")))
        if not ok or doc is None:
            raise WatchAccessError(f"no watchlist {ref!r} that you may "
                                   f"{'change' if edit else 'read'}")
        return doc

    async def lists(self, actor: str) -> list[Doc]:
        return await (self.watch.lists() if actor == OPERATOR else
                      self.watch.lists(actor, public=True))

    async def create_list(self, actor: str, name: str, data: bytes, *,
                          radius_arcsec: float = DEFAULT_RADIUS_ARCSEC, public: bool = False,
                          retroactive: bool = True, background: bool = False,
                          progress: Callable[[Progress], None] | None = None) -> Doc:
        """Read, validate and store a watchlist, then (by default) match it over the
        archive; a row with a radius over 1 deg refuses the whole file, with its row.

        With ``background``, the rows are validated, the list is created (state
        ``loading``) and returned at once; storing the rows and the retroactive match go
        on in a task, with progress on the list's document.
        """
        if not name or len(name) > 100 or "/" in name:
            raise ValueError("a watchlist name has 1 to 100 characters and no '/'")
        rows = read_watchlist(data, default_radius=radius_arcsec)
        now = dt.datetime.now(dt.UTC)
        doc: Doc = {"_id": "w" + secrets.token_hex(8), "owner": actor, "name": name,
                    "public": public, "default_radius_arcsec": radius_arcsec,
                    "rows": 0, "next_row": 0, "state": "loading", "revision": 0,
                    "progress": {"done": 0, "total": len(rows)}, "created": now,
                    "updated": now}
        await self.watch.create_list(doc)
        if background:
            task = asyncio.create_task(self._load_logged(doc, rows, retroactive),
                                       name=f"watchlist-{doc['_id']}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return doc
        return await self._load(doc, rows, retroactive=retroactive, progress=progress)

    async def _load_logged(self, doc: Doc, rows: WatchRows, retroactive: bool) -> None:
        try:
            await self._load(doc, rows, retroactive=retroactive, progress=None)
        except Exception as exc:  # recorded on the list for its owner, not lost in a task
            log.exception("watchlist %s failed to load", doc["_id"])
            await self.watch.set_list(doc["_id"], {"state": "failed",
                                                   "error": f"{type(exc).__name__}: {exc}"})

    async def add_rows(self, actor: str, ref: str, data: bytes, *, retroactive: bool = True,
                       progress: Callable[[Progress], None] | None = None) -> Doc:
        doc = await self._get(actor, ref, edit=True)
        rows = read_watchlist(data, default_radius=float(doc["default_radius_arcsec"]))
        await self.watch.set_list(doc["_id"], {"state": "loading",
                                               "progress": {"done": 0, "total": len(rows)}})
        return await self._load(doc, rows, retroactive=retroactive, progress=progress)

    async def _load(self, doc: Doc, rows: WatchRows, *, retroactive: bool,
                    progress: Callable[[Progress], None] | None) -> Doc:
        start = time.perf_counter()
        first = int(doc.get("next_row", 0))
        step = 100_000
        for i in range(0, len(rows), step):
            part = WatchRows(rows.names[i:i + step], rows.ra[i:i + step],
                             rows.dec[i:i + step], rows.radius[i:i + step])
            await self.watch.add_rows(doc["_id"], first + i, part)
            done = min(i + step, len(rows))
            await self.watch.set_list(doc["_id"], {"progress": {"done": done,
                                                                "total": len(rows)}})
            if progress:
                progress(Progress("rows", done, len(rows),
                                  seconds=time.perf_counter() - start))
        updated = await self.watch.set_list(
            doc["_id"], {"state": "ready", "next_row": first + len(rows),
                         "updated": dt.datetime.now(dt.UTC)},
            inc={"rows": len(rows), "revision": 1})
        assert updated is not None
        await self.watch.bump_version()
        await self.indexes.refresh(force=True)
        if retroactive:
            new_ids = set(range(first, first + len(rows)))
            await self.retroactive(updated, row_ids=new_ids, progress=progress)
        final = await self.watch.get_list(doc["_id"])
        assert final is not None
        return final

    async def remove_rows(self, actor: str, ref: str, names: Sequence[str] = (),
                          ids: Sequence[int] = ()) -> int:
        doc = await self._get(actor, ref, edit=True)
        removed = await self.watch.remove_rows(doc["_id"], names, ids)
        if removed:
            await self.watch.set_list(doc["_id"], {"updated": dt.datetime.now(dt.UTC)},
                                      inc={"rows": -removed, "revision": 1})
            await self.watch.bump_version()
            await self.indexes.refresh(force=True)
        return removed

    async def delete_list(self, actor: str, ref: str) -> None:
        doc = await self._get(actor, ref, edit=True)
        await self.watch.delete_list(doc["_id"])
        await self.watch.bump_version()
        await self.indexes.refresh(force=True)

    async def rows_of(self, actor: str, ref: str) -> tuple[np.ndarray, WatchRows]:
        """(row ids, rows) of a watchlist the actor may read."""
        doc = await self._get(actor, ref, edit=False)
        return await self.watch.rows(doc["_id"])

    async def matches(self, actor: str, ref: str, *, first: int = 1000,
                      after: str | None = None) -> tuple[Doc, list[Doc]]:
        doc = await self._get(actor, ref, edit=False)
        return doc, await self.watch.matches(doc["_id"], first=first, after=after)

    async def retroactive(self, doc: Doc, *, row_ids: set[int] | None = None,
                          progress: Callable[[Progress], None] | None = None) -> int:
        """Match a list's rows (all, or ``row_ids``) over every stored alert: objects
        whose mean position lies within a row's radius plus a margin are read, and each
        of their alert detections is matched exactly, as live.  Returns new matches."""
        start = time.perf_counter()
        loaded = self.indexes.lists.get(doc["_id"])
        if loaded is None:
            return 0
        store = self.watch.store
        total = await store.count(OBJECTS)
        seen = 0
        new = 0
        after: str | None = None
        while True:
            query: Doc = {} if after is None else {"_id": {"$gt": after}}
            page = await store.db[OBJECTS].find(
                query, {"_id": 1, "meanra": 1, "meandec": 1, "survey": 1}).sort(
                "_id", 1).limit(5000).to_list(None)
            if not page:
                break
            after = page[-1]["_id"]
            seen += len(page)
            hits, _, _ = loaded.index.matches_many(
                [float(d["meanra"]) for d in page], [float(d["meandec"]) for d in page],
                margin_arcsec=ANCHOR_MARGIN_ARCSEC)
            near = [page[i] for i in sorted(set(hits.tolist()))]
            if near:
                curves = await store.light_curves(DETECTIONS, [d["_id"] for d in near])
                found: list[Doc] = []
                for obj in near:
                    for det in curves.get(obj["_id"], []):
                        if det.get("parent_candid") is not None:
                            continue  # an alert's own detection only, as live
                        for row, sep in loaded.index.matches(float(det["ra"]),
                                                             float(det["dec"])):
                            if row_ids is None or int(loaded.ids[row]) in row_ids:
                                found.append(watch_match(loaded, row, sep, obj["_id"],
                                                         str(obj.get("survey", "ZTF")), det,
                                                         "retroactive"))
                new += len(await self.watch.put_matches(found))
            await self.watch.set_list(doc["_id"], {"retroactive": {
                "objects": seen, "total": total, "matches": new, "done": False}})
            if progress:
                progress(Progress("archive", seen, total, new, time.perf_counter() - start))
        await self.watch.set_list(doc["_id"], {"retroactive": {
            "objects": seen, "total": total, "matches": new, "done": True}})
        return new

    # -- watchmaps -------------------------------------------------------------------
    async def maps(self, actor: str) -> list[Doc]:
        return await (self.watch.maps() if actor == OPERATOR else
                      self.watch.maps(actor, public=True))

    async def create_map(self, actor: str, name: str, data: bytes, *,
                         since: float | None = None, until: float | None = None,
                         window_days: float | None = None, public: bool = False) -> Doc:
        """A watchmap from a MOC (FITS) or a multi-order sky map (FITS with UNIQ and
        PROBDENSITY).  A sky map's time window starts at its event (``MJD-OBS``) and lasts
        ``window_days`` (default 30 days) unless ``since``/``until`` [MJD] are given."""
        if not name or len(name) > 100 or "/" in name:
            raise ValueError("a watchmap name has 1 to 100 characters and no '/'")
        region, meta, kind = read_watchmap(data)
        event_mjd = meta.get("mjd")
        if since is None and event_mjd is not None:
            since = float(event_mjd)
        if until is None and since is not None and (window_days or kind == "skymap"):
            until = since + float(window_days if window_days is not None else 30.0)
        now = dt.datetime.now(dt.UTC)
        doc: Doc = {"_id": "m" + secrets.token_hex(8), "owner": actor, "name": name,
                    "kind": kind, "public": public, "event": meta,
                    "window": {"since": since, "until": until}, "pixels": len(region.starts),
                    "area_deg2": region.area_deg2,
                    "area90_deg2": region.within(0.9).area_deg2 if kind == "skymap" else None,
                    "created": now}
        await self.watch.create_map(doc, region)
        await self.watch.bump_version()
        await self.indexes.refresh(force=True)
        return doc


def read_watchmap(data: bytes) -> tuple[SkyRegion, Doc, str]:
    """(region, event metadata, "moc" or "skymap") of a watchmap file."""
    import io

    from astropy.io import fits
    from mocpy import MOC

    try:
        hdul = fits.open(io.BytesIO(data))
    except Exception as exc:  # astropy raises OSError and others on a non-FITS file
        raise ValueError(f"not a FITS file: {exc}") from None
    with hdul:
        columns = [c.upper() for hdu in hdul[1:] if hasattr(hdu, "columns")
                   for c in hdu.columns.names]
        if "PROBDENSITY" in columns:
            region, meta = read_skymap(hdul)
            return region, meta, "skymap"
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".fits") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            moc = MOC.from_fits(tmp.name)
        except Exception as exc:  # mocpy's errors name what is wrong with the file
            raise ValueError(f"neither a MOC nor a multi-order sky map: {exc}") from None
    return region_from_moc_ranges(moc.to_depth29_ranges), {}, "moc"


async def configured_watch(settings: Settings, store: NightjarStore) -> WatchIndexes:
    """The deployment's watchlists and watchmaps, loaded."""
    indexes = WatchIndexes(WatchStore(store))
    await indexes.refresh(force=True)
    return indexes
