// Filters, watchlists and watchmaps: write a filter with the checker's errors inline and
// a dry run over the stored alerts, save, pause, read its matches; upload lists and maps.
import { useEffect, useRef, useState } from "preact/hooks";
import { apiKey, gql, GRAPHQL_PATH } from "./api.js";
import { fmt, Link, message, objectPath } from "./nav.jsx";

const LIST = `query { filters { id name owner version expression description stage state stateReason public
  stats { evaluations matches errors } }
  watchlists { id name owner rows state rowsLoaded rowsTotal matches public defaultRadius }
  watchmaps { id name owner kind event area90 since until public } }`;
const DRY_RUN = `query($e: String!) { dryRunFilter(expression: $e, maxObjects: 500) { valid stage error { message line column }
  objectsRead evaluations matchedAlerts matchedObjects complete seconds examples { oid mjd } } }`;
const CREATE = `mutation($input: FilterInput!) { createFilter(input: $input) { id name version state } }`;
const UPDATE = `mutation($id: ID!, $input: FilterUpdateInput!) { updateFilter(id: $id, input: $input) { id state version } }`;
const MATCHES = `query($id: ID!) { filterMatches(filter: $id, first: 50) { items { seq oid mjd stage survey } hasNextPage } }`;
const CREATE_WATCHLIST = `mutation($input: WatchlistInput!) { createWatchlist(input: $input) { id name state rowsLoaded rowsTotal } }`;
const CREATE_WATCHMAP = `mutation($input: WatchmapInput!) { createWatchmap(input: $input) { id name kind area90 } }`;

const EXAMPLE = "alert.band == 'r' && alert.mag < 19.5 && object.ndet >= 3";

function Editor({ initial, onSaved }) {
  const [name, setName] = useState(initial?.name || "");
  const [expr, setExpr] = useState(initial?.expression || EXAMPLE);
  const [check, setCheck] = useState(null);
  const [busy, setBusy] = useState(false);
  const [saveError, setSaveError] = useState(null);
  const timer = useRef();
  useEffect(() => {
    clearTimeout(timer.current);
    timer.current = setTimeout(async () => {
      setBusy(true);
      try { setCheck((await gql(DRY_RUN, { e: expr })).dryRunFilter); } catch (e) { setCheck({ valid: false, error: { message: message(e), line: 0, column: 0 } }); }
      setBusy(false);
    }, 400);
    return () => clearTimeout(timer.current);
  }, [expr]);
  const save = async (e) => {
    e.preventDefault();
    setSaveError(null);
    try {
      if (initial) await gql(UPDATE, { id: initial.id, input: { expression: expr } });
      else await gql(CREATE, { input: { name, expression: expr } });
      onSaved();
    } catch (err) { setSaveError(message(err)); }
  };
  const err = check && !check.valid ? check.error : null;
  return (
    <form class="panel filter-editor" onSubmit={save} aria-label={initial ? `Edit ${initial.name}` : "New filter"}>
      {!initial && <label>Name <input id="filter-name" required value={name} onInput={(e) => setName(e.target.value)} /></label>}
      <label for="filter-expression">Expression (CEL; see the README's filter reference)</label>
      <textarea id="filter-expression" rows="4" spellcheck={false} value={expr} onInput={(e) => setExpr(e.target.value)}
        aria-invalid={err ? "true" : undefined} aria-describedby="filter-check" />
      <p id="filter-check" class={err ? "error" : "ok"} aria-live="polite">
        {busy ? "checking…" : err ? `line ${err.line}, column ${err.column}: ${err.message}`
          : check ? `${check.stage} stage · dry run over ${check.objectsRead} objects: ${check.matchedAlerts} alerts of ${check.matchedObjects} objects match${check.complete ? "" : " (stopped early)"} · ${fmt(check.seconds, 2)} s` : ""}
      </p>
      {check?.valid && check.examples.length > 0 && <p>e.g. {check.examples.slice(0, 5).map((m) => <Link key={m.oid + m.mjd} href={objectPath(m.oid)}>{m.oid} </Link>)}</p>}
      <button type="submit" disabled={!!err}>{initial ? "Save new version" : "Create filter"}</button>
      {saveError && <p class="error" role="alert">{saveError}</p>}
    </form>
  );
}

function Matches({ id }) {
  const [page, setPage] = useState(null);
  useEffect(() => { gql(MATCHES, { id }).then((d) => setPage(d.filterMatches)).catch((e) => setPage({ error: message(e) })); }, [id]);
  if (!page) return <p>Loading matches…</p>;
  if (page.error) return <p class="error">{page.error}</p>;
  if (!page.items.length) return <p>No match yet.</p>;
  return <ul class="matches">{page.items.map((m) => <li key={m.seq}><Link href={objectPath(m.oid)}>{m.oid}</Link> {m.survey} MJD {m.mjd.toFixed(4)} ({m.stage})</li>)}</ul>;
}

/** POST a GraphQL request with upload progress (XMLHttpRequest reports it; fetch does not). */
function postWithProgress(query, variables, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", GRAPHQL_PATH);
    xhr.setRequestHeader("content-type", "application/json");
    if (apiKey()) xhr.setRequestHeader("x-api-key", apiKey());
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      try {
        const body = JSON.parse(xhr.responseText);
        if (body.errors?.length) reject(new Error(body.errors.map((x) => x.message).join("; "))); else resolve(body.data);
      } catch { reject(new Error(`HTTP ${xhr.status}`)); }
    };
    xhr.onerror = () => reject(new Error("the upload failed"));
    xhr.send(JSON.stringify({ query, variables }));
  });
}

function Uploads({ onDone }) {
  const [progress, setProgress] = useState(null);
  const [error, setError] = useState(null);
  const uploadList = async (e) => {
    e.preventDefault();
    const form = e.target, file = form.file.files[0];
    if (!file) return;
    setError(null); setProgress("reading");
    try {
      const content = await file.text();
      await postWithProgress(CREATE_WATCHLIST, { input: { name: form.name.value, content, radius: Number(form.radius.value) || 2, public: form.public.checked } },
        (f) => setProgress(`uploading ${(f * 100).toFixed(0)} %`));
      setProgress("uploaded; loading and matching in the background");
      onDone();
    } catch (err) { setError(message(err)); setProgress(null); }
  };
  const uploadMap = async (e) => {
    e.preventDefault();
    const form = e.target, file = form.file.files[0];
    if (!file) return;
    setError(null);
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      let bin = ""; for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      await postWithProgress(CREATE_WATCHMAP, { input: { name: form.name.value, contentBase64: btoa(bin), windowDays: Number(form.days.value) || null } },
        (f) => setProgress(`uploading ${(f * 100).toFixed(0)} %`));
      setProgress("watchmap saved"); onDone();
    } catch (err) { setError(message(err)); setProgress(null); }
  };
  return (
    <div class="uploads">
      <form class="panel" onSubmit={uploadList} aria-label="Upload a watchlist">
        <h3>Upload a watchlist</h3>
        <label>Name <input name="name" required /></label>
        <label>CSV (name, ra, dec [deg], radius [arcsec]) or VOTable <input name="file" type="file" accept=".csv,.txt,.xml,.vot" required /></label>
        <label>Default radius [arcsec] <input name="radius" type="number" step="any" value="2" /></label>
        <label><input name="public" type="checkbox" /> public</label>
        <button type="submit">Upload</button>
      </form>
      <form class="panel" onSubmit={uploadMap} aria-label="Upload a watchmap">
        <h3>Upload a watchmap</h3>
        <label>Name <input name="name" required /></label>
        <label>MOC or multi-order sky map (FITS) <input name="file" type="file" accept=".fits,.fits.gz,.fit" required /></label>
        <label>Window [days after the event] <input name="days" type="number" step="any" /></label>
        <button type="submit">Upload</button>
      </form>
      {progress && <p role="status" id="upload-progress">{progress}</p>}
      {error && <p class="error" role="alert">{error}</p>}
    </div>
  );
}

export function FiltersPage() {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [editing, setEditing] = useState(null);
  const [open, setOpen] = useState(null);
  const load = () => gql(LIST).then((d) => { setData(d); setError(null); }).catch((e) => setError(message(e)));
  useEffect(() => { load(); }, []);
  useEffect(() => {  // watchlists still loading: poll their progress
    if (!data?.watchlists.some((w) => w.state === "loading")) return;
    const t = setTimeout(load, 1000);
    return () => clearTimeout(t);
  }, [data]);
  const setState = async (f, state) => {
    try { await gql(UPDATE, { id: f.id, input: { state } }); load(); } catch (e) { setError(message(e)); }
  };
  return (
    <section aria-labelledby="filters-title">
      <h1 id="filters-title">Filters &amp; watchlists</h1>
      {!apiKey() && <p class="notice">Saving filters and uploading lists needs an API key (Settings). Public filters, lists and dry runs work without one.</p>}
      {error && <p class="error" role="alert">{error}</p>}
      <h2>New filter</h2>
      <Editor key="new" onSaved={load} />
      <h2>Filters</h2>
      {data && (data.filters.length ? (
        <table class="compact" id="filters-table" aria-label="filters">
          <thead><tr><th scope="col">name</th><th scope="col">owner</th><th scope="col">stage</th><th scope="col">state</th><th scope="col">matches</th><th scope="col">actions</th></tr></thead>
          <tbody>{data.filters.map((f) => (
            <>
              <tr key={f.id} data-filter={f.name}>
                <td><code title={f.expression}>{f.name}</code> v{f.version}</td><td>{f.owner}</td><td>{f.stage}</td>
                <td>{f.state}{f.stateReason ? ` (${f.stateReason})` : ""}</td><td>{f.stats.matches}</td>
                <td>
                  <button type="button" onClick={() => setOpen(open === f.id ? null : f.id)} aria-expanded={open === f.id}>Matches</button>
                  <button type="button" onClick={() => setEditing(editing === f.id ? null : f.id)}>Edit</button>
                  {f.state === "ACTIVE" ? <button type="button" onClick={() => setState(f, "PAUSED")}>Pause</button>
                    : <button type="button" onClick={() => setState(f, "ACTIVE")}>Enable</button>}
                </td>
              </tr>
              {open === f.id && <tr key={`${f.id}m`}><td colSpan="6"><Matches id={f.id} /></td></tr>}
              {editing === f.id && <tr key={`${f.id}e`}><td colSpan="6"><Editor initial={f} onSaved={() => { setEditing(null); load(); }} /></td></tr>}
            </>))}</tbody>
        </table>) : <p>No filter yet.</p>)}
      <h2>Watchlists</h2>
      {data && (data.watchlists.length ? <table class="compact" id="watchlists-table" aria-label="watchlists">
        <thead><tr><th scope="col">name</th><th scope="col">owner</th><th scope="col">rows</th><th scope="col">state</th><th scope="col">matches</th></tr></thead>
        <tbody>{data.watchlists.map((w) => <tr key={w.id}><td>{w.name}</td><td>{w.owner}</td><td>{w.rows}</td>
          <td>{w.state === "loading" ? <><progress max={w.rowsTotal || 1} value={w.rowsLoaded} /> {w.rowsLoaded}/{w.rowsTotal}</> : w.state}</td><td>{w.matches}</td></tr>)}</tbody>
      </table> : <p>No watchlist yet.</p>)}
      <h2>Watchmaps</h2>
      {data && (data.watchmaps.length ? <ul>{data.watchmaps.map((m) => <li key={m.id}>{m.name} ({m.kind}{m.event ? `, ${m.event}` : ""}{m.area90 ? `, 90 % area ${m.area90.toFixed(1)} deg²` : ""}) by {m.owner}</li>)}</ul> : <p>No watchmap yet.</p>)}
      <Uploads onDone={load} />
    </section>
  );
}
