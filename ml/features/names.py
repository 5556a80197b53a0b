"""ALeRCE's light-curve feature names (2021 classifier), in one fixed order.

``_1`` is ZTF g (fid 1), ``_2`` is ZTF r (fid 2); names without a suffix are
multiband or per object.  The set equals ALeRCE's published feature table
(``feature_names_ztf_lc_classifier_100_objects_features.txt`` in the shared data),
which ``tests/test_ml_features.py`` checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from ml.features.models import HARMONICS_NAMES, MHPS_NAMES, SPM_NAMES

BANDS = {1: "g", 2: "r"}

TURBOFATS_NAMES = (
    "Amplitude", "AndersonDarling", "Autocor_length", "Beyond1Std", "Con", "Eta_e", "Gskew",
    "MaxSlope", "Mean", "Meanvariance", "MedianAbsDev", "MedianBRP", "PairSlopeTrend",
    "PercentAmplitude", "Q31", "Rcs", "Skew", "SmallKurtosis", "Std", "StetsonK", "Pvar",
    "ExcessVar", "SF_ML_amplitude", "SF_ML_gamma", "IAR_phi", "LinearTrend",
)
DETECTION_NAMES = ("delta_mag_fid", "delta_mjd_fid", "first_mag", "mean_mag", "min_mag",
                   "n_det", "n_neg", "n_pos", "positive_fraction")
NON_DETECTION_NAMES = ("n_non_det_before_fid", "max_diffmaglim_before_fid",
                       "median_diffmaglim_before_fid", "last_diffmaglim_before_fid",
                       "last_mjd_before_fid", "dmag_non_det_fid", "dmag_first_det_fid",
                       "n_non_det_after_fid", "max_diffmaglim_after_fid",
                       "median_diffmaglim_after_fid")
PERIOD_BAND_NAMES = ("Period_band", "delta_period", "Psi_CS", "Psi_eta")
GP_NAMES = ("GP_DRW_sigma", "GP_DRW_tau")

PER_BAND_NAMES = (*TURBOFATS_NAMES, "iqr", *DETECTION_NAMES, *NON_DETECTION_NAMES,
                  *SPM_NAMES, *MHPS_NAMES, *GP_NAMES, *PERIOD_BAND_NAMES, *HARMONICS_NAMES)
POWER_RATE_FACTORS = {"1/4": 0.25, "1/3": 1 / 3, "1/2": 0.5, "2": 2.0, "3": 3.0, "4": 4.0}
MULTIBAND_NAMES = ("Multiband_period", "PPE",
                   *(f"Power_rate_{k}" for k in POWER_RATE_FACTORS))
COLOUR_NAMES = ("g-r_max", "g-r_max_corr", "g-r_mean", "g-r_mean_corr")
OBJECT_NAMES = ("gal_l", "gal_b", "sgscore1", "rb")
#: AllWISE colours need a cross-match Nightjar does not have: always NaN
WISE_NAMES = ("W1-W2", "W2-W3", "r-W3", "r-W2", "g-W3", "g-W2")

FEATURE_NAMES: tuple[str, ...] = (
    *MULTIBAND_NAMES, *COLOUR_NAMES, *OBJECT_NAMES, *WISE_NAMES,
    *(f"{name}_{fid}" for name in PER_BAND_NAMES for fid in BANDS),
)


@dataclass(frozen=True)
class BandScheme:
    """A survey's bands as the extractor sees them, and its feature names.

    ``bands``: (fid, suffix) in wavelength order; per-band features are named
    ``{name}_{suffix}``.  ``colours``: the band pairs (bluer, redder) whose colours are
    features, named ``{a}-{b}_max`` / ``_mean`` from the difference magnitudes and
    ``_max_corr`` / ``_mean_corr`` from the corrected (ZTF) or apparent (LSST) ones.
    ``rb_threshold``: detections whose real-bogus score is below it are dropped (None:
    the score is a feature only).
    """

    survey: str
    bands: tuple[tuple[int, str], ...]
    colours: tuple[tuple[int, int], ...]
    band_names: dict[int, str]
    rb_threshold: float | None
    object_names: tuple[str, ...]
    extra_names: tuple[str, ...] = ()

    @property
    def fids(self) -> tuple[int, ...]:
        return tuple(fid for fid, _ in self.bands)

    def colour_names(self, a: int, b: int) -> tuple[str, str, str, str]:
        stem = f"{self.band_names[a]}-{self.band_names[b]}"
        return (f"{stem}_max", f"{stem}_max_corr", f"{stem}_mean", f"{stem}_mean_corr")

    @property
    def names(self) -> tuple[str, ...]:
        return (*MULTIBAND_NAMES,
                *(n for a, b in self.colours for n in self.colour_names(a, b)),
                *self.object_names, *self.extra_names,
                *(f"{name}_{suffix}" for name in PER_BAND_NAMES for _, suffix in self.bands))


#: ZTF: ALeRCE's 2021 names exactly (g = fid 1 -> ``_1``, r = fid 2 -> ``_2``)
ZTF_BANDS = BandScheme(survey="ztf", bands=((1, "1"), (2, "2")), colours=((1, 2),),
                       band_names=BANDS, rb_threshold=0.55, object_names=OBJECT_NAMES,
                       extra_names=WISE_NAMES)
#: LSST's six bands in wavelength order, with Nightjar's LSST fids (g r i z y = 1..5,
#: u = 6), suffixed by the band letter as ALeRCE's LSST extractor does; colours between
#: adjacent bands; the median ``reliability`` in place of rb, and no sgscore (Rubin
#: alerts carry no star/galaxy score) or AllWISE colours.
LSST_BANDS = BandScheme(
    survey="lsst", bands=((6, "u"), (1, "g"), (2, "r"), (3, "i"), (4, "z"), (5, "y")),
    colours=((6, 1), (1, 2), (2, 3), (3, 4), (4, 5)),
    band_names={6: "u", 1: "g", 2: "r", 3: "i", 4: "z", 5: "y"}, rb_threshold=None,
    object_names=("gal_l", "gal_b", "reliability"))
LSST_FEATURE_NAMES: tuple[str, ...] = LSST_BANDS.names
SCHEMES = {"ztf": ZTF_BANDS, "lsst": LSST_BANDS}
