// Decoding a VAE decoder in the page, shared by the live widgets (live/live.js) and the latent map
// (mapview/mapview.js): both modules are this file followed by their own (explorer.ui.component_js).
// The payload comes from explorer.decoder_export.decoder_payload: base64 little-endian float16/float32
// weights per Linear layer, row-major (out, in) as torch stores them.

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function base64Bytes(s) {
  if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(s);
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function halfToFloat(h) {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

// base64 of little-endian float16/float32 -> Float32Array of n values (n: all the bytes hold)
function readArray(b64, dtype, n) {
  const bytes = base64Bytes(b64);
  const width = dtype === "float16" ? 2 : 4;
  if (n === undefined) n = Math.floor(bytes.length / width);
  if (bytes.length !== n * width) throw new Error(`array of ${bytes.length} bytes, expected ${n} ${dtype}`);
  const out = new Float32Array(n);
  if (LITTLE_ENDIAN && width === 4) {
    out.set(new Float32Array(bytes.buffer, bytes.byteOffset, n));
  } else if (LITTLE_ENDIAN && typeof Float16Array === "function") {
    out.set(new Float16Array(bytes.buffer, bytes.byteOffset, n));
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) out[i] = width === 2 ? halfToFloat(view.getUint16(2 * i, true)) : view.getFloat32(4 * i, true);
  }
  return out;
}

function buildDecoder(p) {
  const layers = p.layers.map((L) => {
    const [nOut, nIn] = L.shape;
    const W = readArray(L.weight, p.dtype, nOut * nIn); // row-major (out, in), as torch stores it
    const Wt = new Float32Array(nIn * nOut); // transposed: one contiguous row per input unit
    for (let o = 0; o < nOut; o++) {
      const row = o * nIn;
      for (let i = 0; i < nIn; i++) Wt[i * nOut + o] = W[row + i];
    }
    return { nIn, nOut, Wt, b: readArray(L.bias, p.dtype, nOut), relu: !!L.relu, out: new Float32Array(nOut) };
  });
  const x0 = new Float32Array(layers[0].nIn);
  const pixels = new Float32Array(layers[layers.length - 1].nOut);
  return {
    id: p.payload_id, latentDim: p.latent_dim, conditional: !!p.conditional, numClasses: p.num_classes,
    size: p.image_size, dtype: p.dtype,
    // z (latent_dim) [+ label] -> pixels (size*size) in [0, 1]; the returned array is reused per call
    decode(z, label) {
      x0.fill(0);
      for (let i = 0; i < this.latentDim; i++) x0[i] = +z[i] || 0;
      if (this.conditional) x0[this.latentDim + Math.min(Math.max(label | 0, 0), this.numClasses - 1)] = 1;
      let x = x0;
      for (const L of layers) {
        const out = L.out, nOut = L.nOut, Wt = L.Wt;
        out.set(L.b);
        for (let i = 0; i < L.nIn; i++) {
          const xi = x[i];
          if (xi === 0) continue; // after a ReLU about half the units are exactly zero
          const off = i * nOut;
          for (let o = 0; o < nOut; o++) out[o] += xi * Wt[off + o];
        }
        if (L.relu) for (let o = 0; o < nOut; o++) if (out[o] < 0) out[o] = 0;
        x = out;
      }
      for (let k = 0; k < pixels.length; k++) pixels[k] = 1 / (1 + Math.exp(-x[k]));
      return pixels;
    },
  };
}
