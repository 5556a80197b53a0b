"""The TOM Toolkit module (``tom_nightjar``) end to end: a real Django TOM (SQLite) in its
own virtual environment (the TOM Toolkit pins versions the broker's own environment
cannot share), against a live gateway serving simulated ZTF and LSST alerts.

What the TOM should see is read from the store here, independently of the module and of
the client it uses; the TOM's side drives the toolkit's own views
(``tom_nightjar/example_tom/checks``) and the streaming command.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from nightjar.surveys.lsst.simulate import LsstSimulator
from nightjar.surveys.ztf.simulate import AlertSimulator
from services.gateway.app import GatewayConfig
from services.gateway.live import StoreFeed
from tests.conftest import ROOT, as_inputs
from tests.gateway_env import API_KEY, API_USER, live_gateway
from tests.test_filters import Deployment, deployment
from tests.test_gateway_live import subscribed
from tests.test_watch import _lsst_at

TOM = ROOT / "tom_nightjar"
#: LSST objects placed around a cone of 1 deg (the last two just outside it)
CONE = (150.1, 2.2)
CLUSTER = [(150.0, 2.0), (150.6, 2.3), (150.1, 2.95), (151.15, 2.2), (150.1, 3.25)]
EXAMPLE = TOM / "example_tom"


def _uv() -> list[str]:
    """uv: the environment's own (a dev dependency), else the one on the PATH."""
    beside = Path(sys.executable).parent / "uv"
    return [str(beside)] if beside.exists() else [shutil.which("uv") or "uv"]


@pytest.fixture(scope="module")
def tom_python() -> Iterator[Path]:
    """The TOM's environment from its lock file (tomtoolkit, the client, this module)."""
    done = subprocess.run([*_uv(), "sync", "--frozen", "--quiet", "--project", str(TOM)],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    yield TOM / ".venv" / "bin" / "python"


def _lsst_inputs(seed: int, n: int) -> list[Any]:
    from nightjar.runner.ingest import RawInput
    from nightjar.surveys.interface import AlertSource

    return [RawInput(raw, AlertSource("file", path=f"lsst-{seed}/{i}"))
            for i, (_, _, raw) in enumerate(LsstSimulator(seed=seed).packets(n))]


@pytest.fixture
async def served(mongo_uri: str, tmp_path: Path) -> AsyncIterator[tuple[str, Deployment]]:
    async with deployment(mongo_uri, tmp_path) as dep:
        await dep.ingest(as_inputs(list(AlertSimulator(seed=91).packets(240))), 120)
        await dep.ingest(_lsst_inputs(92, 160), 80)
        await dep.ingest(_lsst_at(95, CLUSTER), 80)
        async with live_gateway(dep, GatewayConfig(api_keys={API_KEY: API_USER},
                                                   rate_anonymous=1e6),
                                feed=StoreFeed(dep.store, poll_s=0.02),
                                filters=dep.service, watch=dep.watch) as (url, _):
            yield url, dep


async def _facts(dep: Deployment, filter_id: str) -> dict[str, Any]:
    """What the TOM should show, read from the store."""
    db = dep.store.db
    objects = {d["_id"]: d for d in await db.objects.find({}).to_list(None)}
    # ZTF objects whose top stamp class is SN at >= 0.5 (the client's default ranking 1)
    rows = await db.probabilities.find({"classifier_name": "stamp_classifier",
                                        "class_name": "SN", "ranking": 1,
                                        "probability": {"$gte": 0.5}}).to_list(None)
    sn = sorted({r["oid"] for r in rows if objects[r["oid"]].get("survey") == "ZTF"})
    assert sn, "no SN candidates among the simulated alerts: the query would prove nothing"
    # a cone of 1 deg amid the cluster, by astropy
    oids = list(objects)
    coords = SkyCoord([objects[o]["meanra"] for o in oids] * u.deg,
                      [objects[o]["meandec"] for o in oids] * u.deg)
    sep = coords.separation(SkyCoord(CONE[0] * u.deg, CONE[1] * u.deg)).arcsec
    inside = sorted(o for o, s in zip(oids, sep, strict=True) if s <= 3600.0)
    assert 2 < len(inside) < len(oids)
    # the ZTF object with the most detections: its light curve as the TOM should hold it
    ztf = max((o for o in objects.values() if o.get("survey") == "ZTF"),
              key=lambda o: (o["ndet"], o["_id"]))
    detections = await db.detections.find({"oid": ztf["_id"]}).to_list(None)
    limits = await db.non_detections.find({"oid": ztf["_id"]}).to_list(None)
    mags = [d["magpsf"] for d in detections if d.get("magpsf") is not None
            and np.isfinite(d["magpsf"])]
    bands = {d["band"] for d in detections} | {n["band"] for n in limits}
    _, matches = await dep.service.matches(API_USER, filter_id, first=100_000)
    assert 0 < len(matches) <= 100  # a TOM shows the first 100 results
    return {
        "class_query": {"survey": "ztf", "classifier": "stamp_classifier", "class_name": "SN",
                        "probability": 0.5, "oids": sn},
        "cone": {"ra": CONE[0], "dec": CONE[1], "radius": 3600.0,
                 "oids": inside},
        "object": {"oid": ztf["_id"], "survey": "ZTF", "ra": ztf["meanra"],
                   "dec": ztf["meandec"], "detections": len(
                       {(d["mjd"], d["band"], d["magpsf"]) for d in detections
                        if d.get("magpsf") is not None and np.isfinite(d["magpsf"])}),
                   "limits": len({(n["mjd"], n["band"]) for n in limits
                                  if n.get("diffmaglim") is not None}),
                   "bandpasses": sorted(f"ZTF {b}" for b in bands),
                   "brightest_mag": min(mags)},
        "filter": {"id": filter_id, "name": "bright-repeaters",
                   "matches": sorted([m["oid"], m["alert_id"]] for m in matches)},
    }


async def _photometry_points(dep: Deployment, oid: str) -> int:
    """The points a TOM holds of an object: detections with a magnitude, and upper limits
    (one per time and band)."""
    detections = await dep.store.db.detections.find({"oid": oid}).to_list(None)
    limits = await dep.store.db.non_detections.find({"oid": oid}).to_list(None)
    return (len({(d["mjd"], d["band"], d["magpsf"]) for d in detections
                 if d.get("magpsf") is not None and np.isfinite(d["magpsf"])})
            + len({(n["mjd"], n["band"]) for n in limits if n.get("diffmaglim") is not None}))


def _tom(tom_python: Path, home: Path, url: str, *args: str, facts: Path | None = None,
         timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NIGHTJAR_URL": url, "NIGHTJAR_API_KEY": API_KEY,
           "NIGHTJAR_TOM_HOME": str(home), "PYTHONPATH": str(EXAMPLE)}
    env.pop("VIRTUAL_ENV", None)
    if facts is not None:
        env["NIGHTJAR_TOM_FACTS"] = str(facts)
    return subprocess.run([str(tom_python), str(EXAMPLE / "manage.py"), *args], cwd=EXAMPLE,
                          env=env, capture_output=True, text=True, timeout=timeout)


async def test_queries_and_targets_in_a_real_tom(tom_python: Path, served: tuple[str, Deployment],
                                                  tmp_path: Path) -> None:
    url, dep = served
    made = await dep.service.create(API_USER, "bright-repeaters",
                                    "object.ndet >= 3 && alert.snr > 8.0",
                                    notify="first")
    await dep.service.backfill(API_USER, made["_id"])
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps(await _facts(dep, made["_id"])))
    home = tmp_path / "tom"
    home.mkdir()
    # the committed migrations are what Django makes of the models
    drift = await asyncio.to_thread(_tom, tom_python, home, url, "makemigrations",
                                    "tom_nightjar", "--check", "--dry-run")
    assert drift.returncode == 0, drift.stdout + drift.stderr
    ran = await asyncio.to_thread(_tom, tom_python, home, url, "test", "checks",
                                  "--noinput", "-v", "2", facts=facts)
    assert ran.returncode == 0, ran.stderr[-6000:]
    assert "Ran 9 tests" in ran.stderr and "OK" in ran.stderr, ran.stderr[-3000:]


async def test_a_saved_filter_streams_into_the_tom(tom_python: Path,
                                                   served: tuple[str, Deployment],
                                                   tmp_path: Path) -> None:
    url, dep = served
    home = tmp_path / "tom"
    home.mkdir()
    migrated = await asyncio.to_thread(_tom, tom_python, home, url, "migrate", "-v", "0")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    made = await dep.service.create(API_USER, "lsst-stream", 'survey == "LSST" && '
                                                             "alert.snr > 6.0")
    env = {**os.environ, "NIGHTJAR_URL": url, "NIGHTJAR_API_KEY": API_KEY,
           "NIGHTJAR_TOM_HOME": str(home), "PYTHONPATH": str(EXAMPLE)}
    # the poll is far off: what arrives within the test came by the subscription
    proc = await asyncio.create_subprocess_exec(
        str(tom_python), str(EXAMPLE / "manage.py"), "nightjar_stream", made["_id"],
        "--duration", "40", "--poll", "600", cwd=EXAMPLE, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 120)
    assert line.decode().startswith("listening for matches of"), line
    await subscribed(url, 1)
    await dep.ingest(_lsst_inputs(93, 120), 40)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-3000:]
    summary = json.loads(out.decode().strip().splitlines()[-1])
    _, stored = await dep.service.matches(API_USER, made["_id"], first=100_000)
    assert stored and summary["matches"] == len(stored)
    assert summary["live"] == len(stored) and summary["polled"] == 0
    assert summary["last_seq"] == stored[-1]["seq"]
    streamed = set(summary["oids"])
    assert streamed == {m["oid"] for m in stored}
    assert summary["targets_created"] == len(streamed)

    shown = await asyncio.to_thread(_tom, tom_python, home, url, "shell", "-c", (
        "import json; from tom_targets.models import Target; "
        "print(json.dumps({t.name: [t.photometryreduceddatum_set.count(), "
        "t.targetextra_set.get(key='nightjar_filter').value] for t in Target.objects.all()}))"))
    assert shown.returncode == 0, shown.stderr[-3000:]
    targets = json.loads(shown.stdout.strip().splitlines()[-1])
    assert set(targets) == streamed
    for oid, (points, name) in targets.items():
        assert name == "lsst-stream"
        assert points == await _photometry_points(dep, oid), oid

    # off while more alerts arrive: the next run takes exactly what it missed
    await dep.ingest(_lsst_inputs(94, 80), 40)
    _, later = await dep.service.matches(API_USER, made["_id"], after=stored[-1]["seq"],
                                         first=100_000)
    again = await asyncio.to_thread(_tom, tom_python, home, url, "nightjar_stream",
                                    made["_id"], "--duration", "3", "--poll", "600")
    assert again.returncode == 0, again.stderr[-3000:]
    caught = json.loads(again.stdout.strip().splitlines()[-1])
    assert later and caught["matches"] == len(later) and caught["polled"] == len(later)
    assert caught["last_seq"] == later[-1]["seq"]
