// Units of the light-curve features (ALeRCE's lc_classifier names, Sánchez-Sáez et al.
// 2021, with Nightjar's LSST bands): the base name without its band suffix decides.
const UNITS = [
  [/^(Multiband_period|Period_band|delta_period|SPM_t0|SPM_tau_rise|SPM_tau_fall|GP_DRW_tau|delta_mjd_fid|last_mjd_before_fid|Autocor_length)$/, "d"],
  [/^(Amplitude|Mean|Std|MedianAbsDev|PercentAmplitude|Q31|iqr|mean_mag|min_mag|first_mag|delta_mag_fid|dmag_first_det_fid|dmag_non_det_fid|Harmonics_mag(_\d)?|last_diffmaglim_before_fid|max_diffmaglim_(before|after)_fid|median_diffmaglim_(before|after)_fid|SF_ML_amplitude|[ugrizW]\d?-[rizyW]\d?(_max|_mean)?(_corr)?|GP_DRW_sigma)$/, "mag"],
  [/^(Harmonics_mse)$/, "mag²"],
  [/^(Harmonics_phase(_\d)?)$/, "rad"],
  [/^(LinearTrend|MaxSlope)$/, "mag/d"],
  [/^(SPM_A)$/, "flux (normalised)"],
  [/^(gal_l|gal_b)$/, "deg"],
  [/^(n_det|n_neg|n_pos|n_non_det_(before|after)_fid|MHPS_non_zero|MHPS_PN_flag)$/, "count"],
];

/** The unit of a feature, or "" for a dimensionless one (ratios, shape statistics, scores). */
export function featureUnit(name) {
  const base = name.replace(/_(?:[ugrizy]|[1-6]|g_r|r_i|[ugrizy]_[ugrizy]|\d_\d)$/, "");
  for (const [re, unit] of UNITS) if (re.test(base) || re.test(name)) return unit;
  return "";
}
