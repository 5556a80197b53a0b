// Search: one bar (ids, coordinates, key=value) beside a form writing the same URL
// parameters; results as a table, cards or a sky map; CSV and VOTable exports.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { gql } from "./api.js";
import { parseSearch, raToHms, decToDms } from "./astro.js";
import { BASE, fmt, Link, message, navigate, objectPath } from "./nav.jsx";
import { SkyMap } from "./sky.jsx";

/** The URL parameters a search understands (the bar and the form write these). */
export const PARAMS = ["oids", "survey", "classifier", "class", "pmin", "ndetmin", "ndetmax",
  "firstmjdmin", "firstmjdmax", "lastmjdmin", "lastmjdmax", "amin", "amax", "ra", "dec", "radius", "order", "dir"];

const ORDERS = ["OID", "NDET", "FIRSTMJD", "LASTMJD", "PROBABILITY", "ANOMALY"];

export const COLUMNS = [
  { key: "oid", label: "Object", get: (o) => o.oid, type: "char" },
  { key: "survey", label: "Survey", get: (o) => o.survey, type: "char" },
  { key: "ra", label: "RA [deg]", get: (o) => o.meanra, type: "double", d: 6 },
  { key: "dec", label: "Dec [deg]", get: (o) => o.meandec, type: "double", d: 6 },
  { key: "ndet", label: "ndet", get: (o) => o.ndet, type: "int" },
  { key: "firstmjd", label: "First [MJD]", get: (o) => o.firstmjd, type: "double", d: 4 },
  { key: "lastmjd", label: "Last [MJD]", get: (o) => o.lastmjd, type: "double", d: 4 },
  { key: "class", label: "Class", get: (o) => o.topClass?.className ?? null, type: "char" },
  { key: "prob", label: "P(class)", get: (o) => o.topClass?.probability ?? null, type: "double", d: 3 },
  { key: "stamp", label: "Stamp class", get: (o) => o.stampClass?.className ?? null, type: "char" },
  { key: "anomaly", label: "Anomaly", get: (o) => o.anomaly?.score ?? null, type: "double", d: 3 },
];
const DEFAULT_COLUMNS = ["oid", "survey", "ra", "dec", "ndet", "lastmjd", "class", "prob", "anomaly"];

const QUERY = `query Search($filter: ObjectFilterInput, $orderBy: ObjectOrderInput, $first: Int, $after: String, $stamps: Boolean!) {
  objects(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    edges { node {
      oid survey ndet firstmjd lastmjd meanra meandec
      anomaly { score }
      probabilities { classifierName className probability ranking }
      stamps @include(if: $stamps) { candid }
    } matchedProbability { classifierName className probability } }
    pageInfo { hasNextPage endCursor }
  }
}`;

const num = (v) => (v === undefined || v === "" ? null : Number(v));
function range(min, max) {
  const lo = num(min), hi = num(max);
  return lo === null && hi === null ? null : { min: lo, max: hi };
}

/** The GraphQL variables of a search's URL parameters. */
export function variablesOf(p) {
  const filter = {};
  if (p.oids) filter.oids = p.oids.split(",").filter(Boolean);
  if (p.survey) filter.survey = p.survey.toUpperCase();
  if (p.classifier) filter.classifier = p.classifier;
  if (p.class) filter.className = p.class;
  if (p.pmin) filter.probabilityMin = Number(p.pmin);
  for (const [name, lo, hi] of [["ndet", "ndetmin", "ndetmax"], ["firstmjd", "firstmjdmin", "firstmjdmax"], ["lastmjd", "lastmjdmin", "lastmjdmax"], ["anomalyScore", "amin", "amax"]]) {
    const r = range(p[lo], p[hi]);
    if (r) filter[name] = name === "ndet" ? { min: r.min === null ? null : Math.round(r.min), max: r.max === null ? null : Math.round(r.max) } : r;
  }
  if (p.ra && p.dec) filter.cone = { ra: Number(p.ra), dec: Number(p.dec), radius: Number(p.radius || 10) };
  const orderBy = p.order ? { field: p.order, direction: p.dir || null } : null;
  return { filter, orderBy };
}

function paramsOf(search) {
  const u = new URLSearchParams(search), out = {};
  for (const k of [...PARAMS, "view", "cols"]) if (u.get(k)) out[k] = u.get(k);
  return out;
}

export function searchPath(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") u.set(k, v);
  const q = u.toString();
  return `${BASE}/search${q ? "?" + q : ""}`;
}

function topOf(probabilities, classifier) {
  return probabilities.find((p) => p.classifierName === classifier && p.ranking === 1) || null;
}

function rowsOf(edges) {
  return edges.map(({ node, matchedProbability }) => ({
    ...node,
    topClass: matchedProbability || topOf(node.probabilities, "lc_classifier"),
    stampClass: topOf(node.probabilities, "stamp_classifier"),
  }));
}

function xml(s) { return String(s).replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" }[c])); }

/** CSV text of the rows in the chosen columns. */
export function toCsv(rows, cols) {
  const esc = (v) => (v === null || v === undefined ? "" : /[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
  return [cols.map((c) => c.key).join(","), ...rows.map((r) => cols.map((c) => esc(c.get(r))).join(","))].join("\n") + "\n";
}

/** A VOTable 1.4 document of the rows in the chosen columns. */
export function toVotable(rows, cols) {
  const fields = cols.map((c) => `<FIELD name="${c.key}" datatype="${c.type}"${c.type === "char" ? ' arraysize="*"' : ""}${c.key === "ra" ? ' ucd="pos.eq.ra;meta.main" unit="deg"' : c.key === "dec" ? ' ucd="pos.eq.dec;meta.main" unit="deg"' : ""}/>`).join("\n");
  const trs = rows.map((r) => "<TR>" + cols.map((c) => { const v = c.get(r); return `<TD>${v === null || v === undefined ? "" : xml(v)}</TD>`; }).join("") + "</TR>").join("\n");
  return `<?xml version="1.0" encoding="UTF-8"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
<RESOURCE type="results"><TABLE name="nightjar_search">
${fields}
<DATA><TABLEDATA>
${trs}
</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>
`;
}

function download(text, name, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url; a.download = name; document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function SearchForm({ params }) {
  const [f, setF] = useState(params);
  useEffect(() => setF(params), [JSON.stringify(params)]);
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  const submit = (e) => {
    e.preventDefault();
    const out = {};
    for (const k of PARAMS) if (f[k]) out[k] = f[k];
    if (params.view) out.view = params.view;
    navigate(searchPath(out));
  };
  const field = (k, label, attrs = {}) => (
    <label>{label}<input name={k} value={f[k] || ""} onInput={set(k)} {...attrs} /></label>
  );
  return (
    <form class="search-form panel" onSubmit={submit} aria-label="Search form">
      <label>Survey<select name="survey" value={f.survey || ""} onChange={set("survey")}>
        <option value="">any</option><option value="ZTF">ZTF</option><option value="LSST">LSST</option></select></label>
      {field("classifier", "Classifier", { placeholder: "lc_classifier" })}
      {field("class", "Class", { placeholder: "SNIa" })}
      {field("pmin", "P ≥", { type: "number", step: "any", min: 0, max: 1 })}
      {field("amin", "Anomaly ≥", { type: "number", step: "any", min: 0, max: 1 })}
      {field("ndetmin", "ndet ≥", { type: "number", min: 0 })}
      {field("ndetmax", "ndet ≤", { type: "number", min: 0 })}
      {field("firstmjdmin", "First MJD ≥", { type: "number", step: "any" })}
      {field("lastmjdmin", "Last MJD ≥", { type: "number", step: "any" })}
      {field("lastmjdmax", "Last MJD ≤", { type: "number", step: "any" })}
      {field("ra", "RA [deg]", { type: "number", step: "any" })}
      {field("dec", "Dec [deg]", { type: "number", step: "any" })}
      {field("radius", "Radius [arcsec]", { type: "number", step: "any", min: 0 })}
      <label>Order<select name="order" value={f.order || ""} onChange={set("order")}>
        <option value="">object id</option>{ORDERS.slice(1).map((o) => <option key={o} value={o}>{o.toLowerCase()}</option>)}</select></label>
      <label>Direction<select name="dir" value={f.dir || ""} onChange={set("dir")}>
        <option value="">default</option><option value="ASC">ascending</option><option value="DESC">descending</option></select></label>
      <button type="submit">Search</button>
    </form>
  );
}

export function SearchBar({ initial = "" }) {
  const [text, setText] = useState(initial);
  const [error, setError] = useState(null);
  const submit = (e) => {
    e.preventDefault();
    const parsed = parseSearch(text);
    if (parsed.error) { setError(parsed.error); return; }
    setError(null);
    navigate(parsed.object ? objectPath(parsed.object) : searchPath(parsed.params));
  };
  return (
    <form class="searchbar" role="search" onSubmit={submit}>
      <label for="q" class="visually-hidden">Search objects</label>
      <input id="q" name="q" value={text} onInput={(e) => setText(e.target.value)} autocomplete="off"
        placeholder='ZTF21aaxtctv · 169299234234 · 150.1 2.2 30" · 10:00:24 +02:12:00 1&apos; · class=SNIa prob>=0.7 ndet>=5'
        aria-invalid={error ? "true" : undefined} aria-describedby={error ? "q-error" : undefined} />
      <button type="submit">Go</button>
      {error && <p id="q-error" class="error" role="alert">{error}</p>}
    </form>
  );
}

function Cards({ rows }) {
  return (
    <ul class="cards">
      {rows.map((o) => {
        const last = o.stamps?.[o.stamps.length - 1];
        return (
          <li key={o.oid} class="card">
            <Link href={objectPath(o.oid)}>
              {last ? <img src={`/download/stamp/${encodeURIComponent(o.oid)}/${last.candid}/science.png`} alt={`science stamp of ${o.oid}`} width="96" height="96" loading="lazy" />
                : <span class="nostamp">no stamp</span>}
              <strong>{o.oid}</strong>
            </Link>
            <span>{o.survey} · {o.ndet} det</span>
            <span>{o.topClass ? `${o.topClass.className} ${fmt(o.topClass.probability, 2)}` : "unclassified"}</span>
          </li>
        );
      })}
    </ul>
  );
}

function ResultsTable({ rows, cols, sort, setSort, selected, setSelected }) {
  const body = useRef();
  useEffect(() => { body.current?.querySelector(`tr[data-index="${selected}"]`)?.focus(); }, [selected]);
  const keys = (e) => {
    if (["ArrowDown", "j"].includes(e.key)) { e.preventDefault(); setSelected(Math.min(rows.length - 1, selected + 1)); }
    else if (["ArrowUp", "k"].includes(e.key)) { e.preventDefault(); setSelected(Math.max(0, selected - 1)); }
    else if (e.key === "Enter" && rows[selected]) navigate(objectPath(rows[selected].oid));
  };
  return (
    <table class="results" aria-label="Search results" aria-rowcount={rows.length}>
      <thead><tr>{cols.map((c) => (
        <th key={c.key} scope="col" aria-sort={sort.key === c.key ? (sort.dir > 0 ? "ascending" : "descending") : undefined}>
          <button type="button" class="th" onClick={() => setSort({ key: c.key, dir: sort.key === c.key ? -sort.dir : 1 })}>{c.label}</button>
        </th>))}</tr></thead>
      <tbody ref={body} onKeyDown={keys}>
        {rows.map((o, i) => (
          <tr key={o.oid} data-index={i} tabIndex={i === selected ? 0 : -1} class={i === selected ? "selected" : ""}
            onClick={() => setSelected(i)} onDblClick={() => navigate(objectPath(o.oid))}>
            {cols.map((c) => {
              const v = c.get(o);
              return <td key={c.key}>{c.key === "oid" ? <Link href={objectPath(o.oid)}>{o.oid}</Link> : typeof v === "number" ? fmt(v, c.d ?? 0) : v ?? "–"}</td>;
            })}
          </tr>))}
      </tbody>
    </table>
  );
}

export function SearchPage({ search }) {
  const params = useMemo(() => paramsOf(search), [search]);
  const [state, setState] = useState({ loading: true, rows: [], error: null, page: null, shown: null });
  const latest = useRef(0);  // a slower answer to an older search must not replace a newer one
  const [sort, setSort] = useState({ key: null, dir: 1 });
  const [selected, setSelected] = useState(0);
  const [picker, setPicker] = useState(false);
  const view = params.view || "table";
  const colKeys = params.cols ? params.cols.split(",") : DEFAULT_COLUMNS;
  const cols = COLUMNS.filter((c) => colKeys.includes(c.key));

  const load = async (after = null) => {
    const { filter, orderBy } = variablesOf(params);
    const ticket = ++latest.current;
    try {
      const data = await gql(QUERY, { filter, orderBy, first: 100, after, stamps: view === "cards" });
      if (ticket !== latest.current) return;
      const rows = rowsOf(data.objects.edges);
      setState((s) => ({ loading: false, error: null, rows: after ? [...s.rows, ...rows] : rows, page: data.objects.pageInfo, shown: search }));
    } catch (e) {
      if (ticket !== latest.current) return;
      setState({ loading: false, rows: [], error: message(e), page: null, shown: search });
    }
  };
  useEffect(() => { setState((s) => ({ ...s, loading: true })); setSelected(0); load(); }, [search]);
  // Until this search's answer arrives the page says so, whatever an older one left.
  const loading = state.loading || state.shown !== search;

  const rows = useMemo(() => {
    if (!sort.key) return state.rows;
    const col = COLUMNS.find((c) => c.key === sort.key);
    return [...state.rows].sort((a, b) => {
      const x = col.get(a), y = col.get(b);
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * sort.dir;
    });
  }, [state.rows, sort]);
  useEffect(() => {  // the object page's ←/→ walk these results
    try { sessionStorage.setItem("nightjar.results", JSON.stringify({ search, oids: rows.map((r) => r.oid) })); } catch { /* */ }
  }, [rows]);

  const setParam = (k, v) => navigate(searchPath({ ...params, [k]: v }), true);
  const toggleCol = (key) => {
    const next = colKeys.includes(key) ? colKeys.filter((k) => k !== key) : COLUMNS.map((c) => c.key).filter((k) => k === key || colKeys.includes(k));
    setParam("cols", next.join(","));
  };
  const described = PARAMS.filter((k) => params[k]).map((k) => `${k}=${params[k]}`).join(" ");
  return (
    <section aria-labelledby="search-title">
      <h1 id="search-title">Search</h1>
      <SearchBar initial={described} />
      <details class="form-details" open={!!described}><summary>Search form</summary><SearchForm params={params} /></details>
      <div class="toolbar" role="toolbar" aria-label="Results">
        <span id="result-count" aria-live="polite" data-search={loading ? "pending" : search}>{loading ? "Searching…" : `${state.rows.length}${state.page?.hasNextPage ? "+" : ""} objects`}</span>
        {["table", "cards", "sky"].map((v) => <button key={v} type="button" aria-pressed={view === v} onClick={() => setParam("view", v === "table" ? "" : v)}>{v}</button>)}
        <button type="button" aria-expanded={picker} onClick={() => setPicker(!picker)}>Columns</button>
        <button type="button" onClick={() => download(toCsv(rows, cols), "nightjar_search.csv", "text/csv")}>Export CSV</button>
        <button type="button" onClick={() => download(toVotable(rows, cols), "nightjar_search.xml", "application/x-votable+xml")}>Export VOTable</button>
      </div>
      {picker && <fieldset class="picker"><legend>Columns</legend>{COLUMNS.map((c) => (
        <label key={c.key}><input type="checkbox" checked={colKeys.includes(c.key)} onChange={() => toggleCol(c.key)} /> {c.label}</label>))}</fieldset>}
      {state.error && <p class="error" role="alert">{state.error}</p>}
      {!loading && !state.error && !rows.length && <p>No object matches. {params.ra && `(cone ${raToHms(+params.ra)} ${decToDms(+params.dec)}, ${params.radius || 10}″)`}</p>}
      {view === "cards" ? <Cards rows={rows} /> : view === "sky" ? <SkyMap points={rows.map((r) => ({ oid: r.oid, ra: r.meanra, dec: r.meandec, survey: r.survey }))} />
        : rows.length > 0 && <ResultsTable rows={rows} cols={cols} sort={sort} setSort={setSort} selected={selected} setSelected={setSelected} />}
      {state.page?.hasNextPage && <button type="button" onClick={() => load(state.page.endCursor)}>More results</button>}
    </section>
  );
}
