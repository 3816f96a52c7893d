// VAE Explorer live decoding: the decoder runs in the page, so dragging redraws on every frame.
//
// One Streamlit components-v2 module with four modes, chosen by data.mode:
//   "weights"  parses a decoder payload (explorer.decoder_export) once per payload_id into DECODERS;
//              it draws nothing. Its element carries ~1.5 MB but never changes, so Streamlit's
//              message cache sends it once per session, not once per rerun.
//   "latent"   one <input type=range> per latent dimension + the decoded digit.
//   "scrub"    one range input along a path of codes (linear or slerp) + the decoded digit.
//   "map"      a 2-D latent plane; hovering decodes that point, clicking reports it.
// Decoding is plain Float32Array matrix products: ~0.5 M multiply-adds for 16-256-512-784.
// The module stays loaded for the life of the page, so parsed decoders survive reruns.

const DECODERS = new Map(); // payload_id -> decoder (latest MAX_DECODERS kept)
const WAITERS = new Map(); // payload_id -> [resolve, ...] for instances mounted before their weights
const INSTANCES = new WeakMap(); // parentElement -> instance
const MAX_DECODERS = 4;
const STAT_WINDOW = 2000; // decode+paint durations kept for p50/p95
const REGISTRY = (globalThis.__vaeLive = globalThis.__vaeLive || {}); // user key -> instance (tests, bench)

// ---------------------------------------------------------------- decoding (decoder.js: buildDecoder)

function registerDecoder(p) {
  if (!p || !p.payload_id || DECODERS.has(p.payload_id)) return;
  DECODERS.set(p.payload_id, buildDecoder(p));
  while (DECODERS.size > MAX_DECODERS) DECODERS.delete(DECODERS.keys().next().value);
  for (const resolve of WAITERS.get(p.payload_id) || []) resolve(DECODERS.get(p.payload_id));
  WAITERS.delete(p.payload_id);
}

function whenDecoder(id) {
  if (DECODERS.has(id)) return Promise.resolve(DECODERS.get(id));
  return new Promise((resolve) => {
    if (!WAITERS.has(id)) WAITERS.set(id, []);
    WAITERS.get(id).push(resolve);
  });
}

// ---------------------------------------------------------------- interpolation (explorer.latent.interpolate)

function norm(a) {
  let s = 0;
  for (const v of a) s += v * v;
  return Math.sqrt(s);
}

function interpolate(a, b, t, mode) {
  const n = a.length;
  const out = new Array(n);
  const na = norm(a), nb = norm(b);
  if (mode !== "slerp" || na < 1e-8 || nb < 1e-8) {
    for (let i = 0; i < n; i++) out[i] = (1 - t) * a[i] + t * b[i];
    return out;
  }
  let dot = 0;
  for (let i = 0; i < n; i++) dot += (a[i] / na) * (b[i] / nb);
  const omega = Math.acos(Math.min(1, Math.max(-1, dot)));
  const r = (1 - t) * na + t * nb;
  for (let i = 0; i < n; i++) {
    const ua = a[i] / na, ub = b[i] / nb;
    const dir = omega < 1e-6 ? (1 - t) * ua + t * ub
      : (Math.sin((1 - t) * omega) * ua + Math.sin(t * omega) * ub) / Math.sin(omega);
    out[i] = dir * r;
  }
  return out;
}

// a point at t in [0, 1] along a path of >= 2 codes, each leg an equal share of t
function pathPoint(path, t, mode) {
  const legs = path.length - 1;
  const s = Math.min(Math.max(t, 0), 1) * legs;
  const j = Math.min(Math.floor(s), legs - 1);
  return interpolate(path[j], path[j + 1], s - j, mode);
}

// ---------------------------------------------------------------- shared instance plumbing

function el(tag, attrs = {}, children = []) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v;
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function fmt(v) {
  return (Math.abs(v) < 5e-5 ? 0 : v).toFixed(2);
}

let UID = 0;

function makeDigit(inst, px) {
  const canvas = el("canvas", { class: "digit", role: "img", "aria-label": "Decoded digit" });
  canvas.dataset.frames = "0";
  canvas.style.width = canvas.style.height = `${px}px`;
  inst.canvas = canvas;
  return canvas;
}

// decode inst.currentZ() and paint it; timed with performance.now() for the benchmark
function paint(inst) {
  inst.raf = 0;
  const dec = inst.decoder;
  if (!dec) return;
  const t0 = performance.now();
  const z = inst.currentZ();
  const pixels = dec.decode(z, inst.label);
  const s = dec.size;
  if (inst.canvas.width !== s) inst.canvas.width = inst.canvas.height = s;
  if (!inst.image || inst.image.width !== s) inst.image = inst.ctx2d().createImageData(s, s);
  const d = inst.image.data;
  for (let k = 0; k < pixels.length; k++) {
    const v = Math.round(pixels[k] * 255);
    d[4 * k] = d[4 * k + 1] = d[4 * k + 2] = v;
    d[4 * k + 3] = 255;
  }
  inst.ctx2d().putImageData(inst.image, 0, 0);
  const dt = performance.now() - t0;
  inst.times[inst.frames % STAT_WINDOW] = dt;
  inst.frames += 1;
  inst.pixels = Float32Array.from(pixels);
  inst.paintedZ = z.slice();
  inst.paintedLabel = inst.label;
  inst.canvas.dataset.frames = String(inst.frames);
  inst.root.dataset.z = JSON.stringify(z);
  inst.root.dataset.frames = String(inst.frames);
  if (inst.afterPaint) inst.afterPaint(z);
}

function schedule(inst) {
  if (!inst.raf && inst.decoder) inst.raf = requestAnimationFrame(() => paint(inst));
}

// report to Python: at once on release (change), at most every reportMs while dragging (input)
function report(inst) {
  clearTimeout(inst.timer);
  inst.timer = 0;
  const value = inst.reportValue();
  const k = JSON.stringify(value);
  if (k === inst.lastReport) return;
  inst.lastReport = k;
  inst.lastReportAt = performance.now();
  inst.reports += 1;
  inst.root.dataset.reports = String(inst.reports);
  inst.api.setStateValue(inst.stateName, { ...value, rev: inst.rev });
}

function reportSoon(inst) {
  const wait = inst.lastReportAt + inst.reportMs - performance.now();
  if (wait <= 0) report(inst);
  else if (!inst.timer) inst.timer = setTimeout(() => report(inst), wait);
}

function stats(inst) {
  const n = Math.min(inst.frames, STAT_WINDOW);
  const t = Array.from(inst.times.slice(0, n)).sort((a, b) => a - b);
  const q = (p) => (n ? t[Math.min(n - 1, Math.floor(p * n))] : null);
  return { frames: inst.frames, reports: inst.reports, p50: q(0.5), p95: q(0.95), max: n ? t[n - 1] : null, n };
}

function newInstance(parent, data, api) {
  const inst = {
    uid: ++UID, parent, api, mode: data.mode, key: data.key, decoder: null, payloadId: null, frames: 0, reports: 0,
    times: new Float64Array(STAT_WINDOW), raf: 0, timer: 0, lastReport: null, lastReportAt: -1e9, rev: null,
    label: 0, reportMs: 250, stateName: "value",
    root: el("div", { class: `live live-${data.mode}` }),
  };
  inst.ctx2d = () => (inst._ctx = inst._ctx || inst.canvas.getContext("2d"));
  inst.stats = () => stats(inst);
  inst.resetStats = () => { inst.frames = 0; inst.times.fill(0); };
  inst.root.__live = inst;
  parent.append(inst.root);
  return inst;
}

function attachDecoder(inst, id) {
  if (inst.payloadId === id) return;
  inst.payloadId = id;
  inst.decoder = null;
  inst.root.dataset.ready = "0";
  whenDecoder(id).then((dec) => {
    if (inst.payloadId !== id) return;
    inst.decoder = dec;
    inst.root.dataset.ready = "1";
    schedule(inst);
  });
}

// ---------------------------------------------------------------- mode: latent sliders

function buildSliders(inst, data) {
  const dims = data.dim_order;
  inst.zOut = {};
  inst.inputs = {};
  const list = el("div", { class: "sliders", role: "group", "aria-label": "Latent code" });
  for (const d of dims) {
    const id = `live${inst.uid}-z${d}`;
    const [lo, hi] = data.ranges[d];
    const name = data.dim_labels[d];
    const input = el("input", {
      type: "range", id, min: String(lo), max: String(hi), step: String(data.step), "aria-label": name,
    });
    input.dataset.dim = String(d);
    const out = el("output", { for: id, class: "value" });
    input.addEventListener("input", () => {
      inst.z[d] = parseFloat(input.value);
      out.textContent = fmt(inst.z[d]);
      schedule(inst);
      reportSoon(inst);
    });
    input.addEventListener("change", () => {
      inst.z[d] = parseFloat(input.value);
      schedule(inst);
      report(inst);
    });
    inst.inputs[d] = input;
    inst.zOut[d] = out;
    list.append(el("div", { class: "row" }, [el("label", { for: id, text: name }), input, out]));
  }
  return list;
}

function showZ(inst) {
  for (const [d, input] of Object.entries(inst.inputs)) {
    input.value = String(inst.z[d]); // the browser snaps the thumb to the step; inst.z keeps the exact value
    input.setAttribute("aria-valuetext", fmt(inst.z[d]));
    inst.zOut[d].textContent = fmt(inst.z[d]);
  }
}

function updateLatent(inst, data) {
  const shape = JSON.stringify([data.dim_order, data.ranges, data.dim_labels, data.step, data.display_px, data.caption]);
  if (shape !== inst.shape) {
    inst.shape = shape;
    inst.root.replaceChildren(
      buildSliders(inst, data),
      el("figure", {}, [makeDigit(inst, data.display_px), el("figcaption", { text: data.caption || "" })]),
    );
    inst._ctx = null;
    inst.image = null;
    if (inst.z) showZ(inst);
  }
  let dirty = false;
  if (inst.rev !== data.rev || !inst.z) { // a new code from Python (or the first): show it
    inst.rev = data.rev;
    inst.z = data.z.slice();
    inst.lastReport = JSON.stringify({ z: inst.z });
    showZ(inst);
    dirty = true;
  }
  inst.root.dataset.rev = String(inst.rev);
  dirty = dirty || inst.label !== (data.label ?? 0) || !inst.image;
  inst.label = data.label ?? 0;
  inst.currentZ = () => inst.z.slice();
  inst.reportValue = () => ({ z: inst.z.slice() });
  inst.stateName = "z";
  if (dirty) schedule(inst); // a rerun that only echoes the user's own report repaints nothing
}

// ---------------------------------------------------------------- mode: scrubber along a path

function updateScrub(inst, data) {
  const shape = JSON.stringify([data.positions, data.display_px, data.caption, data.slider_label]);
  if (shape !== inst.shape) {
    inst.shape = shape;
    const id = `live${inst.uid}-t`;
    const input = el("input", {
      type: "range", id, min: "0", max: String(data.positions - 1), step: "1", "aria-label": data.slider_label,
    });
    const out = el("output", { for: id, class: "value" });
    const sync = () => {
      inst.t = parseInt(input.value, 10) / (data.positions - 1);
      out.textContent = inst.t.toFixed(2);
      input.setAttribute("aria-valuetext", `t = ${inst.t.toFixed(2)}`);
      schedule(inst);
    };
    input.addEventListener("input", () => { sync(); reportSoon(inst); });
    input.addEventListener("change", () => { sync(); report(inst); });
    inst.input = input;
    inst.tOut = out;
    inst.root.replaceChildren(
      el("div", { class: "sliders" }, [el("div", { class: "row" }, [el("label", { for: id, text: data.slider_label }), input, out])]),
      el("figure", {}, [makeDigit(inst, data.display_px), el("figcaption", { text: data.caption || "" })]),
    );
    inst._ctx = null;
    inst.image = null;
    inst.rev = null; // re-apply t to the new slider
  }
  if (inst.rev !== data.rev) {
    inst.rev = data.rev;
    inst.t = data.t;
    inst.input.value = String(Math.round(data.t * (data.positions - 1)));
    inst.tOut.textContent = inst.t.toFixed(2);
  }
  inst.root.dataset.rev = String(inst.rev);
  const what = JSON.stringify([data.path, data.interp, data.label ?? 0, inst.t, inst.shape]);
  const dirty = what !== inst.what || !inst.image;
  inst.what = what;
  inst.path = data.path;
  inst.interp = data.interp;
  inst.label = data.label ?? 0;
  inst.currentZ = () => pathPoint(inst.path, inst.t, inst.interp);
  inst.reportValue = () => ({ t: inst.t, z: inst.currentZ() });
  inst.lastReport = inst.lastReport || JSON.stringify(inst.reportValue());
  inst.stateName = "t";
  if (dirty) schedule(inst);
}

// ---------------------------------------------------------------- mode: 2-D map

const CLASS_COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

function drawMap(inst) {
  const { map, ext, points } = inst;
  const dpr = window.devicePixelRatio || 1;
  const px = inst.mapPx;
  if (map.width !== Math.round(px * dpr)) map.width = map.height = Math.round(px * dpr);
  const g = map.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  const styles = getComputedStyle(inst.root);
  g.fillStyle = styles.getPropertyValue("--st-secondary-background-color").trim() || "#f0f2f6";
  g.fillRect(0, 0, px, px);
  const X = (x) => ((x - ext[0]) / (ext[1] - ext[0])) * px;
  const Y = (y) => px - ((y - ext[2]) / (ext[3] - ext[2])) * px;
  g.strokeStyle = "rgba(128,128,128,0.25)";
  g.lineWidth = 1;
  for (let v = Math.ceil(ext[0]); v <= ext[1]; v++) { g.beginPath(); g.moveTo(X(v), 0); g.lineTo(X(v), px); g.stroke(); }
  for (let v = Math.ceil(ext[2]); v <= ext[3]; v++) { g.beginPath(); g.moveTo(0, Y(v)); g.lineTo(px, Y(v)); g.stroke(); }
  for (const [x, y, c] of points) {
    g.fillStyle = CLASS_COLORS[((c | 0) % 10 + 10) % 10];
    g.globalAlpha = 0.55;
    g.fillRect(X(x) - 1.5, Y(y) - 1.5, 3, 3);
  }
  g.globalAlpha = 1;
  const mark = (xy, color, r) => {
    if (!xy) return;
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath(); g.arc(X(xy[0]), Y(xy[1]), r, 0, 2 * Math.PI); g.stroke();
  };
  mark(inst.picked, styles.getPropertyValue("--st-primary-color").trim() || "#ff4b4b", 7);
  mark(inst.xy, styles.getPropertyValue("--st-text-color").trim() || "#31333f", 4);
}

function updateMap(inst, data) {
  const shape = JSON.stringify([data.extent, data.display_px, data.map_px, data.points_id, data.dims, data.caption]);
  inst.ext = data.extent;
  inst.points = data.points || [];
  inst.mapPx = data.map_px;
  if (shape !== inst.shape) {
    inst.shape = shape;
    const map = el("canvas", {
      class: "map", tabindex: "0", role: "application",
      "aria-label": `Latent map of z${data.dims[0]} and z${data.dims[1]}: hover or use the arrow keys to decode a point, click or press Enter to choose it`,
    });
    map.style.width = map.style.height = `${data.map_px}px`;
    const readout = el("div", { class: "readout", "aria-live": "polite" });
    inst.map = map;
    inst.readout = readout;
    const toXY = (ev) => {
      const r = map.getBoundingClientRect();
      const fx = (ev.clientX - r.left) / r.width, fy = (ev.clientY - r.top) / r.height;
      return [inst.ext[0] + fx * (inst.ext[1] - inst.ext[0]), inst.ext[3] - fy * (inst.ext[3] - inst.ext[2])];
    };
    const move = (xy) => {
      inst.xy = xy;
      drawMap(inst);
      schedule(inst);
    };
    map.addEventListener("pointermove", (ev) => move(toXY(ev)));
    map.addEventListener("click", (ev) => { move(toXY(ev)); inst.picked = inst.xy; drawMap(inst); report(inst); });
    map.addEventListener("keydown", (ev) => {
      const step = 0.02 * (inst.ext[1] - inst.ext[0]);
      const [x, y] = inst.xy || [0, 0];
      const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
      if (moves[ev.key]) {
        ev.preventDefault();
        move([x + moves[ev.key][0], y + moves[ev.key][1]]);
      } else if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        inst.picked = inst.xy || [x, y];
        drawMap(inst);
        report(inst);
      }
    });
    inst.root.replaceChildren(
      map,
      el("figure", {}, [makeDigit(inst, data.display_px), readout, el("figcaption", { text: data.caption || "" })]),
    );
    inst._ctx = null;
    inst.image = null;
  }
  inst.dims = data.dims;
  inst.base = data.base;
  inst.label = data.label ?? 0;
  if (!inst.xy) inst.xy = data.selected ? [data.selected[data.dims[0]], data.selected[data.dims[1]]] : [0, 0];
  if (data.selected && !inst.picked) inst.picked = [data.selected[data.dims[0]], data.selected[data.dims[1]]];
  inst.currentZ = () => {
    const z = inst.base.slice();
    z[inst.dims[0]] = inst.xy[0];
    z[inst.dims[1]] = inst.xy[1];
    return z;
  };
  inst.afterPaint = (z) => {
    inst.readout.textContent = `z${inst.dims[0]} = ${fmt(z[inst.dims[0]])}, z${inst.dims[1]} = ${fmt(z[inst.dims[1]])}`;
  };
  inst.reportValue = () => ({ z: inst.currentZ(), xy: inst.xy.slice() });
  inst.stateName = "pick";
  inst.rev = data.rev;
  const what = JSON.stringify([shape, data.base, data.label ?? 0]);
  if (what !== inst.what || !inst.image) {
    inst.what = what;
    drawMap(inst);
    schedule(inst);
  }
}

// ---------------------------------------------------------------- entry point (called on mount and whenever data changes)

export default function (component) {
  const { data, parentElement } = component;
  if (!data || !data.mode) return;
  if (data.mode === "weights") {
    registerDecoder(data.payload);
    return;
  }
  let inst = INSTANCES.get(parentElement);
  if (!inst || inst.mode !== data.mode) {
    if (inst) inst.root.remove();
    inst = newInstance(parentElement, data, component);
    INSTANCES.set(parentElement, inst);
  }
  inst.api = component;
  inst.key = data.key;
  inst.reportMs = data.report_ms ?? 250;
  inst.root.dataset.key = data.key;
  REGISTRY[data.key] = inst;
  if (data.mode === "latent") updateLatent(inst, data);
  else if (data.mode === "scrub") updateScrub(inst, data);
  else if (data.mode === "map") updateMap(inst, data);
  attachDecoder(inst, data.payload_id);
  // Streamlit calls only the cleanup returned last, and only on unmount.
  return () => {
    const cur = INSTANCES.get(parentElement);
    if (!cur) return;
    cancelAnimationFrame(cur.raf);
    clearTimeout(cur.timer);
    if (REGISTRY[cur.key] === cur) delete REGISTRY[cur.key];
    INSTANCES.delete(parentElement);
  };
}
