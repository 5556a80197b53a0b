// Cutouts of one epoch: science, template, difference from their FITS files, drawn with a
// chosen stretch and colour map, zoomed together; FITS and PNG downloads.
import { useEffect, useRef, useState } from "preact/hooks";
import { COLORMAPS, colorize, parseFits, stretch, isoOfMjd } from "./astro.js";

export const stampUrl = (oid, candid, kind, format) =>
  `/download/stamp/${encodeURIComponent(oid)}/${candid}/${kind}.${format}`;

function StampCanvas({ oid, candid, kind, stretchKind, colormap, zoom }) {
  const canvas = useRef();
  const [state, setState] = useState({ error: null, image: null });
  useEffect(() => {
    let live = true;
    setState({ error: null, image: null });
    fetch(stampUrl(oid, candid, kind, "fits")).then(async (r) => {
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const image = parseFits(await r.arrayBuffer());
      if (live) setState({ error: null, image });
    }).catch((e) => live && setState({ error: e.message, image: null }));
    return () => { live = false; };
  }, [oid, candid, kind]);
  useEffect(() => {
    const img = state.image;
    if (!img) return;
    const c = canvas.current;
    c.width = img.width; c.height = img.height;
    const rgba = colorize(stretch(img.data, stretchKind), img.width, img.height, colormap);
    c.getContext("2d").putImageData(new ImageData(rgba, img.width, img.height), 0, 0);
  }, [state.image, stretchKind, colormap]);
  return (
    <figure class="stamp" data-kind={kind} data-candid={String(candid)}>
      <div class="stamp-view">
        {state.error ? <p class="error">{kind}: {state.error}</p>
          : <canvas ref={canvas} role="img" aria-label={`${kind} cutout of alert ${candid}`} style={`transform: scale(${zoom})`} />}
      </div>
      <figcaption>{kind} · <a href={stampUrl(oid, candid, kind, "fits")} download>FITS</a> · <a href={stampUrl(oid, candid, kind, "png")} download>PNG</a></figcaption>
    </figure>
  );
}

/** stamps: [{candid, mjd, fid, kinds}] in time order; candid: the epoch shown; onEpoch(candid). */
export function Stamps({ oid, stamps, candid, onEpoch }) {
  const [stretchKind, setStretch] = useState("zscale");
  const [colormap, setColormap] = useState("gray");
  const [zoom, setZoom] = useState(1);
  if (!stamps.length) return <p>No cutouts stored for this object.</p>;
  const index = Math.max(0, stamps.findIndex((s) => String(s.candid) === String(candid)));
  const stamp = stamps[index];
  const wheel = (e) => { e.preventDefault(); setZoom((z) => Math.min(8, Math.max(1, z * (e.deltaY < 0 ? 1.25 : 0.8)))); };
  return (
    <div class="stamps">
      <div class="toolbar">
        <label>Epoch <select id="stamp-epoch" value={String(stamp.candid)} onChange={(e) => onEpoch(e.target.value)}>
          {stamps.map((s) => <option key={s.candid} value={String(s.candid)}>{isoOfMjd(s.mjd)} (MJD {s.mjd.toFixed(4)}) · {s.candid}</option>)}
        </select></label>
        <button type="button" aria-label="earlier epoch" disabled={index === 0} onClick={() => onEpoch(String(stamps[index - 1].candid))}>◀</button>
        <button type="button" aria-label="later epoch" disabled={index === stamps.length - 1} onClick={() => onEpoch(String(stamps[index + 1].candid))}>▶</button>
        <label>Stretch <select value={stretchKind} onChange={(e) => setStretch(e.target.value)}>
          {["linear", "asinh", "zscale"].map((k) => <option key={k}>{k}</option>)}</select></label>
        <label>Colours <select value={colormap} onChange={(e) => setColormap(e.target.value)}>
          {COLORMAPS.map((k) => <option key={k}>{k}</option>)}</select></label>
        <button type="button" aria-label="zoom in" onClick={() => setZoom(Math.min(8, zoom * 1.5))}>+</button>
        <button type="button" aria-label="zoom out" onClick={() => setZoom(Math.max(1, zoom / 1.5))}>−</button>
        <span aria-live="polite">×{zoom.toFixed(1)}</span>
      </div>
      <div class="stamp-row" id="stamps" data-candid={String(stamp.candid)} onWheel={wheel}>
        {stamp.kinds.map((k) => <StampCanvas key={k} oid={oid} candid={stamp.candid} kind={k} stretchKind={stretchKind} colormap={colormap} zoom={zoom} />)}
      </div>
    </div>
  );
}
