// The light curve on uPlot (scales, axes, zoom by dragging) with points, error bars and
// upper limits drawn by a draw hook; clicking a point picks its epoch.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export const BAND_COLOURS = {
  "ZTF:g": "#1fa35b", "ZTF:r": "#e0304a", "ZTF:i": "#d6a800",
  "LSST:u": "#7b4dff", "LSST:g": "#2e9e2e", "LSST:r": "#c4301c", "LSST:i": "#f07f13",
  "LSST:z": "#a0527a", "LSST:y": "#6b7f8f",
};
export const KINDS = ["DIFFERENCE", "CORRECTED", "FORCED", "UPPER_LIMIT"];
export const KIND_LABELS = { DIFFERENCE: "difference", CORRECTED: "apparent", FORCED: "forced photometry", UPPER_LIMIT: "upper limits" };

/** x of a point: MJD, or phase in [0, 2) when folded at period [d]. */
function xOf(mjd, fold) {
  if (!fold) return mjd;
  const ph = ((mjd - fold.t0) / fold.period) % 1;
  return ph < 0 ? ph + 1 : ph;
}

/**
 * Series of points keyed survey:band:kind, with x and y in the chosen units.
 * flux: y = flux [nJy]; otherwise magnitude [mag].
 */
export function seriesOf(points, flux, fold) {
  const groups = new Map();
  for (const p of points) {
    const y = flux ? p.flux : p.mag;
    if (y === null || y === undefined || !Number.isFinite(y)) continue;
    const key = `${p.survey}:${p.band}:${p.kind}`;
    if (!groups.has(key)) groups.set(key, { key, survey: p.survey, band: p.band, kind: p.kind, pts: [] });
    let err = flux ? p.fluxErr : p.magErr;
    // ALeRCE's correction writes 100 mag as the error of an apparent magnitude it cannot
    // bound (sigmapsf_corr_ext): drawn without an error bar
    if (!flux && err !== null && err !== undefined && err >= 10) err = null;
    const x = xOf(p.mjd, fold);
    groups.get(key).pts.push({ x, y, err: err ?? null, p });
    if (fold) groups.get(key).pts.push({ x: x + 1, y, err: err ?? null, p });
  }
  return [...groups.values()];
}

function marker(ctx, kind, x, y, r, colour, isNew) {
  ctx.fillStyle = colour; ctx.strokeStyle = colour;
  ctx.beginPath();
  if (kind === "UPPER_LIMIT") { ctx.moveTo(x - r, y - r); ctx.lineTo(x + r, y - r); ctx.lineTo(x, y + r); ctx.closePath(); ctx.globalAlpha = 0.45; ctx.fill(); ctx.globalAlpha = 1; }
  else if (kind === "FORCED") { ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.lineWidth = 1.5; ctx.stroke(); }
  else if (kind === "CORRECTED") { ctx.rect(x - r, y - r, 2 * r, 2 * r); ctx.fill(); }
  else { ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.fill(); }
  if (isNew) { ctx.beginPath(); ctx.arc(x, y, r + 4, 0, 2 * Math.PI); ctx.lineWidth = 2; ctx.strokeStyle = "#ffcc00"; ctx.stroke(); }
}

/**
 * props: series (seriesOf), visible(key) -> bool, flux, fold, forecast ([{band, survey, points}]),
 * newKeys (Set of candids new since the page opened), picked (candid), onPick(point)
 */
export function LightCurvePlot({ series, visible, flux, fold, forecast, newKeys, picked, onPick, onDrawn }) {
  const box = useRef();
  const plot = useRef();
  const props = useRef();
  props.current = { series, visible, forecast, newKeys, picked, onPick, onDrawn, flux, fold };

  useEffect(() => {
    // the element, not the ref: a draw or resize queued before the page is left runs
    // after the ref is cleared
    const element = box.current;
    const width = Math.max(320, element.clientWidth || 800);
    const draw = (u) => {
      const { series: ss, visible: vis, forecast: fc, newKeys: nk, picked: pk } = props.current;
      const ctx = u.ctx, dpr = uPlot.pxRatio, r = 3.5 * dpr;
      ctx.save();
      ctx.beginPath(); ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height); ctx.clip();
      for (const f of fc || []) {  // forecast band: 95 % and 68 % intervals, then the mean
        const colour = BAND_COLOURS[`${f.survey}:${f.band}`] || "#888";
        for (const [lo, hi, alpha] of [["lower95", "upper95", 0.12], ["lower68", "upper68", 0.22]]) {
          const pts = f.points.filter((p) => p.valid && p[lo] !== null && p[hi] !== null);
          if (pts.length < 2) continue;
          ctx.beginPath();
          pts.forEach((p, i) => { const x = u.valToPos(p.mjd, "x", true), y = u.valToPos(p[lo], "y", true); i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
          [...pts].reverse().forEach((p) => ctx.lineTo(u.valToPos(p.mjd, "x", true), u.valToPos(p[hi], "y", true)));
          ctx.closePath(); ctx.globalAlpha = alpha; ctx.fillStyle = colour; ctx.fill(); ctx.globalAlpha = 1;
        }
        ctx.beginPath(); ctx.setLineDash([6 * dpr, 4 * dpr]); ctx.strokeStyle = colour; ctx.lineWidth = 1.5 * dpr;
        f.points.filter((p) => p.valid && p.magnitude !== null).forEach((p, i) => { const x = u.valToPos(p.mjd, "x", true), y = u.valToPos(p.magnitude, "y", true); i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
        ctx.stroke(); ctx.setLineDash([]);
      }
      for (const s of ss) {
        if (!vis(s)) continue;
        const colour = BAND_COLOURS[`${s.survey}:${s.band}`] || "#999";
        for (const pt of s.pts) {
          const x = u.valToPos(pt.x, "x", true), y = u.valToPos(pt.y, "y", true);
          if (pt.err !== null && s.kind !== "UPPER_LIMIT") {
            ctx.beginPath(); ctx.strokeStyle = colour; ctx.lineWidth = dpr;
            ctx.moveTo(x, u.valToPos(pt.y - pt.err, "y", true)); ctx.lineTo(x, u.valToPos(pt.y + pt.err, "y", true)); ctx.stroke();
          }
          marker(ctx, s.kind, x, y, r, colour, pt.p.candid !== null && nk && nk.has(String(pt.p.candid)));
          if (pk !== null && pk !== undefined && String(pt.p.candid) === String(pk)) {
            ctx.beginPath(); ctx.arc(x, y, r + 6, 0, 2 * Math.PI); ctx.lineWidth = 2 * dpr; ctx.strokeStyle = getComputedStyle(element).color; ctx.stroke();
          }
        }
      }
      ctx.restore();
    };
    const range = (axis) => () => {
      const { series: ss, visible: vis, forecast: fc, flux: fx } = props.current;
      let lo = Infinity, hi = -Infinity;
      for (const s of ss) if (vis(s)) for (const pt of s.pts) {
        const v = axis === "x" ? pt.x : pt.y, e = axis === "y" && pt.err && s.kind !== "UPPER_LIMIT" ? pt.err : 0;
        lo = Math.min(lo, v - e); hi = Math.max(hi, v + e);
      }
      for (const f of fc || []) for (const p of f.points) if (p.valid) {
        const v = axis === "x" ? p.mjd : p.magnitude;
        if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      }
      if (!Number.isFinite(lo)) return [0, 1];
      const pad = (hi - lo) * 0.05 || (axis === "y" && !fx ? 0.5 : 1);
      return [lo - pad, hi + pad];
    };
    const opts = {
      width, height: 360, mode: 2, legend: { show: false }, cursor: { drag: { x: true, y: true, uni: 20 }, points: { show: false } },
      scales: { x: { time: false, range: range("x") }, y: { range: range("y"), dir: props.current.flux ? 1 : -1 } },
      axes: [
        { label: props.current.fold ? "phase" : "MJD", stroke: "currentColor", grid: { stroke: "rgba(128,128,128,0.2)" },
          values: (u, splits, ax, space, incr) => splits.map((v) => v.toFixed(Math.max(0, Math.min(4, -Math.floor(Math.log10(incr || 1)))))) },
        { label: props.current.flux ? "flux [nJy]" : "magnitude [AB]", stroke: "currentColor", grid: { stroke: "rgba(128,128,128,0.2)" }, size: 60,
          values: (u, splits, ax, space, incr) => splits.map((v) => v.toFixed(Math.max(0, Math.min(3, -Math.floor(Math.log10(incr || 1)))))) },
      ],
      series: [{}, { label: "points", paths: () => null, points: { show: false } }],
      hooks: { draw: [draw] },
    };
    const started = performance.now();
    const u = new uPlot(opts, [null, [[0], [0]]], box.current);
    plot.current = u;
    box.current.__uplot = u;  // for scripts and tests: u.valToPos maps data to pixels
    props.current.onDrawn?.(performance.now() - started);
    const click = (e) => {
      const rect = u.over.getBoundingClientRect(), cx = e.clientX - rect.left, cy = e.clientY - rect.top;
      let best = null, bestD = 12 * 12;
      for (const s of props.current.series) {
        if (!props.current.visible(s)) continue;
        for (const pt of s.pts) {
          const dx = u.valToPos(pt.x, "x") - cx, dy = u.valToPos(pt.y, "y") - cy, d = dx * dx + dy * dy;
          if (d < bestD) { bestD = d; best = pt.p; }
        }
      }
      if (best) props.current.onPick?.(best);
    };
    u.over.addEventListener("click", click);
    let alive = true;  // and a resize after the plot is destroyed is ignored
    const resize = new ResizeObserver(() => { if (alive) u.setSize({ width: Math.max(320, element.clientWidth), height: 360 }); });
    resize.observe(element);
    return () => { alive = false; resize.disconnect(); u.destroy(); };
  }, [flux, !!fold]);

  useEffect(() => {  // new data, visibility, picks: rescale and redraw
    const u = plot.current;
    if (!u) return;
    const started = performance.now();
    u.setData([null, [[0], [0]]], true);
    props.current.onDrawn?.(performance.now() - started);
  });
  const shown = series.filter(visible).map((s) => s.key).join(" ");
  return <div ref={box} class="lc-plot" id="lightcurve" data-visible={shown} role="img"
    aria-label={`Light curve: ${series.filter(visible).map((s) => `${s.survey} ${s.band} ${KIND_LABELS[s.kind]} (${s.pts.length})`).join(", ") || "nothing shown"}`} />;
}

/** A periodogram strip: power against period; clicking it picks that period. */
export function PeriodogramPlot({ freqs, power, period, onPick }) {
  const box = useRef();
  useEffect(() => {
    const periods = Array.from(freqs, (f) => 1 / f).reverse(), pw = Array.from(power).reverse();
    const u = new uPlot({
      width: Math.max(320, box.current.clientWidth || 800), height: 160, legend: { show: false },
      scales: { x: { time: false, distr: 3 } },
      axes: [{ label: "period [d]", stroke: "currentColor" }, { label: "power", stroke: "currentColor", size: 50 }],
      series: [{}, { stroke: "#6aa9ff", width: 1, points: { show: false } }],
      cursor: { drag: { x: false, y: false } },
    }, [periods, pw], box.current);
    const click = () => { const i = u.cursor.idx; if (i !== null && i !== undefined) onPick(periods[i]); };
    u.over.addEventListener("click", click);
    return () => u.destroy();
  }, [freqs, power]);
  return <div ref={box} class="pg-plot" id="periodogram" aria-label={`Periodogram; chosen period ${period?.toFixed(5)} d`} role="img" />;
}
