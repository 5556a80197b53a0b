// The live feed: new alerts and classifications as cards, as the gateway streams them.
import { useEffect, useRef, useState } from "preact/hooks";
import { subscribe } from "./api.js";
import { isoOfMjd } from "./astro.js";
import { fmt, Link, objectPath } from "./nav.jsx";

const MAX_CARDS = 200;

const ALERTS = `subscription($f: AlertFilterInput) { alerts(filter: $f) { oid candid mjd band survey magpsf sigmapsf isdiffpos psfFlux ra dec storedAt missed } }`;
const CLASSES = `subscription($f: ClassificationFilterInput) { classifications(filter: $f) { oid candid classifierName className probability ranking survey storedAt missed } }`;

export function LivePage() {
  const [cards, setCards] = useState([]);
  const [dropped, setDropped] = useState(0);
  const [paused, setPaused] = useState(false);
  const [survey, setSurvey] = useState("");
  const [minProb, setMinProb] = useState(0.5);
  const [kinds, setKinds] = useState({ alerts: true, classifications: true });
  const pending = useRef([]);
  const [waiting, setWaiting] = useState(0);
  const pausedRef = useRef(paused);
  pausedRef.current = paused;

  useEffect(() => {
    const add = (card) => {
      if (pausedRef.current) { pending.current.push(card); setWaiting(pending.current.length); return; }
      setCards((cs) => {
        const next = [card, ...cs];
        if (next.length > MAX_CARDS) setDropped((d) => d + next.length - MAX_CARDS);
        return next.slice(0, MAX_CARDS);
      });
    };
    const filter = survey ? { survey } : {};
    const subs = [];
    let n = 0;
    if (kinds.alerts) subs.push(subscribe(ALERTS, { f: filter }, (d) => add({ id: `a${n++}`, kind: "alert", ...d.alerts })));
    if (kinds.classifications) subs.push(subscribe(CLASSES, { f: { ...filter, ranking: 1, probabilityMin: minProb } }, (d) => add({ id: `c${n++}`, kind: "classification", ...d.classifications })));
    return () => subs.forEach((u) => u());
  }, [survey, minProb, kinds.alerts, kinds.classifications]);

  const resume = () => {
    const queued = pending.current.reverse();
    pending.current = []; setWaiting(0); setPaused(false);
    setCards((cs) => {
      const next = [...queued, ...cs];
      if (next.length > MAX_CARDS) setDropped((d) => d + next.length - MAX_CARDS);
      return next.slice(0, MAX_CARDS);
    });
  };
  const missed = cards.reduce((a, c) => a + (c.missed || 0), 0);
  return (
    <section aria-labelledby="live-title">
      <h1 id="live-title">Live</h1>
      <div class="toolbar" role="toolbar" aria-label="Live feed">
        <label>Survey <select value={survey} onChange={(e) => setSurvey(e.target.value)}><option value="">both</option><option>ZTF</option><option>LSST</option></select></label>
        <label><input type="checkbox" checked={kinds.alerts} onChange={(e) => setKinds({ ...kinds, alerts: e.target.checked })} /> alerts</label>
        <label><input type="checkbox" checked={kinds.classifications} onChange={(e) => setKinds({ ...kinds, classifications: e.target.checked })} /> classifications</label>
        <label>P ≥ <input type="number" min="0" max="1" step="0.05" value={minProb} onChange={(e) => setMinProb(Number(e.target.value))} /></label>
        {paused ? <button type="button" id="resume" onClick={resume}>Resume ({waiting} new)</button>
          : <button type="button" id="pause" onClick={() => setPaused(true)}>Pause</button>}
        <span id="live-count" aria-live="polite">{cards.length} shown{dropped ? `, ${dropped} older dropped` : ""}{missed ? `, ${missed} missed by the gateway (slow reader)` : ""}</span>
      </div>
      {paused && waiting > 0 && <p class="notice" role="status" id="new-while-paused">{waiting} new while paused</p>}
      <ul class="cards live" id="live-cards">
        {cards.map((c) => (
          <li key={c.id} class={`card ${c.kind}`} data-oid={c.oid}>
            <Link href={objectPath(c.oid)}><strong>{c.oid}</strong></Link> <span class={`badge ${c.survey}`}>{c.survey}</span>
            {c.kind === "alert"
              ? <span>{c.band} {fmt(c.magpsf, 2)} ± {fmt(c.sigmapsf, 2)} mag{c.isdiffpos === "f" ? " (negative)" : ""} · {isoOfMjd(c.mjd)}</span>
              : <span>{c.classifierName}: <strong>{c.className}</strong> {fmt(c.probability, 2)}</span>}
            <small>stored {new Date(c.storedAt * 1000).toISOString().slice(11, 19)} UTC</small>
          </li>))}
      </ul>
      {!cards.length && <p>Waiting for the stream… (cards appear as alerts and classifications are stored)</p>}
    </section>
  );
}
