"""A ZTF alert simulator: schema-valid v4.02 Avro alerts for demos, tests and benchmarks.

Objects of four kinds are observed on a ZTF-like cadence (g and r, every ~1-3 nights):

* ``sn``: a supernova-like rise and decline on top of a host galaxy (mostly not
  corrected: the transient is offset from the host's reference source);
* ``periodic``: a sinusoidal variable star sitting on its own reference source, so
  the difference flux changes sign and the correction path with negative
  ``isdiffpos`` is exercised;
* ``stochastic``: a damped-random-walk (AGN-like) source, also on a reference source;
* ``bogus``: one or two low-``rb`` artefacts at random positions;
* ``asteroid``: a single detection of a known minor planet (``ssdistnr`` set), with
  no counterpart in the reference image.

Every epoch where the difference flux beats the 5-sigma limit is a detection and
yields an alert whose ``prv_candidates`` carry the previous 30 days of detections and
upper limits; every alert carries three gzipped FITS cutouts drawn by the stamp
classifier's simulator (:func:`ml.stamp_classifier.simulate.render`) with the
morphology of its class: a SN offset from its host, an AGN at a galaxy's nucleus, a
variable star on its template star, an asteroid with no template counterpart, bogus
dipoles, cosmic rays, bad columns and bright-star residuals.
Photometry follows f = 10**(-0.4 m); errors follow the 5-sigma limit.
"""

from __future__ import annotations

import gzip
import io
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
from astropy.io import fits

from ml.stamp_classifier.simulate import render
from nightjar.surveys.ztf.schema import ALERT_SCHEMA_V4_02

KINDS = ("sn", "periodic", "stochastic", "bogus", "asteroid")
KIND_WEIGHTS = (0.33, 0.28, 0.19, 0.12, 0.08)
#: the stamp class each kind's cutouts are drawn as
STAMP_CLASS = {"sn": "SN", "periodic": "VS", "stochastic": "AGN", "bogus": "bogus",
               "asteroid": "asteroid"}
STAMP_SIZE = 63  #: cutout side [pixels]
PIXEL_SCALE = 1.01  #: ZTF pixel scale [arcsec/pixel]
ZERO_POINT = 26.0  #: photometric zero point of the simulated stamps [mag]
HISTORY_DAYS = 30.0  #: span of prv_candidates, as in ZTF alerts [days]
START_JD = 2460600.5
_PARSED_SCHEMA = fastavro.parse_schema(ALERT_SCHEMA_V4_02)
_FITS_BLOCK = 2880


def _stamp_header_template() -> bytes:
    """A FITS header with a TAN WCS (north up, east left), CRVALs left to fill in.

    Every stamp has the same shape and type, so astropy renders the header once; each
    stamp only writes its centre into the two CRVAL cards (see :func:`_card`).
    """
    header = fits.PrimaryHDU(np.zeros((STAMP_SIZE, STAMP_SIZE), np.float32)).header
    centre = (STAMP_SIZE + 1) / 2
    header.update(WCSAXES=2, CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CUNIT1="deg",
                  CUNIT2="deg", CRPIX1=centre, CRPIX2=centre, CRVAL1=0.0, CRVAL2=0.0,
                  CDELT1=-PIXEL_SCALE / 3600, CDELT2=PIXEL_SCALE / 3600, RADESYS="ICRS",
                  EQUINOX=2000.0)
    return header.tostring().encode("ascii")


def _card(keyword: str, value: float) -> bytes:
    """One 80-character FITS card holding a float (fixed format, columns 11-30)."""
    return f"{keyword:<8}= {value:>20.12f}".ljust(80).encode("ascii")


_STAMP_HEADER = _stamp_header_template()
_CRVAL_AT = {k: _STAMP_HEADER.index(k.encode().ljust(8) + b"=") for k in ("CRVAL1", "CRVAL2")}


def _record_fields(name: str) -> list[dict[str, Any]]:
    for f in ALERT_SCHEMA_V4_02["fields"]:
        types = f["type"] if isinstance(f["type"], list) else [f["type"]]
        for t in types:
            if isinstance(t, dict) and t.get("type") == "array":
                t = t["items"]
            if isinstance(t, dict) and t.get("name") == name:
                return list(t["fields"])
    raise KeyError(name)


def _blank(name: str) -> dict[str, Any]:
    """A record of the schema with every nullable field null and others zero."""
    zero = {"double": 0.0, "float": 0.0, "int": 0, "long": 0, "string": ""}
    return {f["name"]: (None if isinstance(f["type"], list) else zero[f["type"]])
            for f in _record_fields(name)}


_BLANK_CANDIDATE = _blank("candidate")
_BLANK_PRV = _blank("prv_candidate")


@dataclass
class Epoch:
    jd: float
    fid: int
    limit: float  #: 5-sigma limiting magnitude of the difference image [mag]
    true_mag: float | None  #: apparent magnitude of the transient/variable [mag]
    diff_flux: float = 0.0  #: difference flux, zero point 0 [flux units]
    detected: bool = False
    candid: int = 0
    magpsf: float = 0.0
    sigmapsf: float = 0.0
    ra: float = 0.0
    dec: float = 0.0


@dataclass
class SimObject:
    oid: str
    kind: str
    ra: float
    dec: float
    magnr: float | None  #: reference-image source under the object, if any [mag]
    distnr: float  #: its distance [arcsec]
    sgscore: float
    epochs: list[Epoch] = field(default_factory=list)


class AlertSimulator:
    """Deterministic (seeded) generator of ZTF-like objects and their alerts."""

    def __init__(self, seed: int = 0, start_jd: float = START_JD):
        self.rng = np.random.default_rng(seed)
        self.start_jd = start_jd
        self._next_candid = 1_900_000_000_000_000_000 + seed * 1_000_000_000_000
        self._oids: set[str] = set()

    # ------------------------------------------------------------ objects
    def _oid(self, jd: float) -> str:
        year = 24 + int((jd - START_JD) // 365)
        while True:
            letters = "".join(self.rng.choice(list(string.ascii_lowercase), 7))
            oid = f"ZTF{year:02d}{letters}"
            if oid not in self._oids:
                self._oids.add(oid)
                return oid

    def _position(self) -> tuple[float, float]:
        ra = float(self.rng.uniform(0.0, 360.0))
        # uniform on the sphere, north of dec -30 (ZTF's sky)
        dec = float(np.degrees(np.arcsin(self.rng.uniform(np.sin(np.radians(-30)), 1.0))))
        return ra, dec

    def _model(self, kind: str) -> tuple[Any, float | None, float, float]:
        """(magnitude(t, fid), reference magnitude, distnr, sgscore) for a kind."""
        rng = self.rng
        if kind == "sn":
            peak, rise, decline = rng.uniform(17.0, 19.5), rng.uniform(8, 20), rng.uniform(
                0.02, 0.06)
            t0 = rng.uniform(5, 40)
            colour = rng.uniform(-0.2, 0.3)

            def sn(t: float, fid: int) -> float | None:
                dt = t - t0
                if dt < -3 * rise:
                    return None
                mag = peak + (2.5 * ((dt / rise) ** 2) if dt < 0 else decline * dt)
                return float(mag + (colour if fid == 1 else 0.0))

            host_near = rng.random() < 0.3  # a third of SNe sit on their host's core
            return sn, float(rng.uniform(19.5, 21.5)), float(
                rng.uniform(0.2, 1.2) if host_near else rng.uniform(1.6, 4.0)), 0.1
        if kind == "periodic":
            mean, amp, period, phase = (rng.uniform(14.5, 18.0), rng.uniform(0.2, 0.9),
                                        rng.uniform(0.3, 20.0), rng.uniform(0, 2 * np.pi))

            def periodic(t: float, fid: int) -> float:
                return float(mean + amp * np.sin(2 * np.pi * t / period + phase))

            return periodic, float(mean), float(rng.uniform(0.05, 0.5)), 0.98
        if kind == "stochastic":
            mean, sigma, tau = rng.uniform(16.5, 19.0), rng.uniform(0.1, 0.4), rng.uniform(
                20, 200)
            knots = np.cumsum(rng.normal(0, sigma * np.sqrt(2 / tau), 200))
            knots -= knots.mean()

            def drw(t: float, fid: int) -> float:
                return float(mean + np.interp(t, np.arange(200), knots))

            return drw, float(mean), float(rng.uniform(0.05, 0.6)), float(rng.uniform(0.3, 0.9))
        mag = rng.uniform(18.0, 20.0)

        def bogus(t: float, fid: int) -> float:
            return float(mag)

        return bogus, None, 99.0, 0.5

    def make_object(self, start_offset: float) -> SimObject:
        kind = str(self.rng.choice(KINDS, p=KIND_WEIGHTS))
        ra, dec = self._position()
        model, magnr, distnr, sgscore = self._model(kind)
        obj = SimObject(self._oid(self.start_jd + start_offset), kind, ra, dec, magnr, distnr,
                        sgscore)
        t = start_offset
        n_epochs = {"bogus": 2, "asteroid": 1}.get(kind) or int(self.rng.integers(15, 40))
        for _ in range(n_epochs):
            for fid in (1, 2):
                limit = float(self.rng.normal(20.4, 0.35))
                rel = t - start_offset
                epoch = Epoch(jd=self.start_jd + t + fid * 0.04, fid=fid, limit=limit,
                              true_mag=model(rel, fid))
                self._observe(obj, epoch)
                obj.epochs.append(epoch)
            t += float(self.rng.choice([1.0, 1.0, 2.0, 3.0])) + float(self.rng.normal(0, 0.05))
        return obj

    def _observe(self, obj: SimObject, ep: Epoch) -> None:
        f_ref = 10 ** (-0.4 * obj.magnr) if obj.magnr is not None and obj.distnr < 1.4 else 0.0
        if ep.true_mag is None:
            return
        f_true = 10 ** (-0.4 * ep.true_mag)
        ep.diff_flux = f_true - f_ref if f_ref else f_true
        if ep.diff_flux == 0.0:
            return
        mag_diff = -2.5 * np.log10(abs(ep.diff_flux))
        if mag_diff >= ep.limit:
            return
        snr = 5.0 * 10 ** (-0.4 * (mag_diff - ep.limit))
        ep.sigmapsf = float(1.0857 / snr)
        ep.magpsf = float(mag_diff + self.rng.normal(0, ep.sigmapsf))
        ep.detected = True
        ep.candid = self._next_candid
        self._next_candid += int(self.rng.integers(1, 1000))
        scatter = 0.15 / 3600.0
        ep.ra = float((obj.ra + self.rng.normal(0, scatter) / np.cos(np.radians(obj.dec))) % 360)
        ep.dec = float(np.clip(obj.dec + self.rng.normal(0, scatter), -90, 90))

    # ------------------------------------------------------------ packets
    def _candidate(self, obj: SimObject, ep: Epoch, blank: dict[str, Any]) -> dict[str, Any]:
        c = dict(blank)
        c.update(jd=ep.jd, fid=ep.fid, pid=int(ep.jd * 1e4) % 10**12, diffmaglim=ep.limit,
                 programid=1, candid=ep.candid, isdiffpos="t" if ep.diff_flux > 0 else "f",
                 ra=ep.ra, dec=ep.dec, magpsf=ep.magpsf, sigmapsf=ep.sigmapsf, field=600,
                 rcid=20, fwhm=2.1, rb=float(self.rng.uniform(0.05, 0.3)) if obj.kind == "bogus"
                 else float(self.rng.uniform(0.7, 1.0)), ranr=obj.ra, decnr=obj.dec,
                 magnr=obj.magnr, sigmagnr=0.02 if obj.magnr is not None else None,
                 distnr=obj.distnr if obj.magnr is not None else -999.0, chinr=1.0,
                 sharpnr=0.01, sgscore1=obj.sgscore, distpsnr1=obj.distnr, rfid=600120,
                 magzpsci=ZERO_POINT, xpos=31.0, ypos=31.0)
        if "drb" in c:
            c["drb"] = c["rb"]
        if obj.kind == "asteroid":  # ZTF's match to a known minor planet
            c.update(ssdistnr=float(self.rng.uniform(0.0, 2.0)), ssmagnr=ep.magpsf,
                     ssnamenr=f"{int(self.rng.integers(1000, 600000))}")
        return c

    def _prv(self, obj: SimObject, ep: Epoch) -> dict[str, Any]:
        p = dict(_BLANK_PRV)
        p.update(jd=ep.jd, fid=ep.fid, pid=int(ep.jd * 1e4) % 10**12, diffmaglim=ep.limit,
                 programid=1, rbversion="t17_f5_c3")
        if ep.detected:
            p.update(self._candidate(obj, ep, {}))
            p = {k: v for k, v in p.items() if k in _BLANK_PRV}
        return p

    def _stamp(self, image: np.ndarray, ra: float, dec: float) -> bytes:
        """One gzipped FITS cutout with a TAN WCS centred on (ra, dec) [deg]."""
        data = image.astype(">f4").tobytes()
        pad = b"\0" * (-len(data) % _FITS_BLOCK)
        header = bytearray(_STAMP_HEADER)
        for keyword, value in (("CRVAL1", ra), ("CRVAL2", dec)):
            at = _CRVAL_AT[keyword]
            header[at:at + 80] = _card(keyword, value)
        return gzip.compress(bytes(header) + data + pad, compresslevel=1, mtime=0)

    def alert(self, obj: SimObject, index: int) -> dict[str, Any]:
        """The alert record of detection epoch ``index`` of ``obj``."""
        ep = obj.epochs[index]
        history = [e for e in obj.epochs[:index] if ep.jd - e.jd <= HISTORY_DAYS]
        cand = self._candidate(obj, ep, _BLANK_CANDIDATE)
        cand.update(ndethist=sum(e.detected for e in obj.epochs[: index + 1]),
                    ncovhist=index + 1, jdstarthist=obj.epochs[0].jd, jdendhist=ep.jd,
                    jdstartref=self.start_jd - 400, jdendref=self.start_jd - 300, nframesref=20,
                    rbversion="t17_f5_c3", drbversion="d6_m7", nmtchps=1, nmatches=500)
        ref_flux = 10 ** (-0.4 * obj.magnr) if obj.magnr is not None else 0.0
        at = (cand["ra"], cand["dec"])
        counts = 10 ** (0.4 * ZERO_POINT)
        triplet = render(STAMP_CLASS[obj.kind], self.rng, diff_counts=ep.diff_flux * counts,
                         ref_counts=ref_flux * counts, fwhm=2.1, sky=100.0, noise=8.0)
        stamps = {"Science": self._stamp(triplet.science, *at),
                  "Template": self._stamp(triplet.template, *at),
                  "Difference": self._stamp(triplet.difference, *at)}
        return {
            "schemavsn": "4.02", "publisher": "Nightjar simulator", "objectId": obj.oid,
            "candid": ep.candid, "candidate": cand,
            "prv_candidates": [self._prv(obj, e) for e in history] or None,
            "fp_hists": None,
            **{f"cutout{k}": {"fileName": f"candid{ep.candid}_{k.lower()}.fits.gz",
                              "stampData": v} for k, v in stamps.items()},
        }

    def events(self, n_alerts: int) -> list[tuple[SimObject, int]]:
        """The first ``n_alerts`` detections (in time) of enough simulated objects."""
        events: list[tuple[float, SimObject, int]] = []
        offset = 0.0
        while len(events) < n_alerts * 1.3 + 10:
            obj = self.make_object(offset)
            events += [(e.jd, obj, i) for i, e in enumerate(obj.epochs) if e.detected]
            offset += float(self.rng.exponential(0.05))
        events.sort(key=lambda e: (e[0], e[2]))
        return [(obj, i) for _, obj, i in events[:n_alerts]]

    def packets(self, n_alerts: int) -> Iterator[tuple[str, int, bytes]]:
        """(objectId, candid, Avro container bytes) of ``n_alerts`` alerts in time order."""
        for obj, index in self.events(n_alerts):
            record = self.alert(obj, index)
            buf = io.BytesIO()
            fastavro.writer(buf, _PARSED_SCHEMA, [record], validator=False)
            yield obj.oid, record["candid"], buf.getvalue()


def write_alerts(n_alerts: int, out_dir: Path, seed: int = 0) -> list[Path]:
    """Write ``n_alerts`` simulated alerts as ``<objectId>_<candid>.avro`` files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (oid, candid, data) in enumerate(AlertSimulator(seed).packets(n_alerts)):
        path = out_dir / f"{i:06d}_{oid}_{candid}.avro"
        path.write_bytes(data)
        paths.append(path)
    return paths
