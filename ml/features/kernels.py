"""Compiled inner loops of the feature extractor (numba, cached on disk).

Each kernel is the loop of one feature family that Python interprets too slowly for
the live stream: the Kalman filters of IAR_phi and of the damped random walk, Brent's
bounded minimisation around the first, and the supernova parametric model's bounded
Levenberg-Marquardt fit.  The callers in :mod:`ml.features.variability` and
:mod:`ml.features.models` keep the public signatures; ``tests/test_ml_features.py``
checks these kernels against the library definitions (scipy, celerite2).

The first call of each kernel in a fresh checkout compiles it (a few seconds); numba
caches the machine code next to this file (``__pycache__``) for later processes.
``error_model="numpy"``: a division by zero gives inf or NaN as in numpy (which the
callers' checks expect), not Python's ZeroDivisionError.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

GOLDEN = 0.5 * (3.0 - math.sqrt(5.0))
SQRT_EPS = math.sqrt(2.2e-16)
#: SPM's sigmoid joining plateau and decline is 3 days wide (ALeRCE)
SPM_TRANSITION_DAYS = 3.0
#: the DRW fit moves ln a and ln c by at most this much per step
MAX_LOG_STEP = 1.0


@njit(cache=True, error_model="numpy")
def iar_loglike(phi: float, t: np.ndarray, y: np.ndarray, yerr: np.ndarray) -> float:
    """Negative (scaled) log-likelihood of an irregular AR(1) process (Eyheramendy et
    al. 2018) by its Kalman filter; ``t`` in days, ``y`` and ``yerr`` standardised."""
    if not (0.0 <= phi < 1.0):
        return 1e10
    n = len(y)
    sighat = 1.0
    xhat = 0.0
    sum_lambda = 0.0
    sum_error = 0.0
    for i in range(n - 1):
        delta = t[i + 1] - t[i]
        lam = sighat + yerr[i + 1] * yerr[i + 1]
        if lam <= 0.0 or lam != lam:
            return 1e10
        p_i = phi ** delta
        theta = p_i * sighat
        resid = y[i] - xhat
        sum_lambda += math.log(lam)
        sum_error += resid * resid / lam
        xhat = p_i * xhat + theta / lam * resid
        sighat = p_i * sighat * p_i + (1.0 - phi ** (2.0 * delta)) - theta / lam * theta
    out = (sum_lambda + sum_error) / n
    return out if out == out else 1e10


@njit(cache=True, error_model="numpy")
def iar_fit(t: np.ndarray, y: np.ndarray, yerr: np.ndarray, xatol: float,
            max_evaluations: int) -> float:
    """The phi in [0, 1] minimising :func:`iar_loglike`, by Brent's bounded minimisation
    (golden sections and parabolic steps; Brent 1973, ch. 5), to ``xatol``."""
    a, b = 0.0, 1.0
    x = w = v = a + GOLDEN * (b - a)
    fx = fw = fv = iar_loglike(x, t, y, yerr)
    d = e = 0.0
    evaluations = 1
    while evaluations < max_evaluations:
        xm = 0.5 * (a + b)
        tol1 = SQRT_EPS * abs(x) + xatol / 3.0
        tol2 = 2.0 * tol1
        if abs(x - xm) <= tol2 - 0.5 * (b - a):
            break
        golden = True
        if abs(e) > tol1:  # try a parabola through x, w, v
            r = (x - w) * (fx - fv)
            q = (x - v) * (fx - fw)
            p = (x - v) * q - (x - w) * r
            q = 2.0 * (q - r)
            if q > 0.0:
                p = -p
            q = abs(q)
            previous_e = e
            e = d
            if abs(p) < abs(0.5 * q * previous_e) and q * (a - x) < p < q * (b - x):
                d = p / q
                u = x + d
                if (u - a) < tol2 or (b - u) < tol2:
                    d = tol1 if xm >= x else -tol1
                golden = False
        if golden:
            e = (a - x) if x >= xm else (b - x)
            d = GOLDEN * e
        u = x + d if abs(d) >= tol1 else x + (tol1 if d >= 0.0 else -tol1)
        fu = iar_loglike(u, t, y, yerr)
        evaluations += 1
        if fu <= fx:
            if u >= x:
                a = x
            else:
                b = x
            v, fv = w, fw
            w, fw = x, fx
            x, fx = u, fu
        else:
            if u < x:
                a = u
            else:
                b = u
            if fu <= fw or w == x:
                v, fv = w, fw
                w, fw = u, fu
            elif fu <= fv or v in (x, w):
                v, fv = u, fu
    return x


@njit(cache=True, error_model="numpy")
def drw_nll_grad(log_a: float, log_c: float, t: np.ndarray, y: np.ndarray,
                 var: np.ndarray) -> tuple[float, float, float]:
    """Negative log-likelihood of a damped random walk (covariance a exp(-c |dt|)) plus
    white noise ``var``, and its derivatives in ln a and ln c: the O(N) Kalman filter of
    the Ornstein-Uhlenbeck process with the derivative recursions carried along.

    ``t`` sorted (days), ``y`` centred (mag), ``var`` (mag^2).
    """
    a = math.exp(log_a)
    c = math.exp(log_c)
    m = 0.0
    p = a  # stationary prior variance
    dm_a = 0.0
    dm_c = 0.0
    dp_a = a
    dp_c = 0.0
    nll = 0.0
    g_a = 0.0
    g_c = 0.0
    prev = t[0]
    for i in range(len(t)):
        dt = t[i] - prev
        prev = t[i]
        if dt > 0:
            phi = math.exp(-c * dt)
            dphi_c = -c * dt * phi
            q = 1.0 - phi * phi
            dm_a, dm_c = phi * dm_a, dphi_c * m + phi * dm_c
            m *= phi
            dp_a = phi * phi * dp_a + a * q
            dp_c = 2 * phi * dphi_c * p + phi * phi * dp_c - 2 * a * phi * dphi_c
            p = phi * phi * p + a * q
        vi = var[i]
        s = p + vi
        if s <= 0:
            return 1e25, 0.0, 0.0
        r = y[i] - m
        nll += 0.5 * (math.log(2 * math.pi * s) + r * r / s)
        g_a += 0.5 * (dp_a / s - 2 * r * dm_a / s - r * r * dp_a / (s * s))
        g_c += 0.5 * (dp_c / s - 2 * r * dm_c / s - r * r * dp_c / (s * s))
        k = p / s
        dk_a = dp_a * vi / (s * s)
        dk_c = dp_c * vi / (s * s)
        dm_a += dk_a * r - k * dm_a
        dm_c += dk_c * r - k * dm_c
        m += k * r
        shrink = vi * vi / (s * s)
        dp_a *= shrink
        dp_c *= shrink
        p = p * vi / s
    return nll, g_a, g_c


@njit(cache=True, error_model="numpy")
def _spm_point(ti: float, a: float, t0: float, gamma: float, beta: float, t_rise: float,
               t_fall: float, jac: np.ndarray) -> float:
    """SPM flux at one time and (into ``jac``) its six partial derivatives."""
    t1 = t0 + gamma
    dt0 = ti - t0
    sig = 1.0 / (1.0 + math.exp(min(-(ti - t1) / SPM_TRANSITION_DAYS, 700.0)))
    e_rise = math.exp(min(-dt0 / t_rise, 700.0))
    r = 1.0 / (1.0 + e_rise)
    e_fall = math.exp(min(-(ti - t1) / t_fall, 700.0))
    plateau = 1.0 - beta * dt0 / gamma
    p = (1.0 - beta) * e_fall * sig + plateau * (1.0 - sig)
    # t1 = t0 + gamma moves the decline and the sigmoid together
    dp_dt1 = ((1.0 - beta) * e_fall / t_fall * sig
              + ((1.0 - beta) * e_fall - plateau) * (-sig * (1.0 - sig) / SPM_TRANSITION_DAYS))
    dr_dt0 = -r * r * e_rise / t_rise
    dr_drise = -r * r * e_rise * dt0 / (t_rise * t_rise)
    jac[0] = p * r
    jac[1] = a * ((dp_dt1 + (1.0 - sig) * beta / gamma) * r + p * dr_dt0)
    jac[2] = a * (dp_dt1 + (1.0 - sig) * beta * dt0 / (gamma * gamma)) * r
    jac[3] = a * (-e_fall * sig - (1.0 - sig) * dt0 / gamma) * r
    jac[4] = a * p * dr_drise
    jac[5] = a * (1.0 - beta) * sig * e_fall * (ti - t1) / (t_fall * t_fall) * r
    for k in range(6):
        if not math.isfinite(jac[k]):
            jac[k] = 0.0
    return a * p * r


@njit(cache=True, error_model="numpy")
def _spm_residuals(x: np.ndarray, t: np.ndarray, flux: np.ndarray, resid: np.ndarray,
                   jac: np.ndarray) -> float:
    """Residuals model - flux and the Jacobian at ``x``; returns the sum of squares."""
    cost = 0.0
    for i in range(len(t)):
        resid[i] = _spm_point(t[i], x[0], x[1], x[2], x[3], x[4], x[5], jac[i]) - flux[i]
        cost += resid[i] * resid[i]
    return cost


@njit(cache=True, error_model="numpy")
def _solve(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve a small symmetric positive-definite system by Cholesky (NaN when singular)."""
    n = len(rhs)
    low = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1):
            s = matrix[i, j]
            for k in range(j):
                s -= low[i, k] * low[j, k]
            if i == j:
                if s <= 0.0:
                    return np.full(n, np.nan)
                low[i, i] = math.sqrt(s)
            else:
                low[i, j] = s / low[j, j]
    z = np.empty(n)
    for i in range(n):
        s = rhs[i]
        for k in range(i):
            s -= low[i, k] * z[k]
        z[i] = s / low[i, i]
    out = np.empty(n)
    for i in range(n - 1, -1, -1):
        s = z[i]
        for k in range(i + 1, n):
            s -= low[k, i] * out[k]
        out[i] = s / low[i, i]
    return out


@njit(cache=True, error_model="numpy")
def spm_fit(t: np.ndarray, flux: np.ndarray, p0: np.ndarray, lower: np.ndarray,
            upper: np.ndarray, rtol: float, max_iterations: int) -> tuple[np.ndarray, float]:
    """Least-squares SPM parameters within bounds, by projected Levenberg-Marquardt.

    Unweighted, as ALeRCE's ``curve_fit``: minimises sum (model - flux)^2 over
    (A, t0, gamma, beta, t_rise, t_fall) within ``lower``/``upper``.  A parameter at a
    bound whose gradient points outward is held there for the step; a step that would
    leave the box is shortened to its edge (projected when that leaves almost nothing);
    the damping follows Marquardt's scaled diagonal.  Stops when a lightly damped
    accepted step lowers the cost by less than ``rtol`` of it, or after
    ``max_iterations`` steps.  Returns the parameters and the final sum of squares
    (NaN if non-finite).
    """
    n = len(t)
    x = np.minimum(np.maximum(p0.copy(), lower), upper)
    resid = np.empty(n)
    jac = np.empty((n, 6))
    trial_resid = np.empty(n)
    trial_jac = np.empty((n, 6))
    cost = _spm_residuals(x, t, flux, resid, jac)
    if not math.isfinite(cost):
        return x, math.nan
    damping = 100.0  # cautious first steps: ALeRCE's first guess can be far off
    for _ in range(max_iterations):
        grad = jac.T @ resid
        normal = jac.T @ jac
        free = np.ones(6, dtype=np.bool_)
        for k in range(6):
            if (x[k] <= lower[k] and grad[k] > 0.0) or (x[k] >= upper[k] and grad[k] < 0.0):
                free[k] = False
        idx = np.flatnonzero(free)
        if len(idx) == 0:
            break
        accepted = False
        used = damping
        while damping < 1e12:
            system = np.empty((len(idx), len(idx)))
            for i in range(len(idx)):
                for j in range(len(idx)):
                    system[i, j] = normal[idx[i], idx[j]]
                system[i, i] += damping * max(normal[idx[i], idx[i]], 1e-12)
            step = _solve(system, -grad[idx])
            # shorten the step to stay inside the box (a clipped long step lands in a
            # corner far from the path); project only when the box allows almost none
            fraction = 1.0
            for i in range(len(idx)):
                k = idx[i]
                if step[i] > 0.0 and x[k] + step[i] > upper[k]:
                    fraction = min(fraction, (upper[k] - x[k]) / step[i])
                elif step[i] < 0.0 and x[k] + step[i] < lower[k]:
                    fraction = min(fraction, (lower[k] - x[k]) / step[i])
            if fraction < 1e-3:
                fraction = 1.0
            trial = x.copy()
            for i in range(len(idx)):
                k = idx[i]
                trial[k] = min(max(x[k] + fraction * step[i], lower[k]), upper[k])
            trial_cost = _spm_residuals(trial, t, flux, trial_resid, trial_jac)
            if math.isfinite(trial_cost) and trial_cost < cost:
                accepted = True
                used = damping
                break
            damping *= 4.0
        if not accepted:
            break
        decrease = cost - trial_cost
        x = trial
        cost = trial_cost
        resid[:] = trial_resid
        jac[:, :] = trial_jac
        damping = max(damping / 3.0, 1e-9)
        # a small decrease from a heavily damped (short, gradient-like) step is not
        # convergence: only a near Gauss-Newton step that gains little ends the fit
        if decrease <= rtol * (cost + decrease) and used <= 1.0:
            break
    return x, cost


@njit(cache=True, error_model="numpy")
def _drw_objective(x: np.ndarray, t: np.ndarray, y: np.ndarray,
                   var: np.ndarray) -> tuple[float, np.ndarray]:
    grad = np.empty(2)
    if abs(x[0]) >= 300.0 or abs(x[1]) >= 300.0:  # far outside: push back
        grad[0] = 1e3 * np.sign(x[0])
        grad[1] = 1e3 * np.sign(x[1])
        return 1e25, grad
    nll, grad[0], grad[1] = drw_nll_grad(x[0], x[1], t, y, var)
    return nll, grad


@njit(cache=True, error_model="numpy")
def drw_fit(t: np.ndarray, y: np.ndarray, var: np.ndarray, gtol: float, ftol: float,
            max_iterations: int) -> np.ndarray:
    """(ln a, ln c) maximising the damped-random-walk likelihood.

    The likelihood can have two optima (a short-tau "white noise" one and a long-tau
    "random walk" one), and which one a single descent reaches depends on its path; so
    the best of three starts is kept: ALeRCE's (0, 0) and tau = e^6 d and e^-3 d.
    """
    best = _drw_descent(np.zeros(2), t, y, var, gtol, ftol, max_iterations)
    best_f = _drw_objective(best, t, y, var)[0]
    for log_c in (-6.0, 3.0):
        start = np.zeros(2)
        start[1] = log_c
        x = _drw_descent(start, t, y, var, gtol, ftol, max_iterations)
        f = _drw_objective(x, t, y, var)[0]
        if f < best_f:
            best, best_f = x, f
    return best


@njit(cache=True, error_model="numpy")
def _drw_descent(x: np.ndarray, t: np.ndarray, y: np.ndarray, var: np.ndarray,
                 gtol: float, ftol: float, max_iterations: int) -> np.ndarray:
    """One BFGS descent from ``x`` with a backtracking Armijo line search (two
    parameters: no need for limited memory).  Stops as L-BFGS-B's defaults do: when
    the largest gradient component is below ``gtol`` or a full step lowers the
    objective by less than ``ftol`` of its size."""
    f, g = _drw_objective(x, t, y, var)
    inv_hessian = np.eye(2)
    for _ in range(max_iterations):
        if max(abs(g[0]), abs(g[1])) <= gtol:
            break
        direction = -(inv_hessian @ g)
        slope = direction @ g
        if slope >= 0.0:  # not a descent direction: restart from steepest descent
            inv_hessian = np.eye(2)
            direction = -g
            slope = direction @ g
        # a step moves ln a and ln c by at most MAX_LOG_STEP: a long quasi-Newton step
        # can leap onto the likelihood's flat plateaus (a -> 0 or tau -> infinity)
        size = max(abs(direction[0]), abs(direction[1]))
        step = MAX_LOG_STEP / size if size > MAX_LOG_STEP else 1.0
        first_step = step
        accepted = False
        for _search in range(60):
            trial = x + step * direction
            f_new, g_new = _drw_objective(trial, t, y, var)
            if f_new <= f + 1e-4 * step * slope:
                accepted = True
                break
            step *= 0.5
        if not accepted:
            break
        s = trial - x
        yk = g_new - g
        decrease = f - f_new
        x, f, g = trial, f_new, g_new
        sy = s @ yk
        if sy > 1e-12:
            rho = 1.0 / sy
            a = np.eye(2) - rho * np.outer(s, yk)
            inv_hessian = a @ inv_hessian @ a.T + rho * np.outer(s, s)
        # a tiny gain from a step the line search had to shorten is not convergence
        if decrease <= ftol * max(abs(f), abs(f + decrease), 1.0) and step == first_step:
            break
    return x


@njit(cache=True, error_model="numpy")
def mexican_hat_sums(time: np.ndarray, values: np.ndarray, sigma1: float, sigma2: float,
                     half: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                           np.ndarray]:
    """Gaussian-weighted sums around each point at two widths (MHPS's smoothing).

    For each point i, over the points j with |t_j - t_i| < ``half`` (days): the sums of
    exp(-dt^2 / 2 sigma^2) (the filter applied to ones) and of those weights times
    ``values``, for ``sigma1`` and ``sigma2``, and how many points lie within two
    thirds of ``half``.  Unnormalised; the caller divides by the kernels' integrals.
    """
    n = len(time)
    ones1 = np.zeros(n)
    ones2 = np.zeros(n)
    sum1 = np.zeros(n)
    sum2 = np.zeros(n)
    support = np.zeros(n)
    inv1 = 1.0 / (2.0 * sigma1 * sigma1)
    inv2 = 1.0 / (2.0 * sigma2 * sigma2)
    near = half * 2.0 / 3.0
    for i in range(n):
        for j in range(n):
            dt = time[j] - time[i]
            if -half < dt < half:
                w1 = math.exp(-dt * dt * inv1)
                w2 = math.exp(-dt * dt * inv2)
                ones1[i] += w1
                ones2[i] += w2
                sum1[i] += w1 * values[j]
                sum2[i] += w2 * values[j]
                if abs(dt) <= near:
                    support[i] += 1.0
    return ones1, ones2, sum1, sum2, support


@njit(cache=True, error_model="numpy")
def explained_fraction(s1: np.ndarray, s2: np.ndarray, sy: np.ndarray,
                       wvar: float) -> np.ndarray:
    """Fraction of a band's weighted variance explained by a mean plus one sinusoid at
    each trial frequency, from the weighted sums of exp(i w t), exp(2i w t) and
    y exp(i w t) (generalised Lomb-Scargle closed form, Zechmeister & Kürster 2009).

    Clipped to [0, 1 - 1e-12]; 0 where the fit is degenerate (NaN).
    """
    out = np.zeros(len(s1))
    if wvar <= 0.0:
        return out
    top = 1.0 - 1e-12
    for k in range(len(s1)):
        c = s1[k].real
        s = s1[k].imag
        cc = 0.5 * (1.0 + s2[k].real) - c * c
        ss = 0.5 * (1.0 - s2[k].real) - s * s
        cs = 0.5 * s2[k].imag - c * s
        yc = sy[k].real
        ys = sy[k].imag
        det = cc * ss - cs * cs
        frac = (ss * yc * yc + cc * ys * ys - 2.0 * cs * yc * ys) / (det * wvar)
        if frac != frac:
            frac = 0.0
        out[k] = min(max(frac, 0.0), top)
    return out


#: order of :func:`moment_statistics`' output
MOMENT_NAMES = ("Mean", "Std", "Meanvariance", "Skew", "SmallKurtosis", "Rcs", "Con",
                "Beyond1Std", "StetsonK", "ExcessVar", "chi2", "Eta_e", "MaxSlope",
                "LinearTrend", "PairSlopeTrend")


@njit(cache=True, error_model="numpy")
def moment_statistics(t: np.ndarray, mag: np.ndarray, err: np.ndarray) -> np.ndarray:
    """The moment- and difference-based turbo-fats statistics of one band in one pass
    (definitions in :mod:`ml.features.variability`, which documents each; ``chi2`` is
    Pvar's sum of squared standardised deviations).  Order: :data:`MOMENT_NAMES`.
    At least two points; NaN where a statistic is undefined."""
    n = len(mag)
    out = np.full(len(MOMENT_NAMES), np.nan)
    mean = 0.0
    for x in mag:
        mean += x
    mean /= n
    m2 = m3 = m4 = 0.0
    for x in mag:
        d = x - mean
        m2 += d * d
        m3 += d * d * d
        m4 += d * d * d * d
    var = m2 / n
    std = math.sqrt(var)
    out[0] = mean
    out[1] = std
    out[2] = std / mean
    if var > 0:
        out[3] = (m3 / n) / var ** 1.5
        if n >= 4:
            s4 = m4 / (var * var)
            out[4] = (n * (n + 1) / ((n - 1) * (n - 2) * (n - 3)) * s4
                      - 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
        cum = lo = hi = 0.0
        for x in mag:
            cum += (x - mean) / (n * std)
            lo = min(lo, cum)
            hi = max(hi, cum)
        out[5] = hi - lo
    if n < 3:
        out[6] = 0.0
    else:
        runs = 0
        for i in range(n - 2):
            if (abs(mag[i] - mean) > 2.0 * std and abs(mag[i + 1] - mean) > 2.0 * std
                    and abs(mag[i + 2] - mean) > 2.0 * std):
                runs += 1
        out[6] = runs / (n - 2)
    wsum = wmag = 0.0
    for i in range(n):
        w = 1.0 / (err[i] * err[i])
        wsum += w
        wmag += w * mag[i]
    wmean = wmag / wsum
    ss = 0.0
    for x in mag:
        ss += (x - wmean) ** 2
    wstd = math.sqrt(ss / (n - 1))
    beyond = 0
    abs_delta = sq_delta = 0.0
    scale = math.sqrt(n / (n - 1))
    excess = chi2 = 0.0
    for i in range(n):
        if abs(mag[i] - wmean) > wstd:
            beyond += 1
        delta = scale * (mag[i] - wmean) / err[i]
        abs_delta += abs(delta)
        sq_delta += delta * delta
        d = mag[i] - mean
        excess += d * d - err[i] * err[i]
        chi2 += d * d / (err[i] * err[i])
    out[7] = beyond / n
    if sq_delta > 0:
        out[8] = abs_delta / math.sqrt(sq_delta) / math.sqrt(n)
    out[9] = excess / (n * mean * mean)
    out[10] = chi2
    increasing = True
    wdt = wdm = 0.0
    slope = -1.0
    for i in range(n - 1):
        dt = t[i + 1] - t[i]
        dm = mag[i + 1] - mag[i]
        if dt <= 0:
            increasing = False
        else:
            slope = max(slope, abs(dm) / dt)
            w = 1.0 / (dt * dt)
            wdt += w
            wdm += w * dm * dm
    if increasing and var > 0:
        out[11] = wdm / wdt / var
    if slope >= 0:
        out[12] = slope
    tmean = 0.0
    for x in t:
        tmean += x
    tmean /= n
    denom = num = 0.0
    for i in range(n):
        dt = t[i] - tmean
        denom += dt * dt
        num += dt * (mag[i] - mean)
    if denom != 0:
        out[13] = num / denom
    up = down = 0
    for i in range(max(0, n - 30), n - 1):
        if mag[i + 1] - mag[i] > 0:
            up += 1
        else:
            down += 1
    out[14] = (up - down) / 30.0
    return out


@njit(cache=True, error_model="numpy")
def aov_statistics(s1: np.ndarray, s2: np.ndarray, sy: np.ndarray, wvar: np.ndarray,
                   points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-harmonic AoV statistics per band and pooled over bands, at every frequency.

    ``s1``, ``s2``, ``sy``: (bands x frequencies) weighted sums of exp(i w t),
    exp(2i w t) and y exp(i w t); ``wvar``: each band's weighted variance; ``points``:
    each band's number of points.  Per band, (d2 / d1) f / (1 - f) with f the explained
    fraction (:func:`explained_fraction`), d1 = 2, d2 = n - 3; pooled, the explained
    variances of all bands in their own weighted units over the unexplained ones
    (P4J's multiband MHAOV).  A degenerate pooled value is 0.
    """
    n_bands, n_freq = s1.shape
    per_band = np.empty((n_bands, n_freq))
    pooled = np.zeros(n_freq)
    d1 = 2.0
    d2_sum = 0.0
    wvar_sum = 0.0
    for b in range(n_bands):
        d2 = points[b] - d1 - 1.0
        d2_sum += d2
        wvar_sum += wvar[b]
        frac = explained_fraction(s1[b], s2[b], sy[b], wvar[b])
        for k in range(n_freq):
            per_band[b, k] = (d2 / d1) * frac[k] / (1.0 - frac[k])
            pooled[k] += frac[k] * wvar[b]
    for k in range(n_freq):
        value = d2_sum * pooled[k] / (d1 * (wvar_sum - pooled[k]))
        pooled[k] = value if math.isfinite(value) else 0.0
    return pooled, per_band
