// Pure astronomy helpers: coordinates, search-bar parsing, periodograms, FITS, stretches.

const D2R = Math.PI / 180;

export function pad(n, w, d = 0) {
  const s = n.toFixed(d);
  return s.padStart(w + (d ? d + 1 : 0), "0");
}

/** RA [deg] as hh:mm:ss.ss */
export function raToHms(ra) {
  let s = ((ra % 360) + 360) % 360 / 15 * 3600;
  s = Math.round(s * 100) / 100;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  return `${pad(h % 24, 2)}:${pad(m, 2)}:${pad(s, 2, 2)}`;
}

/** Dec [deg] as ±dd:mm:ss.s */
export function decToDms(dec) {
  const sign = dec < 0 ? "-" : "+";
  let s = Math.round(Math.abs(dec) * 36000) / 10;
  const d = Math.floor(s / 3600); s -= d * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  return `${sign}${pad(d, 2)}:${pad(m, 2)}:${pad(s, 2, 1)}`;
}

/** Galactic (l, b) [deg] of ICRS (ra, dec) [deg] (the IAU 1958 pole, as astropy). */
export function galactic(ra, dec) {
  const a = ra * D2R, d = dec * D2R;
  const x = Math.cos(d) * Math.cos(a), y = Math.cos(d) * Math.sin(a), z = Math.sin(d);
  // rows of the ICRS -> Galactic rotation matrix (Hipparcos, ESA 1997 vol. 1, 1.5.3)
  const R = [[-0.0548755604162154, -0.8734370902348850, -0.4838350155487132],
    [0.4941094278755837, -0.4448296299600112, 0.7469822444972189],
    [-0.8676661490190047, -0.1980763734312015, 0.4559837761750669]];
  const gx = R[0][0] * x + R[0][1] * y + R[0][2] * z;
  const gy = R[1][0] * x + R[1][1] * y + R[1][2] * z;
  const gz = R[2][0] * x + R[2][1] * y + R[2][2] * z;
  const l = (Math.atan2(gy, gx) / D2R + 360) % 360;
  const b = Math.asin(Math.max(-1, Math.min(1, gz))) / D2R;
  return [l, b];
}

export const ZTF_ID = /^ZTF\d{2}[a-z]{7}$/i;
export const LSST_ID = /^\d{6,20}$/;

function sexagesimal(text, hours) {
  const m = text.trim().match(/^([+-]?)(\d{1,3})[:hd\s°]\s*(\d{1,2})[:m'\s′]\s*(\d{1,2}(?:\.\d*)?)[s"″]?$/i);
  if (!m) return null;
  const v = Number(m[2]) + Number(m[3]) / 60 + Number(m[4]) / 3600;
  if (Number(m[3]) >= 60 || Number(m[4]) >= 60) return null;
  return (m[1] === "-" ? -v : v) * (hours ? 15 : 1);
}

/** A radius with an optional unit (", arcsec, ', arcmin, d, deg) in arcsec. */
export function radiusArcsec(text) {
  const m = text.trim().match(/^(\d+(?:\.\d*)?|\.\d+)\s*("|″|arcsec|as|'|′|arcmin|am|d|deg|°)?$/i);
  if (!m) return null;
  const v = Number(m[1]), unit = (m[2] || '"').toLowerCase();
  if (["'", "′", "arcmin", "am"].includes(unit)) return v * 60;
  if (["d", "deg", "°"].includes(unit)) return v * 3600;
  return v;
}

/** Coordinates in decimal degrees or sexagesimal, with an optional radius; or null. */
export function parseCoordinates(text) {
  const t = text.trim().replace(/,/g, " ").replace(/\s+/g, " ");
  // decimal: "ra dec [radius]"
  let m = t.match(/^(-?\d+(?:\.\d*)?)\s+([+-]?\d+(?:\.\d*)?)(?:\s+(\S+))?$/);
  if (m) {
    const ra = Number(m[1]), dec = Number(m[2]);
    const radius = m[3] ? radiusArcsec(m[3]) : 10;
    if (ra < 0 || ra >= 360 || Math.abs(dec) > 90 || radius === null) return null;
    return { ra, dec, radius };
  }
  // sexagesimal: "hh:mm:ss ±dd:mm:ss [radius]" or "12h34m56s +12d34m56s" or 6 numbers
  const parts = t.split(" ");
  let raText, decText, rest;
  if (parts.length >= 6 && parts.slice(0, 6).every((p) => /^[+-]?\d+(\.\d*)?$/.test(p))) {
    raText = parts.slice(0, 3).join(":"); decText = parts.slice(3, 6).join(":"); rest = parts.slice(6);
  } else {
    [raText, decText, ...rest] = parts;
  }
  if (!raText || !decText || rest.length > 1) return null;
  const ra = sexagesimal(raText, true), dec = sexagesimal(decText, false);
  if (ra === null || dec === null || ra >= 360 || Math.abs(dec) > 90) return null;
  const radius = rest.length ? radiusArcsec(rest[0]) : 10;
  return radius === null ? null : { ra, dec, radius };
}

// key=value (and key>=value, key<=value) terms of the search bar -> URL parameters
const KEYS = {
  survey: ["survey"], classifier: ["classifier"], class: ["class"], "class_name": ["class"],
  prob: ["pmin"], probability: ["pmin"], ndet: ["ndetmin", "ndetmax"],
  firstmjd: ["firstmjdmin", "firstmjdmax"], lastmjd: ["lastmjdmin", "lastmjdmax"],
  anomaly: ["amin", "amax"], radius: ["radius"], ra: ["ra"], dec: ["dec"], order: ["order"],
};

/**
 * What the search bar asks for: {object: oid} to open one object, {params} for a search,
 * or {error} saying which part was not understood.
 */
export function parseSearch(text) {
  const t = text.trim();
  if (!t) return { params: {} };
  if (ZTF_ID.test(t)) return { object: t.slice(0, 3).toUpperCase() + t.slice(3).toLowerCase() };
  if (LSST_ID.test(t)) return { object: t };
  const terms = t.match(/[\w.]+\s*(?:>=|<=|=|>|<)\s*[^\s]+/g) || [];
  let rest = t;
  const params = {};
  for (const term of terms) {
    rest = rest.replace(term, " ");
    const m = term.match(/^([\w.]+)\s*(>=|<=|=|>|<)\s*(.+)$/);
    const key = m[1].toLowerCase(), op = m[2], value = m[3];
    const names = KEYS[key];
    if (!names) return { error: `unknown key "${m[1]}" (known: ${Object.keys(KEYS).join(", ")})` };
    if (names.length === 2) {
      if (op === "=") { params[names[0]] = value; params[names[1]] = value; }
      else params[op[0] === ">" ? names[0] : names[1]] = value;
    } else {
      params[names[0]] = key === "survey" ? value.toUpperCase() : value;
    }
  }
  rest = rest.trim();
  if (rest) {
    const ids = rest.split(/[\s,]+/);
    if (ids.every((id) => ZTF_ID.test(id) || LSST_ID.test(id))) {
      params.oids = ids.join(",");
    } else {
      const cone = parseCoordinates(rest);
      if (!cone) return { error: `"${rest}" is neither an object id nor coordinates (decimal or sexagesimal, with an optional radius such as 5" or 1')` };
      params.ra = String(+cone.ra.toFixed(6)); params.dec = String(+cone.dec.toFixed(6));
      params.radius = String(+cone.radius.toFixed(3));
    }
  }
  return { params };
}

/**
 * Generalised Lomb-Scargle power (Zechmeister & Kürster 2009) of magnitudes y with
 * errors dy at times t [d], per band (mean-subtracted each), at the given frequencies [1/d].
 */
export function periodogram(bands, freqs) {
  const power = new Float64Array(freqs.length);
  let totalW = 0;
  for (const { t, y, dy } of bands) {
    if (t.length < 5) continue;
    const w = dy.map((e) => 1 / Math.max(e, 0.01) ** 2);
    const W = w.reduce((a, b) => a + b, 0);
    const wn = w.map((v) => v / W);
    const ym = y.reduce((a, v, i) => a + wn[i] * v, 0);
    const yy = y.reduce((a, v, i) => a + wn[i] * (v - ym) ** 2, 0);
    if (yy <= 0) continue;
    totalW += 1;
    for (let k = 0; k < freqs.length; k++) {
      const om = 2 * Math.PI * freqs[k];
      let Y = 0, C = 0, S = 0, YC = 0, YS = 0, CC = 0, CS = 0;
      for (let i = 0; i < t.length; i++) {
        const c = Math.cos(om * t[i]), s = Math.sin(om * t[i]), v = y[i] - ym, a = wn[i];
        C += a * c; S += a * s; YC += a * v * c; YS += a * v * s; CC += a * c * c; CS += a * c * s;
      }
      Y = 0;
      const SS = 1 - CC;
      const cc = CC - C * C, ss = SS - S * S, cs = CS - C * S, yc = YC - Y * C, ys = YS - Y * S;
      const D = cc * ss - cs * cs;
      if (D > 0) power[k] += (ss * yc * yc + cc * ys * ys - 2 * cs * yc * ys) / (yy * D);
    }
  }
  return totalW ? power.map((p) => p / totalW) : power;
}

/** The pixels of a FITS image (the primary HDU or the first image extension). */
export function parseFits(buffer) {
  const bytes = new Uint8Array(buffer);
  let offset = 0;
  while (offset + 2880 <= bytes.length) {
    const header = {};
    let end = false, pos = offset;
    while (!end && pos + 80 <= bytes.length) {
      const card = String.fromCharCode(...bytes.subarray(pos, pos + 80));
      pos += 80;
      const key = card.slice(0, 8).trim();
      if (key === "END") end = true;
      else if (card[8] === "=") {
        let v = card.slice(10).split("/")[0].trim();
        header[key] = v.startsWith("'") ? v.replace(/'/g, "").trim() : Number(v);
      }
    }
    const dataStart = Math.ceil(pos / 2880) * 2880;
    const bitpix = header.BITPIX, naxis = header.NAXIS || 0;
    const dims = [];
    for (let i = 1; i <= naxis; i++) dims.push(header["NAXIS" + i]);
    const count = dims.length ? dims.reduce((a, b) => a * b, 1) : 0;
    const size = count * Math.abs(bitpix) / 8;
    if (naxis === 2 && count > 0) {
      const view = new DataView(buffer, dataStart, size);
      const data = new Float64Array(count);
      const bscale = header.BSCALE ?? 1, bzero = header.BZERO ?? 0;
      for (let i = 0; i < count; i++) {
        let v;
        switch (bitpix) {
          case -32: v = view.getFloat32(i * 4); break;
          case -64: v = view.getFloat64(i * 8); break;
          case 16: v = view.getInt16(i * 2); break;
          case 32: v = view.getInt32(i * 4); break;
          case 8: v = view.getUint8(i); break;
          default: throw new Error(`unsupported BITPIX ${bitpix}`);
        }
        data[i] = v * bscale + bzero;
      }
      return { width: dims[0], height: dims[1], data, header };
    }
    offset = dataStart + Math.ceil(size / 2880) * 2880;
  }
  throw new Error("no 2-D image in the FITS file");
}

function finiteSorted(data) {
  const v = Array.from(data).filter(Number.isFinite);
  v.sort((a, b) => a - b);
  return v;
}

/** IRAF's zscale limits (a simplified fit: the sample's central slope, contrast 0.25). */
export function zscale(data, contrast = 0.25) {
  const v = finiteSorted(data);
  if (!v.length) return [0, 1];
  const n = v.length, mid = v[Math.floor(n / 2)];
  const lo = Math.floor(n * 0.25), hi = Math.floor(n * 0.75);
  const slope = hi > lo ? (v[hi] - v[lo]) / (hi - lo) : 0;
  const z1 = Math.max(v[0], mid - (slope / contrast) * (n / 2));
  const z2 = Math.min(v[n - 1], mid + (slope / contrast) * (n / 2));
  return z2 > z1 ? [z1, z2] : [v[0], v[n - 1] || v[0] + 1];
}

/** Pixel values scaled to [0, 1] by a stretch: linear (0.5-99.5 %), asinh, or zscale. */
export function stretch(data, kind) {
  const v = finiteSorted(data);
  let lo, hi;
  if (kind === "zscale") [lo, hi] = zscale(data);
  else { lo = v[Math.floor(v.length * 0.005)] ?? 0; hi = v[Math.floor(v.length * 0.995)] ?? 1; }
  const span = hi - lo || 1;
  const out = new Float32Array(data.length);
  const q = 10, norm = Math.asinh(q);
  for (let i = 0; i < data.length; i++) {
    let x = (data[i] - lo) / span;
    x = Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
    out[i] = kind === "asinh" ? Math.asinh(q * x) / norm : x;
  }
  return out;
}

// colour maps as a few stops, interpolated
const MAPS = {
  gray: [[0, 0, 0], [255, 255, 255]],
  viridis: [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
  inferno: [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]],
  red: [[0, 0, 0], [255, 40, 20]],
};
export const COLORMAPS = Object.keys(MAPS);

/** RGBA bytes of scaled values [0, 1] through a colour map (FITS rows bottom-up). */
export function colorize(values, width, height, map) {
  const stops = MAPS[map] || MAPS.gray, n = stops.length - 1;
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = values[y * width + x] * n, i = Math.min(n - 1, Math.floor(v)), f = v - i;
      const a = stops[i], b = stops[i + 1];
      const o = ((height - 1 - y) * width + x) * 4;
      rgba[o] = a[0] + (b[0] - a[0]) * f; rgba[o + 1] = a[1] + (b[1] - a[1]) * f;
      rgba[o + 2] = a[2] + (b[2] - a[2]) * f; rgba[o + 3] = 255;
    }
  }
  return rgba;
}

/** An MJD [d] as an ISO date and time (UTC, to the second). */
export function isoOfMjd(mjd) {
  return new Date((mjd - 40587) * 86400000).toISOString().replace("T", " ").slice(0, 19);
}
