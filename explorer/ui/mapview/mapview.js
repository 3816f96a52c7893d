// Latent-map scatter for st.components.v2: canvas points coloured by class, hover shows the test image
// (from a PNG atlas sent once per atlas key), click reports the index to Python. Plain ES module, no
// dependencies, nothing fetched from the network.
//
// Streamlit calls the default export on mount and again whenever `data` changes (after running the
// previous call's cleanup), with the same parentElement; the view (zoom, pan, hidden classes) lives on
// in a WeakMap keyed by our root element. Atlases and decoders are cached on the page (globalThis), so
// reruns and remounts never need them again; when one is missing the component asks Python for it
// through the `missing` state key.

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const HOVER_PX = 8;     // a dot counts as pointed at within this many CSS pixels
const TIP_PX = 84;      // tooltip image size (3x a 28-pixel tile)
const DRAG_PX = 4;      // a press that moves further than this pans instead of clicking
const MAX_REQUESTS = 3; // times one missing asset is asked for before giving up
const MAX_CACHED = 2;   // atlases / decoders kept per page (a 10k atlas is ~31 MB decoded)

// page-wide caches (survive reruns, remounts and a reloaded module)

const PAGE = globalThis.__vaeExplorerMapview || (globalThis.__vaeExplorerMapview = {
  atlases: new Map(),   // atlas key -> {promise, image, error}
  decoders: new Map(),  // decoder key -> built decoder
  atlasDecodes: 0,      // PNGs decoded on this page (for tests: one per atlas key)
  lastNonce: 0,
});
const VIEWS = new WeakMap(); // root element -> MapView

// helpers

function nonce() {
  PAGE.lastNonce = Math.max(Date.now(), PAGE.lastNonce + 1);
  return PAGE.lastNonce;
}

function remember(map, key, value) {
  map.delete(key);
  map.set(key, value);
  while (map.size > MAX_CACHED) map.delete(map.keys().next().value);
  return value;
}

function cachedAtlas(key, pngB64) {
  let entry = PAGE.atlases.get(key);
  if (entry) return remember(PAGE.atlases, key, entry);
  if (!pngB64) return null;
  PAGE.atlasDecodes += 1;
  entry = { image: null, error: null };
  const blob = new Blob([base64Bytes(pngB64)], { type: "image/png" });
  entry.promise = createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" })
    .then((bitmap) => { entry.image = bitmap; return entry; })
    .catch((err) => { entry.error = err; PAGE.atlases.delete(key); return entry; });
  return remember(PAGE.atlases, key, entry);
}

function el(tag, attrs = {}, children = []) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.appendChild(c);
  return e;
}

function fmt(v) {
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
}

// the view

class MapView {
  constructor(root) {
    this.root = root;
    this.n = 0;
    this.view = null;          // {k, cx, cy}; null until fitted
    this.userMoved = false;
    this.hidden = new Set();
    this.hovered = -1;
    this.selected = -1;
    this.highlight = [];
    this.W = 0; this.H = 0;
    this.requests = new Map(); // asset key -> times asked
    this.atlasReceived = 0;
    this.press = null;
    this.mouse = null;
    this.rafPending = false;
    this.build();
    root.dataset.hovered = "-1";
  }

  build() {
    const r = this.root;
    this.legend = el("ul", { class: "vm-legend", "aria-label": "Classes: press to show or hide" });
    const tools = el("div", { class: "vm-tools" }, [
      el("button", { type: "button", "data-act": "in", title: "Zoom in", "aria-label": "Zoom in", text: "+" }),
      el("button", { type: "button", "data-act": "out", title: "Zoom out", "aria-label": "Zoom out", text: "\u2212" }),
      el("button", { type: "button", "data-act": "reset", title: "Show every point", text: "Reset view" }),
    ]);
    r.appendChild(el("div", { class: "vm-bar" }, [this.legend, tools]));
    this.canvas = el("canvas", { class: "vm-points", tabindex: "0", role: "img" });
    this.overlay = el("canvas", { class: "vm-overlay", "aria-hidden": "true" });
    this.tipCanvas = el("canvas", { width: String(TIP_PX), height: String(TIP_PX), class: "vm-tip-img" });
    this.tipText = el("div", { class: "vm-tip-text" });
    this.tip = el("div", { class: "vm-tip", "aria-hidden": "true" }, [this.tipCanvas, this.tipText]);
    this.plot = el("div", { class: "vm-plot" }, [this.canvas, this.overlay, this.tip]);
    r.appendChild(this.plot);
    this.info = el("span", { class: "vm-info" });
    this.indexInput = el("input", { type: "number", min: "0", step: "1", inputmode: "numeric",
                                    "aria-label": "Test image index" });
    const showBtn = el("button", { type: "button", "data-act": "show", text: "Show" });
    const selectBtn = el("button", { type: "button", "data-act": "select", text: "Select" });
    const keys = el("span", { class: "vm-keys" }, [
      el("label", {}, [document.createTextNode("Test image # "), this.indexInput]), showBtn, selectBtn]);
    r.appendChild(el("div", { class: "vm-status" }, [this.info, keys]));
    this.live = el("div", { class: "vm-sr", "aria-live": "polite" });
    r.appendChild(this.live);

    tools.addEventListener("click", (e) => {
      const act = e.target.closest("button")?.dataset.act;
      if (act === "reset") this.resetView();
      else if (act === "in") this.zoomAt(this.W / 2, this.H / 2, 1.5);
      else if (act === "out") this.zoomAt(this.W / 2, this.H / 2, 1 / 1.5);
    });
    this.legend.addEventListener("click", (e) => {
      const b = e.target.closest("button");
      if (!b) return;
      const c = Number(b.dataset.cls);
      if (this.hidden.has(c)) this.hidden.delete(c); else this.hidden.add(c);
      b.setAttribute("aria-pressed", String(!this.hidden.has(c)));
      this.draw();
      this.refreshHover();
    });
    showBtn.addEventListener("click", () => this.preview(this.inputIndex()));
    selectBtn.addEventListener("click", () => this.chooseIndex(this.inputIndex()));
    this.indexInput.addEventListener("input", () => this.preview(this.inputIndex()));
    this.indexInput.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); this.chooseIndex(this.inputIndex()); }
    });

    const c = this.canvas;
    c.addEventListener("pointerdown", (e) => this.onDown(e));
    c.addEventListener("pointermove", (e) => this.onMove(e));
    c.addEventListener("pointerup", (e) => this.onUp(e));
    c.addEventListener("pointercancel", () => { this.press = null; c.classList.remove("vm-dragging"); });
    c.addEventListener("pointerleave", () => { if (!this.press) { this.mouse = null; this.setHover(-1); } });
    c.addEventListener("wheel", (e) => this.onWheel(e), { passive: false });
    c.addEventListener("keydown", (e) => this.onKey(e));
    this.resizer = new ResizeObserver(() => this.resize());
  }

  attach() { this.resizer.observe(this.plot); }
  detach() { this.resizer.disconnect(); }

  // data from Python

  update(data, setStateValue) {
    this.setStateValue = setStateValue;
    if (data.points_id !== this.pointsId) this.setPoints(data);
    this.highlight = Array.isArray(data.highlight) ? data.highlight : [];
    this.setAtlas(data.atlas);
    this.setDecoder(data.decoder);
    this.draw();
    this.refreshHover();
  }

  setPoints(data) {
    this.pointsId = data.points_id;
    const xy = readArray(data.xy, "float32");
    const n = (this.n = data.n);
    this.labels = base64Bytes(data.labels);
    this.X = new Float32Array(n);
    this.Y = new Float32Array(n);
    for (let i = 0; i < n; i++) { this.X[i] = xy[2 * i]; this.Y[i] = xy[2 * i + 1]; }
    this.classNames = data.class_names;
    this.hidden.clear();
    this.hovered = -1;
    this.selected = -1;
    this.view = null;
    this.userMoved = false;
    this.buildGrid();
    this.buildDrawOrder();
    this.buildLegend();
    this.indexInput.max = String(Math.max(0, n - 1));
    this.canvas.setAttribute("aria-label",
      `Map of ${n.toLocaleString()} test images, coloured by class. Hover a dot to see its image and ` +
      "click to select it; arrow keys pan, + and - zoom, 0 resets. The 'Test image #' box below " +
      "shows or selects an image by its index.");
    this.root.dataset.n = String(n);
  }

  // uniform grid over the data bounds: cellStart (cells + 1), items sorted by cell (counting sort)
  buildGrid() {
    const { X, Y, n } = this;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) {
      if (X[i] < x0) x0 = X[i]; if (X[i] > x1) x1 = X[i];
      if (Y[i] < y0) y0 = Y[i]; if (Y[i] > y1) y1 = Y[i];
    }
    if (!n) { x0 = y0 = -1; x1 = y1 = 1; }
    const g = Math.max(1, Math.min(256, Math.ceil(Math.sqrt(n / 2))));
    const cw = Math.max(x1 - x0, 1e-9) / g, ch = Math.max(y1 - y0, 1e-9) / g;
    const cell = new Int32Array(n), start = new Int32Array(g * g + 1), items = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const cx = Math.min(g - 1, Math.floor((X[i] - x0) / cw));
      const cy = Math.min(g - 1, Math.floor((Y[i] - y0) / ch));
      cell[i] = cy * g + cx;
      start[cell[i] + 1] += 1;
    }
    for (let c = 0; c < g * g; c++) start[c + 1] += start[c];
    const fill = start.slice(0, g * g);
    for (let i = 0; i < n; i++) items[fill[cell[i]]++] = i;
    this.grid = { x0, y0, x1, y1, cw, ch, g, start, items };
  }

  // draw order: index chunks, and within a chunk one group per class, so that no class is always on
  // top; each group becomes one filled path. rank[i] = group of point i (a higher rank is drawn later).
  buildDrawOrder() {
    const n = this.n, C = Math.max(1, this.classNames.length);
    const chunks = Math.max(1, Math.min(16, Math.ceil(n / 500)));
    const size = Math.ceil(n / chunks) || 1;
    const rank = new Int32Array(n), count = new Int32Array(chunks * C + 1);
    for (let i = 0; i < n; i++) {
      rank[i] = Math.floor(i / size) * C + Math.min(this.labels[i], C - 1);
      count[rank[i] + 1] += 1;
    }
    for (let g = 0; g < chunks * C; g++) count[g + 1] += count[g];
    const order = new Int32Array(n), fill = count.slice(0, chunks * C);
    for (let i = 0; i < n; i++) order[fill[rank[i]]++] = i;
    this.rank = rank;
    this.order = order;
    this.groupStart = count;
    this.groupCount = chunks * C;
  }

  buildLegend() {
    this.legend.replaceChildren();
    const counts = new Array(this.classNames.length).fill(0);
    for (let i = 0; i < this.n; i++) counts[this.labels[i]] += 1;
    this.classNames.forEach((name, c) => {
      if (!counts[c]) return;
      const b = el("button", { type: "button", "data-cls": String(c), "aria-pressed": "true",
                               title: `${counts[c]} images of ${name}` });
      const sw = el("span", { class: "vm-swatch", "aria-hidden": "true" });
      sw.style.background = this.color(c);
      b.append(sw, document.createTextNode(name));
      this.legend.appendChild(el("li", {}, [b]));
    });
  }

  color(c) { return PALETTE[c % PALETTE.length]; }

  setAtlas(a) {
    if (!a) { this.atlasKey = null; this.root.dataset.atlas = "none"; return; }
    this.atlasKey = a.key;
    this.tile = a.tile;
    this.cols = a.columns;
    if (a.png) this.atlasReceived += 1;
    this.root.dataset.atlasReceived = String(this.atlasReceived);
    const entry = cachedAtlas(a.key, a.png);
    if (!entry) { this.root.dataset.atlas = "missing"; this.ask("atlas", a.key); return; }
    this.root.dataset.atlas = entry.image ? "ready" : "loading";
    entry.promise.then((e) => {
      this.root.dataset.atlasDecodes = String(PAGE.atlasDecodes);
      if (this.atlasKey !== a.key) return;
      if (e.error) { this.root.dataset.atlas = "error"; this.ask("atlas", a.key); return; }
      this.root.dataset.atlas = "ready";
      this.refreshHover();
    });
    this.root.dataset.atlasDecodes = String(PAGE.atlasDecodes);
  }

  setDecoder(d) {
    this.decoder = null;
    this.decodeLabel = 0;
    if (!d) { this.root.dataset.decoder = "none"; return; }
    this.decodeLabel = d.label || 0;
    let dec = PAGE.decoders.get(d.key);
    if (!dec && d.payload) {
      try { dec = buildDecoder(d.payload); } catch (err) { console.error("mapview: bad decoder payload", err); }
    }
    if (!dec) { this.root.dataset.decoder = "missing"; this.ask("decoder", d.key); return; }
    remember(PAGE.decoders, d.key, dec);
    this.decoder = dec;
    this.root.dataset.decoder = "ready";
  }

  // ask Python to send an asset this page does not hold (a new tab, an evicted cache, a lost delta)
  ask(kind, key) {
    const tries = this.requests.get(key) || 0;
    if (tries >= MAX_REQUESTS || !this.setStateValue) return;
    this.requests.set(key, tries + 1);
    this.setStateValue("missing", { kind, key, nonce: nonce() });
  }

  // geometry

  fit() {
    const { x0, y0, x1, y1 } = this.grid;
    let a = x0, b = x1, c = y0, d = y1;
    for (const h of this.highlight) {
      if (Number.isFinite(h.x) && Number.isFinite(h.y)) {
        a = Math.min(a, h.x); b = Math.max(b, h.x); c = Math.min(c, h.y); d = Math.max(d, h.y);
      }
    }
    const pad = 16;
    const k = Math.min((this.W - 2 * pad) / Math.max(b - a, 1e-9), (this.H - 2 * pad) / Math.max(d - c, 1e-9));
    this.kFit = Math.max(k, 1e-9);
    return { k: this.kFit, cx: (a + b) / 2, cy: (c + d) / 2 };
  }

  toScreen(x, y) {
    const v = this.view;
    return [this.W / 2 + (x - v.cx) * v.k, this.H / 2 - (y - v.cy) * v.k];
  }

  toData(sx, sy) {
    const v = this.view;
    return [v.cx + (sx - this.W / 2) / v.k, v.cy - (sy - this.H / 2) / v.k];
  }

  resize() {
    const W = this.plot.clientWidth, H = this.plot.clientHeight;
    if (!W || !H) return; // hidden (e.g. an inactive tab)
    const dpr = window.devicePixelRatio || 1;
    this.W = W; this.H = H; this.dpr = dpr;
    for (const c of [this.canvas, this.overlay]) {
      c.width = Math.round(W * dpr);
      c.height = Math.round(H * dpr);
    }
    if (!this.userMoved) this.view = null;
    this.draw();
  }

  resetView() {
    this.userMoved = false;
    this.view = null;
    this.draw();
    this.refreshHover();
  }

  zoomAt(sx, sy, factor) {
    if (!this.view) return;
    const [x, y] = this.toData(sx, sy);
    const k = Math.min(this.kFit * 500, Math.max(this.kFit / 4, this.view.k * factor));
    this.view = { k, cx: x - (sx - this.W / 2) / k, cy: y + (sy - this.H / 2) / k };
    this.userMoved = true;
    this.scheduleDraw();
    this.refreshHover();
  }

  panBy(dx, dy) {
    if (!this.view) return;
    this.view = { ...this.view, cx: this.view.cx - dx / this.view.k, cy: this.view.cy + dy / this.view.k };
    this.userMoved = true;
    this.scheduleDraw();
  }

  // nearest visible point within HOVER_PX of the screen position, or -1 (ties go to the dot drawn on top)
  nearest(sx, sy) {
    if (!this.view || !this.n) return -1;
    const { x0, y0, cw, ch, g, start, items } = this.grid;
    const [x, y] = this.toData(sx, sy);
    const k = this.view.k, r = HOVER_PX / k;
    const gx0 = Math.max(0, Math.floor((x - r - x0) / cw)), gx1 = Math.min(g - 1, Math.floor((x + r - x0) / cw));
    const gy0 = Math.max(0, Math.floor((y - r - y0) / ch)), gy1 = Math.min(g - 1, Math.floor((y + r - y0) / ch));
    let best = -1, bestD = HOVER_PX * HOVER_PX;
    for (let gy = gy0; gy <= gy1; gy++) {
      for (let gx = gx0; gx <= gx1; gx++) {
        const c = gy * g + gx;
        for (let p = start[c]; p < start[c + 1]; p++) {
          const i = items[p];
          if (this.hidden.has(this.labels[i])) continue;
          const dx = (this.X[i] - x) * k, dy = (this.Y[i] - y) * k, d = dx * dx + dy * dy;
          if (d < bestD || (d === bestD && (this.rank[i] > this.rank[best] ||
              (this.rank[i] === this.rank[best] && i > best)))) { best = i; bestD = d; }
        }
      }
    }
    return best;
  }

  // drawing

  radius() { return this.n > 20000 ? 1.6 : this.n > 5000 ? 2.2 : this.n > 1000 ? 2.8 : 3.5; }

  // coalesce redraws (wheel, drag) to one per animation frame
  scheduleDraw() {
    if (this.drawPending) return;
    this.drawPending = true;
    requestAnimationFrame(() => { this.drawPending = false; this.draw(); });
  }

  // one path of discs per draw group, each filled once: a few ms for 10,000 points even in software
  // rendering, where one drawImage per point took ~80 ms
  draw() {
    if (!this.W || !this.H || !this.grid) return;
    if (!this.view) this.view = this.fit();
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.clearRect(0, 0, this.W, this.H);
    this.drawAxes(ctx);
    const r = this.radius(), W = this.W, H = this.H;
    const { k, cx, cy } = this.view;
    const { X, Y } = this;
    const { order, groupStart } = this;
    const C = Math.max(1, this.classNames.length);
    let drawn = 0;
    ctx.globalAlpha = 0.75;
    for (let g = 0; g < this.groupCount; g++) {
      const c = g % C;
      if (this.hidden.has(c) || groupStart[g] === groupStart[g + 1]) continue;
      ctx.beginPath();
      for (let p = groupStart[g]; p < groupStart[g + 1]; p++) {
        const i = order[p];
        const sx = W / 2 + (X[i] - cx) * k, sy = H / 2 - (Y[i] - cy) * k;
        if (sx < -r || sy < -r || sx > W + r || sy > H + r) continue;
        ctx.moveTo(sx + r, sy);
        ctx.arc(sx, sy, r, 0, 2 * Math.PI);
        drawn++;
      }
      ctx.fillStyle = this.color(c);
      ctx.fill();
    }
    ctx.globalAlpha = 1;
    this.drawHighlights(ctx);
    this.root.dataset.points = String(drawn);
    this.root.dataset.view = `${k},${cx},${cy}`;
    this.root.dataset.ready = "1";
    this.drawOverlay();
    this.updateInfo();
  }

  // faint "nice" ticks along the left and bottom edges, in data units
  drawAxes(ctx) {
    const ink = getComputedStyle(this.root).color || "#31333f";
    const [x0, y1] = this.toData(0, 0), [x1, y0] = this.toData(this.W, this.H);
    const nice = (span, px) => {
      const raw = span / Math.max(1, px / 90), p = 10 ** Math.floor(Math.log10(raw)), m = raw / p;
      return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
    };
    ctx.save();
    ctx.globalAlpha = 0.45;
    ctx.fillStyle = ink;
    ctx.strokeStyle = ink;
    ctx.lineWidth = 1;
    ctx.font = "10px sans-serif";
    const sx = nice(x1 - x0, this.W), sy = nice(y1 - y0, this.H);
    const label = (v, step) => String(Number((Math.round(v / step) * step).toPrecision(6)));
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    for (let v = Math.ceil(x0 / sx) * sx; v <= x1; v += sx) {
      const [px] = this.toScreen(v, 0);
      ctx.fillRect(Math.round(px), this.H - 4, 1, 4);
      if (px > 24) ctx.fillText(label(v, sx), px, this.H - 5);
    }
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    for (let v = Math.ceil(y0 / sy) * sy; v <= y1; v += sy) {
      const [, py] = this.toScreen(0, v);
      ctx.fillRect(0, Math.round(py), 4, 1);
      if (py < this.H - 16) ctx.fillText(label(v, sy), 6, py);
    }
    ctx.restore();
  }

  drawHighlights(ctx) {
    const ink = getComputedStyle(this.root).color || "#31333f";
    const paper = getComputedStyle(this.plot).backgroundColor || "#fff";
    for (const m of this.highlight) {
      if (!Number.isFinite(m.x) || !Number.isFinite(m.y)) continue;
      const [sx, sy] = this.toScreen(m.x, m.y);
      const col = m.color || ink;
      ctx.lineWidth = 2.5;
      ctx.strokeStyle = paper;
      ctx.fillStyle = col;
      if (m.marker === "star") {
        ctx.beginPath();
        for (let j = 0; j < 10; j++) {
          const rr = j % 2 ? 4.5 : 11, a = -Math.PI / 2 + (j * Math.PI) / 5;
          ctx[j ? "lineTo" : "moveTo"](sx + rr * Math.cos(a), sy + rr * Math.sin(a));
        }
        ctx.closePath();
        ctx.stroke();
        ctx.fill();
      } else {
        ctx.beginPath();
        ctx.arc(sx, sy, 7, 0, 2 * Math.PI);
        ctx.lineWidth = 5;
        ctx.stroke();
        ctx.lineWidth = 2.5;
        ctx.strokeStyle = col;
        ctx.stroke();
      }
      if (m.label) {
        ctx.font = "bold 13px sans-serif";
        ctx.textBaseline = "middle";
        ctx.lineWidth = 3;
        ctx.strokeStyle = paper;
        ctx.strokeText(String(m.label), sx + 11, sy - 9);
        ctx.fillStyle = col;
        ctx.fillText(String(m.label), sx + 11, sy - 9);
      }
    }
  }

  drawOverlay() {
    if (!this.W) return;
    const ctx = this.overlay.getContext("2d");
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.clearRect(0, 0, this.W, this.H);
    const ink = getComputedStyle(this.root).color || "#31333f";
    const ring = (i, r, width, dash) => {
      if (i < 0 || i >= this.n || !this.view) return;
      const [sx, sy] = this.toScreen(this.X[i], this.Y[i]);
      ctx.setLineDash(dash);
      ctx.lineWidth = width;
      ctx.strokeStyle = ink;
      ctx.beginPath();
      ctx.arc(sx, sy, r, 0, 2 * Math.PI);
      ctx.stroke();
    };
    ring(this.selected, 8, 2, [3, 2]);
    if (this.hovered >= 0) {
      const [sx, sy] = this.toScreen(this.X[this.hovered], this.Y[this.hovered]);
      ctx.setLineDash([]);
      ctx.fillStyle = this.color(this.labels[this.hovered]);
      ctx.beginPath();
      ctx.arc(sx, sy, 5, 0, 2 * Math.PI);
      ctx.fill();
      ring(this.hovered, 6, 2, []);
    }
  }

  updateInfo() {
    const total = this.n.toLocaleString();
    let s = `${total} test images`;
    if (this.hidden.size) s += ` (${this.root.dataset.points} shown)`;
    s += this.decoder ? " \u00b7 hover empty space to decode that point" : "";
    s += " \u00b7 wheel zooms, drag pans";
    this.info.textContent = s;
  }

  // hover and tooltip

  setHover(i, sx, sy) {
    if (i !== this.hovered) {
      this.hovered = i;
      this.root.dataset.hovered = String(i);
      this.canvas.classList.toggle("vm-on-point", i >= 0);
      this.drawOverlay();
    }
    if (i >= 0) this.showPointTip(i, sx, sy);
    else this.hideTip();
  }

  refreshHover() {
    if (this.mouse) this.hoverAt(this.mouse[0], this.mouse[1]);
    else if (this.hovered >= 0 && this.view) {
      const [sx, sy] = this.toScreen(this.X[this.hovered], this.Y[this.hovered]);
      this.setHover(this.hovered, sx, sy);
    }
  }

  hoverAt(sx, sy) {
    const i = this.nearest(sx, sy);
    if (i >= 0 || !this.decoder) { this.setHover(i, sx, sy); return; }
    this.setHover(-1);
    this.showDecodedTip(sx, sy);
  }

  placeTip(sx, sy) {
    const t = this.tip;
    t.style.display = "block";
    const w = t.offsetWidth, h = t.offsetHeight, gap = 14;
    let left = sx + gap, top = sy + gap;
    if (left + w > this.W) left = sx - gap - w;
    if (top + h > this.H) top = sy - gap - h;
    t.style.left = `${Math.max(0, Math.min(left, this.W - w))}px`;
    t.style.top = `${Math.max(0, Math.min(top, this.H - h))}px`;
  }

  showPointTip(i, sx, sy) {
    const ctx = this.tipCanvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, TIP_PX, TIP_PX);
    const entry = this.atlasKey ? PAGE.atlases.get(this.atlasKey) : null;
    if (this.atlasKey && !entry) this.ask("atlas", this.atlasKey); // evicted by another map's atlas
    const img = entry && entry.image;
    if (img) {
      const t = this.tile;
      ctx.drawImage(img, (i % this.cols) * t, Math.floor(i / this.cols) * t, t, t, 0, 0, TIP_PX, TIP_PX);
    }
    this.tip.dataset.index = String(i);
    this.tip.dataset.kind = "point";
    this.tip.dataset.image = img ? "atlas" : "pending";
    const name = this.classNames[this.labels[i]] ?? String(this.labels[i]);
    this.tipText.textContent = `${name} \u00b7 #${i}`;
    this.root.dataset.hoverKind = "point";
    this.placeTip(sx, sy);
  }

  showDecodedTip(sx, sy) {
    const [x, y] = this.toData(sx, sy);
    const dec = this.decoder;
    const px = dec.decode([x, y], this.decodeLabel); // reused by the next call: used at once
    const n = dec.size;
    if (!this.decodeCanvas || this.decodeCanvas.width !== n) {
      this.decodeCanvas = el("canvas", { width: String(n), height: String(n) });
    }
    const dctx = this.decodeCanvas.getContext("2d");
    const im = dctx.createImageData(n, n);
    for (let p = 0; p < n * n; p++) {
      const v = Math.round(Math.min(1, Math.max(0, px[p])) * 255);
      im.data[4 * p] = im.data[4 * p + 1] = im.data[4 * p + 2] = v;
      im.data[4 * p + 3] = 255;
    }
    dctx.putImageData(im, 0, 0);
    const ctx = this.tipCanvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.decodeCanvas, 0, 0, n, n, 0, 0, TIP_PX, TIP_PX);
    this.tip.dataset.index = "";
    this.tip.dataset.kind = "decoded";
    this.tip.dataset.z = `${x},${y}`;
    this.tipText.textContent = `decoded z = (${fmt(x)}, ${fmt(y)})`;
    this.root.dataset.hoverKind = "decoded";
    this.placeTip(sx, sy);
  }

  hideTip() {
    this.tip.style.display = "none";
    this.root.dataset.hoverKind = "";
  }

  // pointer, wheel and keyboard

  local(e) {
    const r = this.canvas.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  }

  onDown(e) {
    if (e.button !== 0) return;
    const [sx, sy] = this.local(e);
    this.press = { sx, sy, lx: sx, ly: sy, dragging: false, id: e.pointerId };
    this.canvas.setPointerCapture(e.pointerId);
  }

  onMove(e) {
    const [sx, sy] = this.local(e);
    this.mouse = [sx, sy];
    const p = this.press;
    if (p) {
      if (!p.dragging && Math.hypot(sx - p.sx, sy - p.sy) > DRAG_PX) {
        p.dragging = true;
        this.canvas.classList.add("vm-dragging");
        this.setHover(-1);
      }
      if (p.dragging) {
        this.panBy(sx - p.lx, sy - p.ly);
        p.lx = sx; p.ly = sy;
        return;
      }
    }
    if (this.rafPending) return;
    this.rafPending = true;
    requestAnimationFrame(() => {
      this.rafPending = false;
      if (this.mouse && !(this.press && this.press.dragging)) this.hoverAt(this.mouse[0], this.mouse[1]);
    });
  }

  onUp(e) {
    const p = this.press;
    this.press = null;
    this.canvas.classList.remove("vm-dragging");
    if (this.canvas.hasPointerCapture?.(e.pointerId)) this.canvas.releasePointerCapture(e.pointerId);
    if (!p || p.dragging) { if (p) this.refreshHover(); return; }
    const [sx, sy] = this.local(e);
    const i = this.nearest(sx, sy);
    if (i >= 0) this.choose(i);
    else if (this.decoder && this.view) {
      const [x, y] = this.toData(sx, sy);
      this.send({ xy: [x, y], nonce: nonce() });
    }
  }

  onWheel(e) {
    e.preventDefault();
    const [sx, sy] = this.local(e);
    const unit = e.deltaMode === 1 ? 40 : e.deltaMode === 2 ? 400 : 1;
    this.zoomAt(sx, sy, Math.exp(-e.deltaY * unit * 0.0015));
  }

  onKey(e) {
    const step = 0.1 * Math.min(this.W, this.H);
    const keys = {
      ArrowLeft: () => this.panBy(step, 0), ArrowRight: () => this.panBy(-step, 0),
      ArrowUp: () => this.panBy(0, step), ArrowDown: () => this.panBy(0, -step),
      "+": () => this.zoomAt(this.W / 2, this.H / 2, 1.5), "=": () => this.zoomAt(this.W / 2, this.H / 2, 1.5),
      "-": () => this.zoomAt(this.W / 2, this.H / 2, 1 / 1.5), 0: () => this.resetView(),
      Enter: () => { if (this.hovered >= 0) this.choose(this.hovered); },
    };
    const f = keys[e.key];
    if (f) { e.preventDefault(); f(); }
  }

  // selection

  inputIndex() {
    const v = this.indexInput.value.trim();
    const i = Number(v);
    return v !== "" && Number.isInteger(i) && i >= 0 && i < this.n ? i : -1;
  }

  preview(i) {
    if (i < 0 || !this.view) { this.setHover(-1); return; }
    this.mouse = null;
    const [sx, sy] = this.toScreen(this.X[i], this.Y[i]);
    this.setHover(i, Math.min(Math.max(sx, 0), this.W), Math.min(Math.max(sy, 0), this.H));
    const name = this.classNames[this.labels[i]] ?? String(this.labels[i]);
    this.live.textContent = `Test image ${i}: ${name}`;
  }

  chooseIndex(i) {
    if (i < 0) { this.live.textContent = `Enter a whole number from 0 to ${this.n - 1}`; return; }
    this.preview(i);
    this.choose(i);
  }

  choose(i) {
    if (i !== this.hovered) this.preview(i); // a tap (no hover before it) still shows the image
    this.selected = i;
    this.root.dataset.selected = String(i);
    this.drawOverlay();
    this.send({ index: i, nonce: nonce() });
  }

  send(click) {
    this.root.dataset.lastNonce = String(click.nonce);
    if (this.setStateValue) this.setStateValue("click", click);
  }

  // for tests and debugging: client coordinates of point i (null when it is off screen)
  screenPosition(i) {
    if (!this.view || i < 0 || i >= this.n) return null;
    const [sx, sy] = this.toScreen(this.X[i], this.Y[i]);
    if (sx < 0 || sy < 0 || sx > this.W || sy > this.H) return null;
    const r = this.canvas.getBoundingClientRect();
    return { x: r.left + sx, y: r.top + sy };
  }
}

export default function mapview(component) {
  const { data, parentElement, setStateValue } = component;
  let root = parentElement.querySelector(".vm-root");
  if (!root) {
    root = document.createElement("div");
    root.className = "vm-root";
    parentElement.appendChild(root);
  }
  let view = VIEWS.get(root);
  if (!view) {
    view = new MapView(root);
    VIEWS.set(root, view);
    root.mapView = view;
  }
  view.attach();
  if (data) view.update(data, setStateValue);
  return () => view.detach();
}
