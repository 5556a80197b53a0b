"""An LSST alert simulator: schema-valid Rubin packets (11.0 by default) in the wire format.

Objects are observed on a wide-fast-deep-like cadence: a field is visited on nights a few
days apart, twice a night (~33 min apart) in two bands of ``u g r i z y``, each visit to
its single-visit 5-sigma depth (SMTN-002: u 23.7, g 25.0, r 24.5, i 24.1, z 23.6, y 22.6,
with 0.3 mag of weather scatter).  Kinds, as in the ZTF simulator:

* ``sn``: a rise and decline on a host galaxy (the template holds the host);
* ``periodic``: a sinusoidal variable whose mean flux is in the template, so the
  difference flux changes sign;
* ``stochastic``: a damped random walk (AGN-like) on a galaxy nucleus;
* ``bogus``: one or two spurious detections of low ``reliability``;
* ``asteroid``: detections of a known minor planet at moving positions, with no
  ``diaObjectId``, an ``ssObjectId``, ``ssSource`` and ``mpc_orbits``.

Fluxes are in nJy: the difference flux ``psfFlux = f(t) - f_template`` and the science
flux ``scienceFlux = f(t) + f_host`` are measured with the visit's noise ``sigma =
F(m5)/5``; a visit with ``|psfFlux| >= 5 sigma`` is a detection and yields an alert.
Each alert carries up to 12 months of ``prvDiaSources`` and of ``prvDiaForcedSources``
(every visit from 30 days before the first detection), a ``diaObject`` summary and
three cutouts as Rubin sends them: 30 x 30 px at 0.2"/px, an image in nJy, a variance
plane and the PSF, uncompressed multi-extension FITS without CTYPE cards (~100 KB per
alert, like the real ones).

:meth:`LsstSimulator.visit_burst` produces one visit's worth of alerts at once (Rubin:
~10,000 alerts a visit, a visit every ~35 s) for load tests.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
from astropy.io import fits

from nightjar.minor_planets import pack_provisional, unpack_provisional
from nightjar.photometry import mag_to_flux
from nightjar.surveys.lsst.schemas import LsstSchemas
from nightjar.surveys.lsst.wire import frame

KINDS = ("sn", "periodic", "stochastic", "bogus", "asteroid")
KIND_WEIGHTS = (0.33, 0.28, 0.19, 0.12, 0.08)
#: single-visit 5-sigma depths [AB mag] (SMTN-002)
DEPTHS = {"u": 23.7, "g": 24.97, "r": 24.52, "i": 24.13, "z": 23.56, "y": 22.55}
#: the band pairs of one night's two visits
NIGHT_PAIRS = (("g", "r"), ("r", "i"), ("i", "z"), ("z", "y"), ("u", "g"), ("g", "i"),
               ("r", "z"))
CUTOUT_SIZE = 30  #: cutout side [px]
PSF_SIZE = 41  #: PSF image side [px]
PIXEL_SCALE = 0.2  #: LSSTCam [arcsec/px]
HISTORY_DAYS = 365.0  #: Rubin's packets repeat 12 months of history [d]
PRECOVERY_DAYS = 30.0  #: forced photometry before the first detection [d]
START_MJD = 61000.0  #: first night simulated [MJD, TAI]
DEFAULT_SCHEMA_ID = 1100
FIELD_RADIUS_DEG = 1.75  #: LSSTCam's field of view, as a circle [deg]
_FITS_BLOCK = 2880


@dataclass
class Visit:
    visit: int
    mjd: float  #: midpoint [MJD, TAI]
    band: str
    m5: float  #: 5-sigma depth [AB mag]
    seeing: float  #: PSF FWHM [arcsec]

    @property
    def sigma(self) -> float:
        """1-sigma flux error of a point source [nJy]."""
        return mag_to_flux(self.m5) / 5.0


@dataclass
class Epoch:
    """One visit of one object: what Rubin measured there."""

    visit: Visit
    ra: float
    dec: float
    diff_flux: float  #: measured psfFlux [nJy]
    science_flux: float  #: measured scienceFlux [nJy]
    true_diff: float  #: noiseless difference flux [nJy]
    detected: bool = False
    source_id: int = 0
    forced_id: int = 0


@dataclass
class SimObject:
    kind: str
    ra: float
    dec: float
    host_flux: float  #: template flux under the source [nJy]
    epochs: list[Epoch] = field(default_factory=list)
    object_id: int = 0  #: diaObjectId (ssObjectId for an asteroid)
    designation: str | None = None  #: an asteroid's packed designation


def _blank(schema: Any, named: dict[str, Any]) -> dict[str, Any]:
    """A record of ``schema`` with every nullable field null and the others zero/false."""
    zero = {"double": 0.0, "float": 0.0, "int": 0, "long": 0, "string": "", "boolean": False,
            "bytes": b""}
    out: dict[str, Any] = {}
    for fld in schema["fields"]:
        ftype = fld["type"]
        if isinstance(ftype, list):
            out[fld["name"]] = None
        elif isinstance(ftype, str):
            out[fld["name"]] = zero.get(ftype, _blank(named[ftype], named)
                                        if ftype in named else None)
        elif ftype.get("type") == "record":
            out[fld["name"]] = _blank(ftype, named)
        else:
            out[fld["name"]] = [] if ftype.get("type") == "array" else None
    return out


def _named(schema: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema, dict):
        if schema.get("type") == "record":
            out[schema["name"]] = schema
            for fld in schema["fields"]:
                _named(fld["type"], out)
        elif schema.get("type") == "array":
            _named(schema["items"], out)
    elif isinstance(schema, list):
        for item in schema:
            _named(item, out)
    return out


def _header_bytes(header: fits.Header) -> bytes:
    text = header.tostring()
    return text.encode("ascii")


def _card(keyword: str, value: float) -> bytes:
    return f"{keyword:<8}= {value:>20.12f}".ljust(80).encode("ascii")


class _CutoutWriter:
    """Rubin-like cutouts: primary image [nJy] with a TAN WCS but no CTYPE cards (as Rubin
    writes them), a variance extension, a PSF extension; only CRVALs change per cutout."""

    def __init__(self) -> None:
        primary = fits.PrimaryHDU(np.zeros((CUTOUT_SIZE, CUTOUT_SIZE), np.float32)).header
        centre = (CUTOUT_SIZE + 1) / 2
        scale = PIXEL_SCALE / 3600.0
        primary["EXTEND"] = True
        primary.update(BUNIT="nJy", WCSAXES=2, CRPIX1=centre, CRPIX2=centre, PC1_1=-scale,
                       PC1_2=0.0, PC2_1=0.0, PC2_2=scale, CDELT1=1.0, CDELT2=1.0,
                       CRVAL1=0.0, CRVAL2=0.0, LATPOLE=90.0, MJDREF=0.0)
        variance = fits.ImageHDU(np.zeros((CUTOUT_SIZE, CUTOUT_SIZE), np.float32),
                                 name="UNCERT").header
        variance["UTYPE"] = "VarianceUncertainty"
        psf = fits.ImageHDU(np.zeros((PSF_SIZE, PSF_SIZE), np.float64), name="PSFIMAGE").header
        self.primary = _header_bytes(primary)
        self.variance = _header_bytes(variance)
        self.psf = _header_bytes(psf)
        self.crval_at = {k: self.primary.index(k.encode().ljust(8) + b"=")
                         for k in ("CRVAL1", "CRVAL2")}

    @staticmethod
    def _data(array: np.ndarray, dtype: str) -> bytes:
        data = np.ascontiguousarray(array, dtype=dtype).tobytes()
        return data + b"\0" * (-len(data) % _FITS_BLOCK)

    def write(self, image: np.ndarray, variance: np.ndarray, psf: np.ndarray, ra: float,
              dec: float) -> bytes:
        header = bytearray(self.primary)
        for keyword, value in (("CRVAL1", ra), ("CRVAL2", dec)):
            at = self.crval_at[keyword]
            header[at:at + 80] = _card(keyword, value)
        return b"".join((bytes(header), self._data(image, ">f4"), self.variance,
                         self._data(variance, ">f4"), self.psf, self._data(psf, ">f8")))


_GRID = np.mgrid[:CUTOUT_SIZE, :CUTOUT_SIZE].astype(np.float64) - (CUTOUT_SIZE - 1) / 2
_PSF_GRID = np.mgrid[:PSF_SIZE, :PSF_SIZE].astype(np.float64) - (PSF_SIZE - 1) / 2


def _gaussian(grid: np.ndarray, fwhm_px: float, dx: float = 0.0, dy: float = 0.0
              ) -> np.ndarray:
    s = fwhm_px / 2.3548
    g = np.exp(-((grid[1] - dx) ** 2 + (grid[0] - dy) ** 2) / (2 * s * s))
    return np.asarray(g / g.sum())


class LsstSimulator:
    """Deterministic (seeded) generator of LSST objects and their alert packets.

    Parameters
    ----------
    seed : int
        Random seed (the same seed gives the same packets).
    schema_id : int
        The Rubin schema the packets are written with (e.g. 1100, 1000, 900).
    """

    def __init__(self, seed: int = 0, schema_id: int = DEFAULT_SCHEMA_ID,
                 start_mjd: float = START_MJD):
        self.rng = np.random.default_rng(seed)
        self.schema_id = schema_id
        self.schema = LsstSchemas().get(schema_id).parsed
        self.named = _named(self.schema, {})
        prefix = self.schema["name"].rsplit(".", 1)[0]
        self._types = {part: self.named[f"{prefix}.{part}"]
                       for part in ("diaSource", "diaForcedSource", "diaObject", "ssSource",
                                    "mpc_orbits") if f"{prefix}.{part}" in self.named}
        self._blanks = {part: _blank(t, self.named) for part, t in self._types.items()}
        self.start_mjd = start_mjd
        self._next_id = 170_000_000_000_000_000 + seed * 10_000_000_000_000
        self._next_visit = 2026_0000_0000 + seed * 1_000_000
        self.cutouts = _CutoutWriter()

    # ------------------------------------------------------------ ids and cadence
    def _id(self) -> int:
        self._next_id += int(self.rng.integers(1, 50))
        return self._next_id

    def field_visits(self, start: float, end: float) -> list[Visit]:
        """The visits of one field between two dates [MJD]: nights 1-6 days apart, two
        visits ~33 min apart in two bands."""
        rng = self.rng
        visits = []
        night = start + float(rng.uniform(0.0, 2.0))
        while night < end:
            first, second = NIGHT_PAIRS[int(rng.integers(len(NIGHT_PAIRS)))]
            for k, band in enumerate((first, second)):
                self._next_visit += 1
                visits.append(Visit(self._next_visit, night + 0.1 + k * 0.023, band,
                                    DEPTHS[band] + float(rng.normal(0.0, 0.3)),
                                    float(np.clip(rng.lognormal(math.log(0.8), 0.2), 0.5, 1.8))))
            night += float(rng.choice([1.0, 2.0, 3.0, 3.0, 4.0, 5.0, 6.0]))
        return visits

    def _position(self) -> tuple[float, float]:
        ra = float(self.rng.uniform(0.0, 360.0))
        # uniform on the sphere, south of dec +30 (Rubin's sky)
        dec = float(np.degrees(np.arcsin(self.rng.uniform(-1.0, np.sin(np.radians(30))))))
        return ra, dec

    # ------------------------------------------------------------ objects
    def _model(self, kind: str, t_ref: float) -> tuple[Any, float, float]:
        """(true flux(t, band) [nJy], template flux [nJy], host flux [nJy]) of a kind."""
        rng = self.rng
        colours = {b: float(rng.normal(0.0, 0.15)) for b in DEPTHS}
        if kind == "sn":
            peak = float(rng.uniform(20.0, 23.5))
            rise, decline = float(rng.uniform(8, 20)), float(rng.uniform(0.02, 0.06))
            t0 = t_ref + float(rng.uniform(-10.0, 40.0))
            host = mag_to_flux(float(rng.uniform(21.0, 24.0)))

            def sn(t: float, band: str) -> float:
                dt = t - t0
                if dt < -3 * rise:
                    return 0.0
                mag = peak + (2.5 * (dt / rise) ** 2 if dt < 0 else decline * dt)
                return mag_to_flux(mag + colours[band])

            return sn, host * 0.3, host * 0.3
        if kind == "periodic":
            mean, amp = float(rng.uniform(17.5, 22.0)), float(rng.uniform(0.2, 0.9))
            period, phase = float(rng.uniform(0.3, 20.0)), float(rng.uniform(0, 2 * np.pi))
            base = {b: mag_to_flux(mean + colours[b]) for b in DEPTHS}

            def periodic(t: float, band: str) -> float:
                return base[band] * 10 ** (-0.4 * amp * math.sin(2 * math.pi * t / period
                                                                 + phase))

            return periodic, float(np.mean(list(base.values()))), 0.0
        if kind == "stochastic":
            mean = float(rng.uniform(19.0, 22.5))
            sigma, tau = float(rng.uniform(0.1, 0.4)), float(rng.uniform(20, 200))
            knots = np.cumsum(rng.normal(0, sigma * np.sqrt(2 / tau), 800))
            knots -= knots.mean()
            base = {b: mag_to_flux(mean + colours[b]) for b in DEPTHS}
            host = mag_to_flux(float(rng.uniform(20.0, 22.0)))

            def drw(t: float, band: str) -> float:
                return base[band] * 10 ** (-0.4 * float(np.interp(t - t_ref, np.arange(800),
                                                                  knots)))

            return drw, float(np.mean(list(base.values()))) + host, host
        flux = mag_to_flux(float(rng.uniform(21.0, 23.5)))

        def constant(t: float, band: str) -> float:
            return flux

        return constant, 0.0, 0.0

    def _measure(self, obj: SimObject, visit: Visit, model: Any, template: float) -> Epoch:
        true = model(visit.mjd, visit.band)
        true_diff = true - (template if obj.kind != "sn" else 0.0)
        if obj.kind in ("periodic", "stochastic"):
            true_diff = true - template + obj.host_flux
        sigma = visit.sigma
        diff = true_diff + float(self.rng.normal(0.0, sigma))
        science = true + obj.host_flux + float(self.rng.normal(0.0, 0.8 * sigma))
        scatter = 0.02 / 3600.0
        ra = (obj.ra + float(self.rng.normal(0, scatter)) / math.cos(math.radians(obj.dec))) % 360
        dec = float(np.clip(obj.dec + self.rng.normal(0, scatter), -90.0, 90.0))
        return Epoch(visit, ra, dec, diff, science, true_diff, abs(diff) >= 5.0 * sigma)

    def make_object(self, visits: list[Visit], position: tuple[float, float] | None = None,
                    kind: str | None = None) -> SimObject:
        """One object observed at ``visits`` (its field's cadence)."""
        kind = kind or str(self.rng.choice(KINDS, p=KIND_WEIGHTS))
        ra, dec = position or self._position()
        model, template, host = self._model(kind, visits[0].mjd if visits else self.start_mjd)
        obj = SimObject(kind, ra, dec, host)
        if kind == "bogus":  # one or two spurious detections
            chosen = [int(i) for i in self.rng.choice(len(visits), size=min(
                len(visits), int(self.rng.integers(1, 3))), replace=False)]
            for i in sorted(chosen):
                v = visits[i]
                sign = 1.0 if self.rng.random() < 0.6 else -1.0
                flux = sign * float(self.rng.uniform(5.5, 12.0)) * v.sigma
                obj.epochs.append(Epoch(v, ra, dec, flux, abs(flux), flux, True))
        elif kind == "asteroid":  # a moving source: each detection elsewhere
            rate = float(self.rng.uniform(0.1, 1.0))  # [deg/day]
            angle = float(self.rng.uniform(0, 2 * math.pi))
            for v in visits[: int(self.rng.integers(1, 4))]:
                dt = v.mjd - visits[0].mjd
                pra = (ra + rate * dt * math.cos(angle) / math.cos(math.radians(dec))) % 360
                pdec = float(np.clip(dec + rate * dt * math.sin(angle), -89.9, 89.9))
                flux = model(v.mjd, v.band)
                obj.epochs.append(Epoch(v, pra, pdec, flux, flux, flux,
                                        flux >= 5.0 * v.sigma))
            year = 2000 + int(self.rng.integers(0, 25))
            half = "ABCDEFGHJKLMNOPQRSTUVWXY"[int(self.rng.integers(24))]
            letter = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[int(self.rng.integers(26))]
            cycle = int(self.rng.integers(1, 200))
            obj.designation = pack_provisional(f"{year} {half}{letter}{cycle}")
        else:
            obj.epochs = [self._measure(obj, v, model, template) for v in visits]
        for epoch in obj.epochs:
            epoch.forced_id = self._id()
            if epoch.detected:
                epoch.source_id = self._id()
        first = next((e for e in obj.epochs if e.detected), None)
        obj.object_id = first.source_id if first is not None else self._id()
        return obj

    # ------------------------------------------------------------ packets
    def _cutouts(self, epoch: Epoch, obj: SimObject) -> dict[str, bytes]:
        rng = self.rng
        fwhm = epoch.visit.seeing / PIXEL_SCALE
        psf = _gaussian(_GRID, fwhm)
        sigma_pix = epoch.visit.sigma / math.sqrt(4 * math.pi * (fwhm / 2.3548) ** 2)
        host = obj.host_flux * _gaussian(_GRID, fwhm * 3.0, 1.5, -1.0) \
            if obj.host_flux else 0.0
        template = host + (epoch.science_flux - epoch.true_diff) * psf \
            + rng.normal(0.0, 0.4 * sigma_pix, psf.shape)
        science = host + epoch.science_flux * psf + rng.normal(0.0, sigma_pix, psf.shape)
        difference = science - template
        if obj.kind == "bogus":  # a dipole or a cosmic ray, not a PSF
            difference = difference + epoch.diff_flux * (
                _gaussian(_GRID, 1.2) - 0.5 * _gaussian(_GRID, fwhm, 2.0, 0.0))
        var = np.full(psf.shape, sigma_pix ** 2, np.float32)
        big_psf = _gaussian(_PSF_GRID, fwhm)
        return {name: self.cutouts.write(image, var, big_psf, epoch.ra, epoch.dec)
                for name, image in (("cutoutScience", science), ("cutoutTemplate", template),
                                    ("cutoutDifference", difference))}

    def _source(self, obj: SimObject, epoch: Epoch) -> dict[str, Any]:
        src = dict(self._blanks["diaSource"])
        v = epoch.visit
        sigma = v.sigma
        asteroid = obj.kind == "asteroid"
        src.update(diaSourceId=epoch.source_id, visit=v.visit, detector=int(v.visit % 189),
                   diaObjectId=None if asteroid else obj.object_id,
                   ssObjectId=obj.object_id if asteroid else None,
                   midpointMjdTai=v.mjd, ra=epoch.ra, dec=epoch.dec, raErr=2e-5, decErr=2e-5,
                   x=float(self.rng.uniform(0, 4000)), y=float(self.rng.uniform(0, 4000)),
                   psfFlux=epoch.diff_flux, psfFluxErr=sigma, apFlux=epoch.diff_flux * 0.95,
                   apFluxErr=sigma * 1.2, snr=abs(epoch.diff_flux) / sigma,
                   scienceFlux=epoch.science_flux, scienceFluxErr=0.8 * sigma,
                   templateFlux=epoch.science_flux - epoch.true_diff, templateFluxErr=sigma,
                   band=v.band, isNegative=epoch.diff_flux < 0, psfNdata=25, bboxSize=17,
                   reliability=float(self.rng.uniform(0.0, 0.3) if obj.kind == "bogus"
                                     else self.rng.uniform(0.7, 1.0)),
                   extendedness=float(self.rng.uniform(0.0, 0.3)),
                   timeProcessedMjdTai=v.mjd + 0.002)
        return {k: src[k] for k in self._blanks["diaSource"]}

    def _forced(self, obj: SimObject, epoch: Epoch) -> dict[str, Any]:
        rec = dict(self._blanks["diaForcedSource"])
        v = epoch.visit
        rec.update(diaForcedSourceId=epoch.forced_id, diaObjectId=obj.object_id, ra=obj.ra,
                   dec=obj.dec, visit=v.visit, detector=int(v.visit % 189),
                   psfFlux=epoch.diff_flux, psfFluxErr=v.sigma, midpointMjdTai=v.mjd,
                   band=v.band, timeProcessedMjdTai=v.mjd + 0.002)
        if "scienceFlux" in rec:
            rec.update(scienceFlux=epoch.science_flux, scienceFluxErr=0.8 * v.sigma)
        return {k: rec[k] for k in self._blanks["diaForcedSource"]}

    def _dia_object(self, obj: SimObject, upto: int) -> dict[str, Any]:
        rec = dict(self._blanks["diaObject"])
        dets = [e for e in obj.epochs[: upto + 1] if e.detected]
        rec.update(diaObjectId=obj.object_id, ra=obj.ra, dec=obj.dec,
                   validityStartMjdTai=dets[-1].visit.mjd, nDiaSources=len(dets))
        if "firstDiaSourceMjdTai" in rec:
            rec.update(firstDiaSourceMjdTai=dets[0].visit.mjd,
                       lastDiaSourceMjdTai=dets[-1].visit.mjd)
        for band in DEPTHS:
            fluxes = [e.diff_flux for e in dets if e.visit.band == band]
            name = f"{band}_psfFluxNdata"
            if name in rec:
                rec[name] = len(fluxes)
            if fluxes and f"{band}_psfFluxMean" in rec:
                rec[f"{band}_psfFluxMean"] = float(np.mean(fluxes))
        return rec

    def _solar(self, obj: SimObject, epoch: Epoch) -> dict[str, Any]:
        ss = dict(self._blanks["ssSource"])
        ss.update(diaSourceId=epoch.source_id, ssObjectId=obj.object_id,
                  designation=obj.designation, eclLambda=epoch.ra, eclBeta=epoch.dec,
                  galLon=0.0, galLat=0.0, ephRa=epoch.ra, ephDec=epoch.dec)
        orbit = dict(self._blanks["mpc_orbits"])
        unpacked = unpack_provisional(obj.designation or "") or ""
        orbit.update(designation=unpacked, packed_primary_provisional_designation=obj.designation,
                     unpacked_primary_provisional_designation=unpacked,
                     e=float(self.rng.uniform(0.0, 0.3)), q=float(self.rng.uniform(1.5, 3.5)))
        return {"ssSource": {k: ss[k] for k in self._blanks["ssSource"] if k in ss},
                "mpc_orbits": orbit}

    def alert(self, obj: SimObject, index: int) -> dict[str, Any]:
        """The packet (a record of the simulator's schema) of detection epoch ``index``."""
        epoch = obj.epochs[index]
        mjd = epoch.visit.mjd
        record: dict[str, Any] = {f["name"]: None for f in self.schema["fields"]}
        source = self._source(obj, epoch)
        record.update(diaSourceId=epoch.source_id, diaSource=source)
        if "alertId" in record:
            record["alertId"] = epoch.source_id
        if obj.kind == "asteroid":
            record.update(self._solar(obj, epoch))
        else:
            earlier = [e for e in obj.epochs[:index] if mjd - e.visit.mjd <= HISTORY_DAYS]
            first_det = next(e.visit.mjd for e in obj.epochs if e.detected)
            record["prvDiaSources"] = [self._source(obj, e) for e in earlier if e.detected] \
                or None
            record["prvDiaForcedSources"] = [
                self._forced(obj, e) for e in earlier
                if e.visit.mjd >= first_det - PRECOVERY_DAYS] or None
            record["diaObject"] = self._dia_object(obj, index)
        record.update(self._cutouts(epoch, obj))
        return record

    def encode(self, record: dict[str, Any]) -> bytes:
        """One packet in Rubin's wire format."""
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self.schema, record)
        return frame(self.schema_id, buf.getvalue())

    def events(self, n_alerts: int) -> list[tuple[SimObject, int]]:
        """The first ``n_alerts`` detections (in time) of enough simulated objects, each on
        its own field's cadence over ~60 nights."""
        events: list[tuple[float, SimObject, int]] = []
        offset = 0.0
        while len(events) < n_alerts * 1.3 + 10:
            start = self.start_mjd + offset
            obj = self.make_object(self.field_visits(start, start + 60.0))
            events += [(e.visit.mjd, obj, i) for i, e in enumerate(obj.epochs) if e.detected]
            offset += float(self.rng.exponential(0.05))
        events.sort(key=lambda e: (e[0], e[1].object_id, e[2]))
        return [(obj, i) for _, obj, i in events[:n_alerts]]

    def packets(self, n_alerts: int) -> Iterator[tuple[str, int, bytes]]:
        """(object id, diaSourceId, wire-format bytes) of ``n_alerts`` alerts in time order."""
        for obj, index in self.events(n_alerts):
            yield self._packet(obj, index)

    def _packet(self, obj: SimObject, index: int) -> tuple[str, int, bytes]:
        """(object id, diaSourceId, wire-format bytes) of detection epoch ``index``."""
        record = self.alert(obj, index)
        return str(obj.object_id), record["diaSourceId"], self.encode(record)

    def visit_burst(self, n_alerts: int, mjd: float | None = None
                    ) -> Iterator[tuple[str, int, bytes]]:
        """One visit's alerts: ``n_alerts`` objects of one field (a 1.75° circle) detected
        in the same visit, each with its own history on the field's cadence."""
        for obj, index in self._burst_events(n_alerts, mjd):
            yield self._packet(obj, index)

    def visit_burst_with_history(self, n_alerts: int, mjd: float | None = None
                                 ) -> tuple[list[tuple[str, int, bytes]],
                                            list[tuple[str, int, bytes]]]:
        """Each object's latest earlier alert (its packet repeats the object's history
        before it), then one visit's burst as :meth:`visit_burst` makes it: a store that has
        ingested the first list is in the steady state the burst meets in operations."""
        events = list(self._burst_events(n_alerts, mjd))
        earlier = [(obj, max(i for i in range(now) if obj.epochs[i].detected))
                   for obj, now in events if any(e.detected for e in obj.epochs[:now])]
        earlier.sort(key=lambda e: (e[0].epochs[e[1]].visit.mjd, e[0].object_id))
        history = [self._packet(obj, index) for obj, index in earlier]
        return history, [self._packet(obj, index) for obj, index in events]

    def _burst_events(self, n_alerts: int, mjd: float | None
                      ) -> Iterator[tuple[SimObject, int]]:
        mjd = mjd if mjd is not None else self.start_mjd + 90.0
        visits = self.field_visits(mjd - 90.0, mjd - 0.5)
        band = str(self.rng.choice(list(DEPTHS)))
        self._next_visit += 1
        now = Visit(self._next_visit, mjd, band, DEPTHS[band], 0.8)
        centre = self._position()
        made = 0
        while made < n_alerts:
            r = FIELD_RADIUS_DEG * math.sqrt(float(self.rng.random()))
            angle = float(self.rng.uniform(0, 2 * math.pi))
            dec = float(np.clip(centre[1] + r * math.sin(angle), -89.9, 89.9))
            ra = (centre[0] + r * math.cos(angle) / math.cos(math.radians(dec))) % 360
            obj = self.make_object([*visits, now], (ra, dec))
            index = next((i for i, e in enumerate(obj.epochs) if e.visit is now and e.detected),
                         None)
            if index is None:
                continue
            made += 1
            yield obj, index


def write_alerts(n_alerts: int, out_dir: Path, seed: int = 0,
                 schema_id: int = DEFAULT_SCHEMA_ID, burst: bool = False) -> list[Path]:
    """Write ``n_alerts`` simulated LSST alerts as wire-format files ``<n>_<id>_<id>.lsst``
    (one visit's burst with ``burst``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sim = LsstSimulator(seed, schema_id)
    packets = sim.visit_burst(n_alerts) if burst else sim.packets(n_alerts)
    paths = []
    for i, (oid, source_id, data) in enumerate(packets):
        path = out_dir / f"{i:06d}_{oid}_{source_id}.lsst"
        path.write_bytes(data)
        paths.append(path)
    return paths
