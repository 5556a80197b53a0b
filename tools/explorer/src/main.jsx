// The Nightjar explorer: one page application served by the gateway at /explorer.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import "./style.css";
import { apiKey, connection, dropConnection, onConnection } from "./api.js";
import { SearchPage } from "./search.jsx";
import { ObjectPage } from "./object.jsx";
import { LivePage } from "./live.jsx";
import { FiltersPage } from "./filters.jsx";
import { StatusPage } from "./status.jsx";
import { TnsReportPage } from "./tns.jsx";
import { BASE, Link } from "./nav.jsx";

function route(pathname) {
  const rest = pathname.startsWith(BASE) ? pathname.slice(BASE.length) : pathname;
  const parts = rest.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "object" && parts[1]) return { page: "object", oid: parts[1] };
  if (parts[0] === "tns" && parts[1]) return { page: "tns", oid: parts[1] };
  if (["live", "filters", "status", "search"].includes(parts[0])) return { page: parts[0] };
  return { page: "search" };
}

const THEMES = ["dark", "light", "observer"];
function setTheme(theme) {
  document.documentElement.dataset.theme = theme;
  try { localStorage.setItem("nightjar.theme", theme); } catch { /* private mode */ }
}

function Settings({ onClose }) {
  const [key, setKey] = useState(apiKey());
  const save = (e) => {
    e.preventDefault();
    try { if (key) localStorage.setItem("nightjar.apiKey", key); else localStorage.removeItem("nightjar.apiKey"); } catch { /* */ }
    onClose();
  };
  return (
    <form class="settings panel" onSubmit={save} aria-label="Settings">
      <label>API key (labels, filters, watchlists, TNS reports)
        <input type="password" value={key} onInput={(e) => setKey(e.target.value)} autocomplete="off" />
      </label>
      <button type="submit">Save</button> <button type="button" onClick={onClose}>Close</button>
    </form>
  );
}

function ConnectionBadge() {
  const [state, setState] = useState(connection.state);
  useEffect(() => onConnection((c) => setState(c.state)), []);
  return <span class={`conn conn-${state}`} id="connection" title="live updates (WebSocket)">{state === "connected" ? "● live" : state === "reconnecting" ? "○ reconnecting" : "○ idle"}</span>;
}

function App() {
  const [where, setWhere] = useState(route(location.pathname));
  const [search, setSearch] = useState(location.search);
  const [settings, setSettings] = useState(false);
  const [theme, setThemeState] = useState(document.documentElement.dataset.theme || "dark");
  useEffect(() => {
    const update = () => { setWhere(route(location.pathname)); setSearch(location.search); };
    window.addEventListener("popstate", update);
    window.addEventListener("nightjar:navigate", update);
    return () => { window.removeEventListener("popstate", update); window.removeEventListener("nightjar:navigate", update); };
  }, []);
  const nav = [["search", "Search"], ["live", "Live"], ["filters", "Filters & watchlists"], ["status", "Status"]];
  const changeTheme = (e) => { setTheme(e.target.value); setThemeState(e.target.value); };
  let page;
  if (where.page === "object") page = <ObjectPage key={where.oid} oid={where.oid} />;
  else if (where.page === "tns") page = <TnsReportPage key={where.oid} oid={where.oid} />;
  else if (where.page === "live") page = <LivePage />;
  else if (where.page === "filters") page = <FiltersPage />;
  else if (where.page === "status") page = <StatusPage />;
  else page = <SearchPage search={search} />;
  return (
    <>
      <header class="top">
        <Link href={`${BASE}/search`} class="brand">Nightjar</Link>
        <nav aria-label="Pages">
          {nav.map(([p, label]) => <Link key={p} href={`${BASE}/${p}`} aria-current={where.page === p ? "page" : undefined}>{label}</Link>)}
        </nav>
        <span class="spacer" />
        <ConnectionBadge />
        <label class="theme">Theme <select value={theme} onChange={changeTheme}>{THEMES.map((t) => <option key={t} value={t}>{t}</option>)}</select></label>
        <button type="button" onClick={() => setSettings(!settings)} aria-expanded={settings}>Settings</button>
        <a href="/graphql">GraphQL</a>
      </header>
      {settings && <Settings onClose={() => setSettings(false)} />}
      <main id="main">{page}</main>
    </>
  );
}

try { document.documentElement.dataset.theme = localStorage.getItem("nightjar.theme") || "dark"; } catch { /* */ }
// for operators and tests: drop the live socket (it reconnects and refetches)
window.__nightjar = { dropConnection };
render(<App />, document.getElementById("app"));
