// Sky views: an all-sky map of search results (Hammer-Aitoff, SVG), and Aladin Lite
// loaded from CDS at run time (GPL-3, never bundled) with an offline fallback.
import { useEffect, useRef, useState } from "preact/hooks";
import { navigate, objectPath } from "./nav.jsx";
import { raToHms, decToDms, galactic } from "./astro.js";

/** Hammer-Aitoff projection of (ra, dec) [deg] to x in [-2√2, 2√2], y in [-√2, √2] (RA increasing leftwards). */
function hammer(ra, dec) {
  const l = ((ra > 180 ? ra - 360 : ra) * -Math.PI) / 180, b = (dec * Math.PI) / 180;
  const z = Math.sqrt(1 + Math.cos(b) * Math.cos(l / 2));
  return [(2 * Math.SQRT2 * Math.cos(b) * Math.sin(l / 2)) / z, (Math.SQRT2 * Math.sin(b)) / z];
}

export function SkyMap({ points }) {
  const W = 720, H = 360, sx = W / (4 * Math.SQRT2) * 0.98, sy = H / (2 * Math.SQRT2) * 0.98;
  const xy = (ra, dec) => { const [x, y] = hammer(ra, dec); return [W / 2 + x * sx, H / 2 - y * sy]; };
  const grid = [];
  for (let ra = 0; ra < 360; ra += 30) {
    let d = ""; for (let dec = -90; dec <= 90; dec += 5) { const [x, y] = xy(ra === 180 ? 180.0001 : ra, dec); d += `${dec === -90 ? "M" : "L"}${x.toFixed(1)},${y.toFixed(1)}`; }
    grid.push(d);
  }
  for (let dec = -60; dec <= 60; dec += 30) {
    let d = ""; for (let ra = 180.0001; ra <= 540; ra += 5) { const [x, y] = xy(ra % 360, dec); d += `${ra === 180.0001 ? "M" : "L"}${x.toFixed(1)},${y.toFixed(1)}`; }
    grid.push(d);
  }
  let plane = "";  // the Galactic plane, b = 0
  for (let l = 0; l <= 360; l += 2) {
    const [ra, dec] = planePoint(l); const [x, y] = xy(ra, dec);
    plane += `${l === 0 ? "M" : "L"}${x.toFixed(1)},${y.toFixed(1)}`;
  }
  return (
    <figure class="skymap">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`Sky map of ${points.length} objects (Hammer-Aitoff, equatorial)`}>
        <ellipse cx={W / 2} cy={H / 2} rx={2 * Math.SQRT2 * sx} ry={Math.SQRT2 * sy} class="sky-bg" />
        {grid.map((d, i) => <path key={i} d={d} class="sky-grid" />)}
        <path d={plane} class="sky-plane" />
        {points.map((p) => {
          const [x, y] = xy(p.ra, p.dec);
          return (
            <circle key={p.oid} cx={x} cy={y} r="4" class={`sky-pt ${p.survey}`} tabIndex={0} role="link"
              aria-label={`${p.oid} at ${raToHms(p.ra)} ${decToDms(p.dec)}`}
              onClick={() => navigate(objectPath(p.oid))} onKeyDown={(e) => e.key === "Enter" && navigate(objectPath(p.oid))}>
              <title>{p.oid}</title>
            </circle>);
        })}
      </svg>
      <figcaption>Equatorial, RA increasing to the left; the curve is the Galactic plane. <span class="ztf-dot">●</span> ZTF <span class="lsst-dot">●</span> LSST</figcaption>
    </figure>
  );
}

function planePoint(l) {
  // invert galactic() by a fixed matrix transpose: (l, 0) -> (ra, dec)
  const R = [[-0.0548755604162154, -0.8734370902348850, -0.4838350155487132],
    [0.4941094278755837, -0.4448296299600112, 0.7469822444972189],
    [-0.8676661490190047, -0.1980763734312015, 0.4559837761750669]];
  const g = [Math.cos(l * Math.PI / 180), Math.sin(l * Math.PI / 180), 0];
  const x = R[0][0] * g[0] + R[1][0] * g[1] + R[2][0] * g[2];
  const y = R[0][1] * g[0] + R[1][1] * g[1] + R[2][1] * g[2];
  const z = R[0][2] * g[0] + R[1][2] * g[1] + R[2][2] * g[2];
  return [(Math.atan2(y, x) * 180 / Math.PI + 360) % 360, Math.asin(z) * 180 / Math.PI];
}

const ALADIN_URL = "https://aladin.cds.unistra.fr/AladinLite/api/v3/latest/aladin.js";
let aladinLoad = null;

function loadAladin(timeoutMs) {
  if (!aladinLoad) {
    aladinLoad = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = ALADIN_URL; script.charset = "utf-8";
      const timer = setTimeout(() => reject(new Error("timed out")), timeoutMs);
      script.onload = () => { clearTimeout(timer); window.A ? resolve(window.A) : reject(new Error("no A")); };
      script.onerror = () => { clearTimeout(timer); reject(new Error("could not load")); };
      document.head.appendChild(script);
    }).catch((e) => { aladinLoad = null; throw e; });
  }
  return aladinLoad;
}

/** Aladin Lite centred on the object; the stamp and coordinates when CDS cannot be reached. */
export function SkyView({ ra, dec, stampUrl, oid }) {
  const box = useRef();
  const [state, setState] = useState("loading");
  useEffect(() => {
    let live = true;
    loadAladin(8000).then(async (A) => {
      if (!live) return;
      await A.init;
      A.aladin(box.current, { survey: "P/PanSTARRS/DR1/color-z-zg-g", fov: 0.03, target: `${ra} ${dec}`, showReticle: true });
      setState("aladin");
    }).catch(() => live && setState("fallback"));
    return () => { live = false; };
  }, [ra, dec]);
  const [l, b] = galactic(ra, dec);
  return (
    <div class="skyview">
      <div ref={box} class="aladin" style={state === "aladin" ? "" : "display:none"} aria-label="Aladin Lite sky view" />
      {state === "loading" && <p>Loading Aladin Lite from CDS…</p>}
      {state === "fallback" && (
        <div class="aladin-fallback" id="aladin-fallback" role="note">
          <p>Aladin Lite could not be loaded from CDS (offline?). The position and the latest science stamp:</p>
          {stampUrl && <img src={stampUrl} alt={`latest science stamp of ${oid}`} width="128" height="128" />}
          <p>{raToHms(ra)} {decToDms(dec)} · l {l.toFixed(4)}° b {b.toFixed(4)}°</p>
        </div>)}
    </div>
  );
}
