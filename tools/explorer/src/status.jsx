// Status: ingest rate, latency and lag from the store's live feed, dead letters by reason,
// classifier versions, and the gateway's own metrics; refreshed every 5 s.
import { useEffect, useState } from "preact/hooks";
import { gql } from "./api.js";
import { fmt, message } from "./nav.jsx";

const STATUS = `query { status { windowSeconds alertsInWindow alertsPerMinute lastStoredAt secondsSinceLastAlert
  medianLatencySeconds objects { survey count } deadLetters { reason count } }
  classifiers { name versions survey model } }`;

/** The gateway's Prometheus metrics: {name: total over its labels}. */
export function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/);
    if (m) out[m[1]] = (out[m[1]] || 0) + Number(m[3]);
  }
  return out;
}

export function StatusPage() {
  const [s, setS] = useState(null);
  const [metrics, setMetrics] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let live = true;
    const load = async () => {
      try {
        const [d, m] = await Promise.all([gql(STATUS), fetch("/metrics").then((r) => r.text())]);
        if (live) { setS(d); setMetrics(parseMetrics(m)); setError(null); }
      } catch (e) { if (live) setError(message(e)); }
    };
    load();
    const t = setInterval(load, 5000);
    return () => { live = false; clearInterval(t); };
  }, []);
  return (
    <section aria-labelledby="status-title">
      <h1 id="status-title">Status</h1>
      {error && <p class="error" role="alert">{error}</p>}
      {s && <div class="grid">
        <div class="panel" id="ingest">
          <h2>Ingest</h2>
          <dl class="facts">
            <dt>Alerts stored</dt><dd id="alerts-per-minute">{fmt(s.status.alertsPerMinute, 1)} per minute ({s.status.alertsInWindow} in the last {s.status.windowSeconds.toFixed(0)} s)</dd>
            <dt>Last alert stored</dt><dd>{s.status.secondsSinceLastAlert === null ? "none in the window" : `${fmt(s.status.secondsSinceLastAlert, 1)} s ago`}</dd>
            <dt>Lag behind the stream</dt><dd id="latency">{s.status.medianLatencySeconds === null ? "–" : `${fmt(s.status.medianLatencySeconds, 1)} s median from exposure to stored`}</dd>
            {s.status.objects.map((o) => <><dt key={o.survey}>{o.survey} objects</dt><dd>{o.count}</dd></>)}
          </dl>
        </div>
        <div class="panel" id="dead-letters">
          <h2>Dead letters</h2>
          {s.status.deadLetters.length ? <table class="compact" aria-label="dead letters by reason"><thead><tr><th scope="col">reason</th><th scope="col">alerts</th></tr></thead>
            <tbody>{s.status.deadLetters.map((d) => <tr key={d.reason}><td>{d.reason}</td><td>{d.count}</td></tr>)}</tbody></table> : <p>None.</p>}
        </div>
        <div class="panel" id="classifiers">
          <h2>Classifiers</h2>
          <table class="compact" aria-label="classifiers"><thead><tr><th scope="col">classifier</th><th scope="col">survey</th><th scope="col">versions</th></tr></thead>
            <tbody>{s.classifiers.map((c) => <tr key={c.name + c.survey}><td>{c.name}</td><td>{c.survey}</td><td>{c.versions.join(", ")}</td></tr>)}</tbody></table>
        </div>
        {metrics && <div class="panel" id="gateway-metrics">
          <h2>Gateway</h2>
          <dl class="facts">
            <dt>Requests</dt><dd>{metrics.nightjar_gateway_requests_total ?? 0}</dd>
            <dt>Errors</dt><dd>{metrics.nightjar_gateway_errors_total ?? 0}</dd>
            <dt>Open subscriptions</dt><dd>{metrics.nightjar_gateway_active_subscriptions ?? 0}</dd>
            <dt>Live events received</dt><dd>{metrics.nightjar_gateway_live_events_total ?? 0}</dd>
            <dt>Events dropped (slow readers)</dt><dd>{metrics.nightjar_gateway_dropped_messages_total ?? 0}</dd>
            <dt>Live feed</dt><dd>{metrics.nightjar_gateway_live_feed_ready ? "running" : "idle"}</dd>
          </dl>
        </div>}
      </div>}
    </section>
  );
}
