// Paths under /explorer, and links that change the page without reloading it.
export const BASE = "/explorer";

/** Go to an explorer path (pushState) and re-render. */
export function navigate(path, replace = false) {
  if (replace) history.replaceState(null, "", path); else history.pushState(null, "", path);
  window.dispatchEvent(new Event("nightjar:navigate"));
  if (!replace) window.scrollTo(0, 0);
}

export function Link({ href, children, ...rest }) {
  const click = (e) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
    e.preventDefault(); navigate(href);
  };
  return <a href={href} onClick={click} {...rest}>{children}</a>;
}

export const objectPath = (oid) => `${BASE}/object/${encodeURIComponent(oid)}`;

/** A number with d decimals, or an en dash for none. */
export function fmt(v, d = 3) {
  return v === null || v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(d);
}

/** A small hook-free helper: the error message of a caught error. */
export const message = (e) => (e && e.message) || String(e);
