// The object page: everything Nightjar knows about one object, kept up to date while open.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { gql, onConnection, subscribe, connection } from "./api.js";
import { decToDms, galactic, isoOfMjd, periodogram, raToHms } from "./astro.js";
import { BAND_COLOURS, KINDS, KIND_LABELS, LightCurvePlot, PeriodogramPlot, seriesOf } from "./lightcurve.jsx";
import { BASE, fmt, Link, message, navigate, objectPath } from "./nav.jsx";
import { SkyView } from "./sky.jsx";
import { Stamps, stampUrl } from "./stamps.jsx";
import { featureUnit } from "./units.js";

export const OBJECT_QUERY = `query ObjectPage($oid: String!) {
  object(oid: $oid) {
    oid survey ndet firstmjd lastmjd meanra meandec sigmara sigmadec stellar corrected
    magstats { band ndet magmin magmax magmean firstmjd lastmjd }
    counterparts { oid survey separation }
    tns { name type redshift discoveryDate reportingGroup distanceArcsec }
    probabilities { classifierName classifierVersion className probability ranking }
    classificationHistory { mjd classifierName classifierVersion probabilities { className probability } }
    features { name value }
    anomaly { score rawScore modelName modelVersion mjd ndet bogus topFeatures { name value contribution } history { mjd score } }
    surprise { value mjd band model }
    lightcurve(surveys: [ZTF, LSST]) { mjd band fid kind mag magErr candid survey oid flux fluxErr isdiffpos }
    stamps { candid mjd fid kinds }
    xmatch { catalog sourceId ra dec distanceArcsec }
    labels { label user created comment candid }
    tnsReports { reportId status objname sent }
    downloads { lightcurveCsv lightcurveVotable findingChart }
  }
}`;

const FORECAST_QUERY = `query Forecast($oid: String!, $band: String!, $mjd: [Float!]!) {
  object(oid: $oid) { forecast(band: $band, mjd: $mjd) { band model magnitudeKind reason
    points { mjd valid magnitude lower68 upper68 lower95 upper95 } } }
}`;

const LABEL_MUTATION = `mutation Vet($oid: String!, $label: String!, $candid: BigInt) { addLabel(oid: $oid, label: $label, candid: $candid) { label user created } }`;
const ANOMALY_MUTATION = `mutation Anomaly($oid: String!, $label: AnomalyLabel!) { labelAnomaly(oid: $oid, label: $label) { label labels modelVersion } }`;

/** Vetting labels and their keys: ALeRCE SN Hunter's, then the anomaly labels. */
export const VETTING = [
  { key: "s", label: "POSSIBLE_SN", text: "Possible SN", kind: "label" },
  { key: "n", label: "NOT_SN", text: "Not SN", kind: "label" },
  { key: "b", label: "BOGUS", text: "Bogus", kind: "label" },
  { key: "a", label: "ANOMALY", text: "Anomaly", kind: "anomaly" },
  { key: "o", label: "NOT_ANOMALY", text: "Not anomaly", kind: "anomaly" },
  { key: "x", label: "ARTEFACT", text: "Artefact", kind: "anomaly" },
];

function links(o) {
  const { oid, meanra: ra, meandec: dec } = o;
  const c = `${ra.toFixed(6)} ${dec >= 0 ? "+" : ""}${dec.toFixed(6)}`;
  const e = encodeURIComponent;
  const out = [];
  if (o.survey === "ZTF") {
    out.push(["ALeRCE", `https://alerce.online/object/${e(oid)}`], ["Fink", `https://fink-portal.org/${e(oid)}`],
      ["Lasair", `https://lasair-ztf.lsst.ac.uk/objects/${e(oid)}/`], ["ANTARES", `https://antares.noirlab.edu/loci?query=${e(JSON.stringify({ currentPage: 1, filters: [{ type: "query_string", field: { query: `*${oid}*`, fields: ["properties.ztf_object_id"] }, value: null, text: `ID Lookup: ${oid}` }] }))}`]);
  } else {
    out.push(["ALeRCE", `https://alerce.online/?ra=${ra}&dec=${dec}&radius=2`], ["Fink", `https://lsst.fink-portal.org/${e(oid)}`],
      ["Lasair", `https://lasair.lsst.ac.uk/objects/${e(oid)}/`], ["ANTARES", `https://antares.noirlab.edu/loci?query=${e(JSON.stringify({ currentPage: 1, filters: [{ type: "sky_distance", field: { distance: 0.00055, htm16: null, ra, dec }, text: `Cone ${c}` }] }))}`]);
  }
  out.push(["TNS", `https://www.wis-tns.org/search?ra=${ra}&decl=${dec}&radius=5&coords_unit=arcsec`],
    ["SIMBAD", `https://simbad.cds.unistra.fr/simbad/sim-coo?Coord=${e(c)}&Radius=5&Radius.unit=arcsec`],
    ["NED", `https://ned.ipac.caltech.edu/conesearch?search_type=Near%20Position%20Search&ra=${ra}d&dec=${dec}d&radius=0.0833`],
    ["Legacy Surveys", `https://www.legacysurvey.org/viewer?ra=${ra}&dec=${dec}&layer=ls-dr10&zoom=16&mark=${ra},${dec}`],
    ["VizieR", `https://vizier.cds.unistra.fr/viz-bin/VizieR-4?-c=${e(c)}&-c.rs=5`]);
  return out;
}

function Header({ o, newCount, onMarkSeen }) {
  const [l, b] = galactic(o.meanra, o.meandec);
  return (
    <header class="obj-header panel">
      <h1><span id="object-id">{o.oid}</span> <span class={`badge ${o.survey}`}>{o.survey}</span>
        {o.tns && <span class="badge tns" title={`TNS, ${fmt(o.tns.distanceArcsec, 2)}″ away`}>{o.tns.name}{o.tns.type ? ` · ${o.tns.type}` : ""}</span>}
        {newCount > 0 && <button type="button" class="badge new" id="new-marker" onClick={onMarkSeen} title="detections stored since the page opened (click to mark seen)">{newCount} new since opened</button>}
      </h1>
      <dl class="facts">
        <dt>RA, Dec</dt><dd id="pos-hms">{raToHms(o.meanra)} {decToDms(o.meandec)}</dd>
        <dt>[deg]</dt><dd id="pos-deg">{o.meanra.toFixed(6)} {o.meandec >= 0 ? "+" : ""}{o.meandec.toFixed(6)}</dd>
        <dt>l, b</dt><dd>{l.toFixed(4)}° {b.toFixed(4)}°</dd>
        <dt>Detections</dt><dd id="ndet">{o.ndet} ({o.magstats.map((m) => `${m.band} ${m.ndet}`).join(", ")})</dd>
        <dt>First, last</dt><dd>{isoOfMjd(o.firstmjd)} – {isoOfMjd(o.lastmjd)}</dd>
        {o.tns && <><dt>TNS</dt><dd>{o.tns.name} {o.tns.type || "(unclassified)"}{o.tns.redshift !== null ? `, z = ${o.tns.redshift}` : ""}, reported by {o.tns.reportingGroup} on {o.tns.discoveryDate}</dd></>}
        <dt>Counterparts</dt><dd>{o.counterparts.length ? o.counterparts.map((c) => <span key={c.oid}><Link href={objectPath(c.oid)}>{c.oid}</Link> ({c.survey}, {fmt(c.separation, 2)}″) </span>) : "none in the other survey"}</dd>
      </dl>
    </header>
  );
}

function Probabilities({ rows, history }) {
  const by = {};
  for (const r of rows) (by[r.classifierName] ||= []).push(r);
  const [shown, setShown] = useState(null);
  const classifiers = Object.keys(by).sort();
  if (!classifiers.length) return <p>Not classified yet.</p>;
  const hist = history.filter((h) => h.classifierName === (shown || classifiers[0]));
  return (
    <div class="probs">
      {classifiers.map((name) => (
        <figure key={name} class="prob-group">
          <figcaption>{name} <small>{by[name][0].classifierVersion}</small></figcaption>
          {by[name].sort((a, b) => a.ranking - b.ranking).map((r) => (
            <div key={r.className} class="bar-row">
              <span class="bar-label">{r.className}</span>
              <span class="bar" role="meter" aria-valuemin="0" aria-valuemax="1" aria-valuenow={r.probability.toFixed(4)} aria-label={`${name} ${r.className}`}>
                <span style={`width:${(r.probability * 100).toFixed(1)}%`} /></span>
              <span class="bar-value">{r.probability.toFixed(3)}</span>
            </div>))}
        </figure>))}
      <div class="history">
        <label>History of <select value={shown || classifiers[0]} onChange={(e) => setShown(e.target.value)}>{classifiers.map((c) => <option key={c}>{c}</option>)}</select></label>
        {hist.length ? <table class="compact" aria-label="classification history"><thead><tr><th scope="col">MJD</th><th scope="col">top classes</th></tr></thead>
          <tbody>{hist.map((h) => <tr key={h.mjd}><td>{h.mjd.toFixed(4)}</td><td>{[...h.probabilities].sort((a, b) => b.probability - a.probability).slice(0, 3).map((p) => `${p.className} ${p.probability.toFixed(2)}`).join(" · ")}</td></tr>)}</tbody></table>
          : <p>No history stored for this classifier.</p>}
      </div>
    </div>
  );
}

function AnomalyPanel({ a }) {
  if (!a) return <p>No anomaly score yet (the object is scored when its light curve is classified).</p>;
  const max = Math.max(...a.topFeatures.map((f) => Math.abs(f.contribution)), 1e-9);
  return (
    <div class="anomaly">
      <p><strong id="anomaly-score">{a.score.toFixed(3)}</strong> percentile (raw {a.rawScore.toFixed(3)}), {a.modelName} {a.modelVersion}, at MJD {a.mjd.toFixed(3)} with {a.ndet} detections{a.bogus !== null ? `; bogus ${a.bogus.toFixed(2)}` : ""}</p>
      <h4>Top features</h4>
      {a.topFeatures.map((f) => (
        <div key={f.name} class="bar-row"><span class="bar-label">{f.name}</span>
          <span class="bar"><span style={`width:${(Math.abs(f.contribution) / max * 100).toFixed(1)}%`} /></span>
          <span class="bar-value">{fmt(f.value, 3)}</span></div>))}
      {a.history.length > 1 && <p>History: {a.history.map((h) => `${h.mjd.toFixed(1)}: ${h.score.toFixed(2)}`).join(" → ")}</p>}
    </div>
  );
}

function FeaturesTable({ features }) {
  const [q, setQ] = useState("");
  if (!features.length) return <p>No features yet (computed when the light curve is classified).</p>;
  const shown = features.filter((f) => f.name.toLowerCase().includes(q.toLowerCase()));
  return (
    <>
      <label>Find a feature <input value={q} onInput={(e) => setQ(e.target.value)} /></label>
      <div class="scroll" tabIndex={0} role="region" aria-label="features table"><table class="compact" id="features" aria-label="features">
        <thead><tr><th scope="col">feature</th><th scope="col">value</th><th scope="col">unit</th></tr></thead>
        <tbody>{shown.map((f) => <tr key={f.name}><td>{f.name}</td><td>{fmt(f.value, 4)}</td><td>{featureUnit(f.name)}</td></tr>)}</tbody>
      </table></div>
    </>
  );
}

function snippets(oid) {
  const q = `query { object(oid: "${oid}") { oid meanra meandec ndet\n  probabilities { classifierName className probability ranking }\n  lightcurve(surveys: [ZTF, LSST]) { mjd band kind mag magErr flux fluxErr } } }`;
  const py = `from nightjar_client import Nightjar\n\nnj = Nightjar("${location.origin}")\nobj = nj.query_object("${oid}")\nlc = nj.query_lightcurve("${oid}", format="pandas")\nprobs = nj.query_probabilities("${oid}", format="pandas")`;
  const curl = `curl -s ${location.origin}/graphql -H 'content-type: application/json' \\\n  -d '${JSON.stringify({ query: q.replace(/\n\s*/g, " ") })}'`;
  return { graphql: q, python: py, curl };
}

function Snippets({ oid }) {
  const s = snippets(oid);
  const [tab, setTab] = useState("graphql");
  return (
    <div class="snippets">
      <div role="tablist" aria-label="Snippet language">{Object.keys(s).map((k) => <button key={k} id={`tab-${k}`} role="tab" type="button" aria-controls="snippet-panel" aria-selected={tab === k ? "true" : "false"} onClick={() => setTab(k)}>{k}</button>)}</div>
      <pre id="snippet-panel" data-language={tab} role="tabpanel" aria-labelledby={`tab-${tab}`} tabIndex={0}><code>{s[tab]}</code></pre>
      <button type="button" onClick={() => navigator.clipboard?.writeText(s[tab])}>Copy</button>
    </div>
  );
}

function Section({ id, title, children }) {
  return <section class="panel" id={id} aria-labelledby={`${id}-title`}><h2 id={`${id}-title`}>{title}</h2>{children}</section>;
}

function bandsOf(points) {
  const seen = new Map();
  for (const p of points) seen.set(`${p.survey}:${p.band}`, { survey: p.survey, band: p.band });
  return [...seen.entries()].sort();
}

function LightCurvePanel({ o, picked, onPick, newKeys, onDrawn }) {
  const [flux, setFlux] = useState(false);
  const [hiddenBands, setHiddenBands] = useState(new Set());
  const [hiddenKinds, setHiddenKinds] = useState(new Set());
  const [fold, setFold] = useState(null);
  const [pg, setPg] = useState(null);
  const [forecast, setForecast] = useState(null);
  const [forecastError, setForecastError] = useState(null);
  const bands = bandsOf(o.lightcurve);
  const series = useMemo(() => seriesOf(o.lightcurve, flux, fold), [o.lightcurve, flux, fold]);
  const visible = (s) => !hiddenBands.has(`${s.survey}:${s.band}`) && !hiddenKinds.has(s.kind);
  const toggle = (set, setter, key) => { const n = new Set(set); n.has(key) ? n.delete(key) : n.add(key); setter(n); };
  const period = o.features.find((f) => /^multiband_period$/i.test(f.name))?.value || null;

  const runPeriodogram = () => {
    const per = [];
    for (const [key] of bands) {
      const pts = o.lightcurve.filter((p) => `${p.survey}:${p.band}` === key && (p.kind === "CORRECTED" || (p.kind === "DIFFERENCE" && o.survey === "LSST")) && p.magErr !== null);
      per.push({ t: pts.map((p) => p.mjd), y: pts.map((p) => p.mag), dy: pts.map((p) => p.magErr) });
    }
    const base = Math.max(1, o.lastmjd - o.firstmjd), n = 6000;
    const fmin = 1 / Math.min(base, 500), fmax = 10;
    const freqs = new Float64Array(n);
    for (let i = 0; i < n; i++) freqs[i] = fmin + (fmax - fmin) * i / (n - 1);
    const power = periodogram(per, freqs);
    let best = 0; for (let i = 1; i < n; i++) if (power[i] > power[best]) best = i;
    setPg({ freqs, power, best: 1 / freqs[best] });
    setFold({ period: period || 1 / freqs[best], t0: o.firstmjd });
  };
  const loadForecast = async () => {
    setForecastError(null);
    const last = o.lastmjd, mjd = Array.from({ length: 61 }, (_, i) => last - 20 + i);
    const own = bands.filter(([, b]) => b.survey === o.survey);
    try {
      const got = await Promise.all(own.map(async ([, b]) => {
        const d = await gql(FORECAST_QUERY, { oid: o.oid, band: b.band, mjd });
        return { survey: b.survey, ...d.object.forecast };
      }));
      setForecast(got);
      const why = got.filter((f) => !f.points.some((p) => p.valid)).map((f) => `${f.band}: ${f.reason || "no valid point"}`);
      if (why.length) setForecastError(`no forecast for ${why.join("; ")}`);
    } catch (e) { setForecastError(message(e)); }
  };
  return (
    <>
      <div class="toolbar lc-controls" role="group" aria-label="Light-curve controls">
        <fieldset><legend>Bands</legend>{bands.map(([key, b]) => (
          <label key={key} class="band-toggle" style={`--band:${BAND_COLOURS[key] || "#999"}`}>
            <input type="checkbox" data-band={key} checked={!hiddenBands.has(key)} onChange={() => toggle(hiddenBands, setHiddenBands, key)} /> {b.survey} {b.band}</label>))}</fieldset>
        <fieldset><legend>Points</legend>{KINDS.map((k) => (
          <label key={k}><input type="checkbox" data-kind={k} checked={!hiddenKinds.has(k)} onChange={() => toggle(hiddenKinds, setHiddenKinds, k)} /> {KIND_LABELS[k]}</label>))}</fieldset>
        <fieldset><legend>Units</legend>
          <label><input type="radio" name="units" checked={!flux} onChange={() => setFlux(false)} /> magnitude</label>
          <label><input type="radio" name="units" checked={flux} onChange={() => setFlux(true)} /> flux [nJy]</label></fieldset>
        <fieldset><legend>Time</legend>
          {fold ? <><label>Period [d] <input type="number" step="any" value={fold.period} onChange={(e) => setFold({ ...fold, period: Number(e.target.value) || fold.period })} /></label>
            <button type="button" onClick={() => { setFold(null); setPg(null); }}>Unfold</button></>
            : <button type="button" id="fold" onClick={runPeriodogram}>Fold (periodogram)</button>}
          {!fold && <button type="button" id="forecast" onClick={forecast ? () => setForecast(null) : loadForecast}>{forecast ? "Hide forecast" : "Forecast"}</button>}
        </fieldset>
      </div>
      <LightCurvePlot series={series} visible={visible} flux={flux} fold={fold} forecast={fold || flux ? null : forecast}
        newKeys={newKeys} picked={picked} onPick={onPick} onDrawn={onDrawn} />
      <p class="hint">Click a detection to see its stamps; drag to zoom, double-click to reset. ■ apparent ● difference ○ forced ▼ upper limit{newKeys.size ? "; ringed: new since opened" : ""}.</p>
      {forecastError && <p class="error">{forecastError}</p>}
      {forecast && !fold && !flux && <p>Forecast: {forecast.map((f) => `${f.band} ${f.model}${f.reason ? ` (${f.reason})` : ""}`).join(", ")}; shaded 68 and 95 % intervals.</p>}
      {pg && <><PeriodogramPlot freqs={pg.freqs} power={pg.power} period={fold?.period} onPick={(p) => setFold({ period: p, t0: o.firstmjd })} />
        <p>Highest peak {pg.best.toFixed(5)} d{period ? `; classifier's period ${period.toFixed(5)} d` : ""}; click the periodogram to fold at another period.</p></>}
    </>
  );
}

function Vetting({ o, candid, onDone }) {
  const [status, setStatus] = useState(null);
  const vet = async (v) => {
    try {
      if (v.kind === "label") await gql(LABEL_MUTATION, { oid: o.oid, label: v.label, candid: candid ? String(candid) : null });
      else await gql(ANOMALY_MUTATION, { oid: o.oid, label: v.label });
      setStatus(`${v.text}: saved`);
      onDone();
    } catch (e) { setStatus(`${v.text}: ${message(e)}`); }
  };
  useEffect(() => {
    const keys = (e) => {
      if (e.target.closest("input, textarea, select") || e.metaKey || e.ctrlKey || e.altKey) return;
      const v = VETTING.find((x) => x.key === e.key);
      if (v) { e.preventDefault(); vet(v); }
    };
    window.addEventListener("keydown", keys);
    return () => window.removeEventListener("keydown", keys);
  });
  return (
    <div class="vetting">
      {VETTING.map((v) => <button key={v.label} type="button" onClick={() => vet(v)} aria-keyshortcuts={v.key}>{v.text} <kbd>{v.key}</kbd></button>)}
      {status && <p role="status" id="vet-status">{status}</p>}
      <p><Link href={`${BASE}/tns/${encodeURIComponent(o.oid)}`} id="tns-link">Report to TNS…</Link>
        {o.tnsReports.length > 0 && <> Reported: {o.tnsReports.map((r) => `${r.objname || `report ${r.reportId}`} (${r.status.toLowerCase()})`).join(", ")}</>}</p>
      <h4>Labels</h4>
      {o.labels.length ? <ul>{o.labels.map((l, i) => <li key={i}>{l.label} by {l.user}, {l.created.slice(0, 19)}{l.comment ? `: ${l.comment}` : ""}</li>)}</ul> : <p>None yet.</p>}
    </div>
  );
}

function walk(oid, step) {
  try {
    const { oids } = JSON.parse(sessionStorage.getItem("nightjar.results") || "{}");
    const i = (oids || []).indexOf(oid);
    if (i >= 0 && oids[i + step]) navigate(objectPath(oids[i + step]));
  } catch { /* no results */ }
}

export function ObjectPage({ oid }) {
  const [o, setO] = useState(null);
  const [error, setError] = useState(null);
  const [picked, setPicked] = useState(null);
  const [drawMs, setDrawMs] = useState(null);
  const [partial, setPartial] = useState([]);
  const seen = useRef(null);  // candids present when the page opened
  const [newKeys, setNewKeys] = useState(new Set());
  const timing = useRef({});

  // a failed update (the gateway away for a moment) keeps what is shown and tries again,
  // backing off, so that nothing stored meanwhile is missed
  const retry = useRef({ timer: null, waitMs: 500 });
  const load = async () => {
    clearTimeout(retry.current.timer);
    try {
      const data = await gql(OBJECT_QUERY, { oid }, true);
      retry.current.waitMs = 500;
      setPartial((data.__errors || []).map((e) => `${(e.path || []).slice(1).join(".") || "query"}: ${e.message}`));
      timing.current.arrived = performance.now();
      if (!data.object) { setError(`No object ${oid} is stored.`); return; }
      const obj = data.object;
      const keys = obj.lightcurve.filter((p) => p.candid !== null).map((p) => String(p.candid));
      if (seen.current === null) seen.current = new Set(keys);
      setNewKeys(new Set(keys.filter((k) => !seen.current.has(k))));
      setO(obj);
      setError(null);
    } catch (e) {
      if (seen.current === null) { setError(message(e)); return; }  // nothing shown yet
      setPartial([`the last update failed (${message(e)}); retrying`]);
      retry.current.timer = setTimeout(load, retry.current.waitMs);
      retry.current.waitMs = Math.min(2 * retry.current.waitMs, 10000);
    }
  };
  useEffect(() => { load(); return () => clearTimeout(retry.current.timer); }, [oid]);

  // live: any stored alert, classification or score of this object refetches the page
  const ra = o?.meanra, dec = o?.meandec;
  useEffect(() => {
    if (ra === undefined) return;
    let timer = null;
    const refetch = () => { clearTimeout(timer); timer = setTimeout(load, 100); };
    const oids = [oid, ...(o.counterparts || []).map((c) => c.oid)];
    const cone = { ra, dec, radius: 2 };
    const subs = [
      subscribe("subscription($f: AlertFilterInput) { alerts(filter: $f) { oid candid } }", { f: { oids } }, refetch),
      subscribe("subscription($f: ClassificationFilterInput) { classifications(filter: $f) { oid } }", { f: { cone } }, (d) => oids.includes(d.classifications.oid) && refetch()),
      subscribe("subscription($f: AnomalyFilterInput) { anomalies(filter: $f) { oid } }", { f: { cone } }, (d) => oids.includes(d.anomalies.oid) && refetch()),
    ];
    let first = connection.connects;
    const off = onConnection((c) => { if (c.state === "connected" && c.connects > first) { first = c.connects; refetch(); } });
    return () => { subs.forEach((u) => u()); off(); clearTimeout(timer); };
  }, [oid, ra, dec]);

  useEffect(() => {
    const keys = (e) => {
      if (e.target.closest("input, textarea, select") || e.metaKey || e.ctrlKey || e.altKey) return;
      if (e.key === "ArrowLeft") walk(oid, -1);
      else if (e.key === "ArrowRight") walk(oid, 1);
    };
    window.addEventListener("keydown", keys);
    return () => window.removeEventListener("keydown", keys);
  }, [oid]);

  const onDrawn = (ms) => {
    if (timing.current.arrived && !timing.current.reported) {
      timing.current.reported = true;
      const total = performance.now() - timing.current.arrived;
      setDrawMs(total);
      window.__nightjarTiming = { lightcurveDrawnAfterDataMs: total, plotMs: ms, points: o?.lightcurve.length };
    }
  };
  if (error) return <p class="error" role="alert">{error} <Link href={`${BASE}/search`}>Search</Link></p>;
  if (!o) return <p aria-busy="true">Loading {oid}…</p>;
  const stamps = o.stamps;
  const epoch = picked ?? (stamps.length ? String(stamps[stamps.length - 1].candid) : null);
  const pick = (p) => {
    if (p.candid !== null && stamps.some((s) => String(s.candid) === String(p.candid))) setPicked(String(p.candid));
  };
  const latest = stamps[stamps.length - 1];
  return (
    <article class="object" data-oid={o.oid} data-survey={o.survey}>
      {partial.length > 0 && <p class="notice" role="status" id="partial">Some panels are incomplete: {partial.join("; ")}</p>}
      <Header o={o} newCount={newKeys.size} onMarkSeen={() => { seen.current = new Set([...seen.current, ...newKeys]); setNewKeys(new Set()); }} />
      <div class="grid">
        <Section id="lc" title="Light curve">
          <LightCurvePanel o={o} picked={epoch} onPick={pick} newKeys={newKeys} onDrawn={onDrawn} />
          <p class="downloads">Download: <a href={o.downloads.lightcurveCsv}>CSV</a> · <a href={o.downloads.lightcurveVotable}>VOTable</a> · <a href={o.downloads.findingChart}>finding chart (PDF)</a>{drawMs !== null && <span class="timing" id="draw-ms"> · drawn {drawMs.toFixed(0)} ms after its data</span>}</p>
        </Section>
        <Section id="stamps-panel" title="Stamps"><Stamps oid={o.oid} stamps={stamps} candid={epoch} onEpoch={setPicked} /></Section>
        <Section id="probabilities" title="Classification"><Probabilities rows={o.probabilities} history={o.classificationHistory} /></Section>
        <Section id="anomaly" title="Anomaly score"><AnomalyPanel a={o.anomaly} />
          {o.surprise && <p>Latest detection vs forecast ({o.surprise.model}, {o.surprise.band}): {o.surprise.value.toFixed(2)} σ{Math.abs(o.surprise.value) > 3 ? " — not predicted by its own history" : ""}</p>}</Section>
        <Section id="vetting" title="Vetting"><Vetting o={o} candid={epoch} onDone={load} /></Section>
        <Section id="sky" title="Sky"><SkyView ra={o.meanra} dec={o.meandec} oid={o.oid} stampUrl={latest ? stampUrl(o.oid, latest.candid, "science", "png") : null} /></Section>
        <Section id="xmatch" title="Cross-matches">
          {o.xmatch.length ? <table class="compact" aria-label="cross-matches"><thead><tr><th scope="col">catalogue</th><th scope="col">source</th><th scope="col">RA [deg]</th><th scope="col">Dec [deg]</th><th scope="col">distance [″]</th></tr></thead>
            <tbody>{o.xmatch.map((x) => <tr key={x.catalog + x.sourceId}><td>{x.catalog}</td><td>{x.sourceId}</td><td>{x.ra.toFixed(6)}</td><td>{x.dec.toFixed(6)}</td><td>{x.distanceArcsec.toFixed(2)}</td></tr>)}</tbody></table>
            : <p>No catalogue source within the match radii.</p>}
        </Section>
        <Section id="features-panel" title="Features"><FeaturesTable features={o.features} /></Section>
        <Section id="links" title="Elsewhere"><ul class="links">{links(o).map(([name, href]) => <li key={name}><a href={href} rel="noopener noreferrer" target="_blank">{name}</a></li>)}</ul></Section>
        <Section id="snippets" title="Fetch this data"><Snippets oid={o.oid} /></Section>
      </div>
    </article>
  );
}
