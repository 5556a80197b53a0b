"""ALeRCE's light-curve feature names (2021 classifier), in one fixed order.

``_1`` is ZTF g (fid 1), ``_2`` is ZTF r (fid 2); names without a suffix are
multiband or per object.  The set equals ALeRCE's published feature table
(``feature_names_ztf_lc_classifier_100_objects_features.txt`` in the shared data),
which ``tests/test_ml_features.py`` checks.
"""

from __future__ import annotations

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
