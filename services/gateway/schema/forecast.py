"""Light-curve forecasts with intervals, and the forecast surprise of the latest
detection (:mod:`ml.forecast`, served through :func:`nightjar.runner.classify.object_forecast`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import strawberry

from ml.forecast import HORIZON_DAYS, Forecast

#: the most times one forecast may ask for
MAX_FORECAST_TIMES = 1000


@strawberry.type(description="The forecast at one time: AB magnitudes; lower* are the bright "
                             "bounds (smaller magnitudes), upper* the faint ones")
class ForecastPoint:
    mjd: float = strawberry.field(description="time [MJD]")
    valid: bool = strawberry.field(description="false where the model says nothing (every "
                                               "magnitude null)")
    magnitude: float | None = strawberry.field(description="forecast magnitude [mag]")
    lower68: float | None = strawberry.field(description="bright bound of the 68 % interval "
                                                         "of a new detection [mag]")
    upper68: float | None = strawberry.field(description="faint bound of the 68 % interval "
                                                         "[mag]; null for the transient model "
                                                         "where it reaches zero flux")
    lower95: float | None = strawberry.field(description="bright bound of the 95 % interval "
                                                         "[mag]")
    upper95: float | None = strawberry.field(description="faint bound of the 95 % interval "
                                                         "[mag]; null where it reaches zero "
                                                         "flux")


@strawberry.type(description="A forecast of one band of an object's light curve, by the "
                             "model of its most probable top-level class: spm (Transient: "
                             "the supernova parametric model on difference fluxes, "
                             "difference magnitudes), harmonic (Periodic: a Fourier series "
                             "at the multiband period, apparent magnitudes) or drw "
                             "(Stochastic: a damped-random-walk Gaussian process, apparent "
                             f"magnitudes); nothing is valid past {HORIZON_DAYS:g} days after "
                             "the band's last detection or where the model misses the last "
                             "three detections")
class ObjectForecast:
    band: str
    model: str = strawberry.field(description="spm, harmonic, drw, or none")
    branch: str | None = strawberry.field(description="the top-level class that chose the "
                                                      "model; null when not classified")
    magnitude_kind: str = strawberry.field(description="DIFFERENCE (spm) or APPARENT")
    reason: str | None = strawberry.field(description="why no point is valid, or null")
    points: list[ForecastPoint]


def _value(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def object_forecast_of(result: Forecast, band: str, branch: str | None) -> ObjectForecast:
    points = [ForecastPoint(mjd=float(result.mjd[i]), valid=bool(result.valid[i]),
                            magnitude=_value(result.magnitude[i]),
                            lower68=_value(result.lower68[i]), upper68=_value(result.upper68[i]),
                            lower95=_value(result.lower95[i]), upper95=_value(result.upper95[i]))
              for i in range(len(result.mjd))]
    return ObjectForecast(band=band, model=result.model, branch=branch,
                          magnitude_kind="DIFFERENCE" if result.model == "spm" else "APPARENT",
                          reason=result.reason, points=points)


@strawberry.type(description="How far the latest classified detection fell from the forecast "
                             "made from the detections before it")
class Surprise:
    value: float = strawberry.field(description="standardised deviation: (forecast - observed) "
                                                "over the combined sigma, in magnitudes (flux "
                                                "for spm); positive = brighter than forecast; "
                                                "|value| > 3 = not predicted by the object's "
                                                "own history")
    mjd: float = strawberry.field(description="the detection's time [MJD]")
    band: str
    fid: int
    model: str = strawberry.field(description="spm, harmonic or drw")


def surprise_of(doc: Mapping[str, Any] | None) -> Surprise | None:
    if not doc:
        return None
    return Surprise(value=float(doc["value"]), mjd=float(doc["mjd"]), band=str(doc["band"]),
                    fid=int(doc["fid"]), model=str(doc["model"]))
