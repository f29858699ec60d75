// Test references for the synthetic dataset, written from the formats' and the rule's
// descriptions, not from the code under test: a CPU stand-in generator (seeded logits with
// overlaps and exact ties, non-square images), the label-map rule in float64, the PASCAL
// VOC colour map, and a baseline JPEG decoder (ITU-T T.81: Huffman decoding, dequantising,
// float64 inverse DCT from its definition, JFIF YCbCr -> RGB).
import { inflateSync } from 'node:zlib';
import type { SynthGenerator, SynthImage, SynthSample } from '../../src/pipeline/synth/index.js';
import { lowbias32 } from '../../src/tensor/hash.js';

/** Uniform [0, 1) from (key, i), independent of the engine's hash streams. */
function u(key: number, i: number): number {
  return lowbias32((Math.imul(key >>> 0, 0x9e3779b1) ^ lowbias32(i)) >>> 0) / 2 ** 32;
}

/** Stand-in image of a sample: per class a blob of positive logits around a seeded centre
 *  (overlapping for pairs), negative elsewhere, with noise; pairs get a patch of pixels
 *  where both classes have the same positive logit (an exact tie). */
export function standInImage(s: SynthSample, width: number, height: number): SynthImage {
  const n = width * height;
  const rgba = new Uint8Array(4 * n);
  for (let i = 0; i < 4 * n; i++) rgba[i] = i % 4 === 3 ? 255 : Math.floor(u(s.seed, i) * 256);
  const logits = s.classes.map((_, k) => {
    const cx = u(s.seed + k, 1) * width;
    const cy = u(s.seed + k, 2) * height;
    const r = 3 + u(s.seed + k, 3) * Math.min(width, height) * 0.5;
    const l = new Float32Array(n);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const d = Math.hypot(x - cx, y - cy);
        l[y * width + x] = (r - d) / 2 + (u(s.seed + 7 * k, y * width + x) - 0.5);
      }
    }
    return l;
  });
  if (logits.length === 2) {
    for (let y = 0; y < Math.min(3, height); y++) for (let x = 0; x < Math.min(4, width); x++) logits[0][y * width + x] = logits[1][y * width + x] = 1.25;
  }
  return { width, height, rgba, logits, warnings: [] };
}

/** A SynthGenerator over standInImage; `calls` records the ids it was asked for; it throws
 *  (an interruption) when asked for the sample `failAt` ids name. */
export function standInGenerator(width: number, height: number, calls: string[] = [], failAt?: Set<string>): SynthGenerator {
  return async (s) => {
    if (failAt?.has(s.id)) throw new Error(`interrupted at ${s.id}`);
    calls.push(s.id);
    return standInImage(s, width, height);
  };
}

/** The label rule in float64: the classes with sigmoid(logit) > t; of those the highest
 *  logit, an exact tie to the smaller label; none: 0. */
export function referenceLabels(logits: readonly Float32Array[], labels: readonly number[], t = 0.5): Uint8Array {
  const n = logits[0].length;
  const out = new Uint8Array(n);
  for (let p = 0; p < n; p++) {
    let best: { v: number; label: number } | null = null;
    for (let k = 0; k < logits.length; k++) {
      const v = logits[k][p];
      if (!(1 / (1 + Math.exp(-v)) > t)) continue;
      if (best === null || v > best.v || (v === best.v && labels[k] < best.label)) best = { v, label: labels[k] };
    }
    out[p] = best ? best.label : 0;
  }
  return out;
}

/** VOCdevkit VOClabelcolormap.m, transcribed: for i, bits (b0, b1, b2) of each 3-bit group j
 *  of i set bit 7-j of (r, g, b). */
export function vocColour(i: number): [number, number, number] {
  let [r, g, b] = [0, 0, 0];
  let c = i;
  for (let j = 0; j <= 7; j++) {
    r |= ((c >> 0) & 1) << (7 - j);
    g |= ((c >> 1) & 1) << (7 - j);
    b |= ((c >> 2) & 1) << (7 - j);
    c >>= 3;
  }
  return [r, g, b];
}

/** The chunks of a PNG file, CRCs unchecked (the test compares them separately). */
export function pngChunks(buf: Uint8Array): Array<{ type: string; data: Buffer; crc: number }> {
  const b = Buffer.from(buf);
  const out: Array<{ type: string; data: Buffer; crc: number }> = [];
  let p = 8;
  while (p < b.length) {
    const len = b.readUInt32BE(p);
    out.push({ type: b.toString('latin1', p + 4, p + 8), data: b.subarray(p + 8, p + 8 + len), crc: b.readUInt32BE(p + 8 + len) });
    p += 12 + len;
  }
  return out;
}

/** The pixel bytes of an 8-bit palette PNG, read from its IDAT (any of the five filters). */
export function paletteIndices(buf: Uint8Array): { width: number; height: number; indices: Uint8Array; palette: Buffer } {
  const chunks = pngChunks(buf);
  const ihdr = chunks[0].data;
  const [width, height] = [ihdr.readUInt32BE(0), ihdr.readUInt32BE(4)];
  if (ihdr[8] !== 8 || ihdr[9] !== 3) throw new Error(`not an 8-bit palette PNG (bit depth ${ihdr[8]}, colour type ${ihdr[9]})`);
  const raw = inflateSync(Buffer.concat(chunks.filter((c) => c.type === 'IDAT').map((c) => c.data)));
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (width + 1)];
    for (let x = 0; x < width; x++) {
      const v = raw[y * (width + 1) + 1 + x];
      const a = x > 0 ? out[y * width + x - 1] : 0;
      const b = y > 0 ? out[(y - 1) * width + x] : 0;
      const c = x > 0 && y > 0 ? out[(y - 1) * width + x - 1] : 0;
      const paeth = () => {
        const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      };
      const pred = [0, a, b, (a + b) >> 1, paeth()][f];
      out[y * width + x] = (v + pred) & 0xff;
    }
  }
  return { width, height, indices: out, palette: chunks.find((c) => c.type === 'PLTE')?.data ?? Buffer.alloc(0) };
}

// ---- baseline JPEG decoder ----

/** Zig-zag order of T.81 Figure 5, transcribed. */
const ZZ = [
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
  35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

export interface DecodedJpeg {
  width: number;
  height: number;
  rgba: Uint8Array;
  /** Quantisation tables in natural order, by table id. */
  quant: number[][];
  /** Per component (Y, Cb, Cr), per block (row-major over the block grid), the quantised
   *  coefficients in natural order. */
  coefficients: Int32Array[][];
  components: Array<{ id: number; h: number; v: number; tq: number }>;
}

export function decodeBaselineJpeg(buf: Uint8Array): DecodedJpeg {
  let p = 0;
  const byte = () => buf[p++];
  const word = () => (buf[p++] << 8) | buf[p++];
  if (word() !== 0xffd8) throw new Error('no SOI');
  const quant: number[][] = [];
  const huff = new Map<number, Map<string, number>>();
  let width = 0, height = 0;
  let comps: DecodedJpeg['components'] = [];
  let scan: Array<{ c: number; td: number; ta: number }> = [];
  for (;;) {
    if (byte() !== 0xff) throw new Error(`expected a marker at ${p - 1}`);
    const m = byte();
    const len = word();
    const end = p + len - 2;
    if (m === 0xdb) {
      while (p < end) {
        const pq = byte();
        if (pq >> 4 !== 0) throw new Error('16-bit table');
        const t = new Array<number>(64);
        for (let k = 0; k < 64; k++) t[ZZ[k]] = byte();
        quant[pq & 15] = t;
      }
    } else if (m === 0xc0) {
      if (byte() !== 8) throw new Error('not 8-bit');
      height = word();
      width = word();
      const nf = byte();
      comps = Array.from({ length: nf }, () => {
        const id = byte();
        const hv = byte();
        return { id, h: hv >> 4, v: hv & 15, tq: byte() };
      });
    } else if (m === 0xc4) {
      while (p < end) {
        const tcth = byte();
        const counts = Array.from({ length: 16 }, () => byte());
        const table = new Map<string, number>();
        let code = 0;
        for (let l = 1; l <= 16; l++) {
          for (let i = 0; i < counts[l - 1]; i++) table.set(`${l}:${code++}`, byte());
          code <<= 1;
        }
        huff.set(tcth, table);
      }
    } else if (m === 0xda) {
      const ns = byte();
      scan = Array.from({ length: ns }, () => {
        const c = byte();
        const t = byte();
        return { c, td: t >> 4, ta: t & 15 };
      });
      p = end;
      break;
    } else if (m === 0xc1 || m === 0xc2 || m === 0xc3) {
      throw new Error('not baseline');
    }
    p = end;
  }
  // Entropy-coded data: bits MSB first, 0xFF00 -> 0xFF.
  let acc = 0, nbits = 0;
  const bit = () => {
    if (nbits === 0) {
      let b = buf[p++];
      if (b === 0xff) {
        const nxt = buf[p++];
        if (nxt !== 0) throw new Error(`marker ${nxt.toString(16)} inside scan data`);
        b = 0xff;
      }
      acc = b;
      nbits = 8;
    }
    nbits--;
    return (acc >> nbits) & 1;
  };
  const receive = (s: number) => {
    let v = 0;
    for (let i = 0; i < s; i++) v = (v << 1) | bit();
    return v < 1 << (s - 1) ? v - (1 << s) + 1 : v;
  };
  const decode = (table: Map<string, number>) => {
    let code = 0;
    for (let l = 1; l <= 16; l++) {
      code = (code << 1) | bit();
      const s = table.get(`${l}:${code}`);
      if (s !== undefined) return s;
    }
    throw new Error('bad Huffman code');
  };
  const bw = Math.ceil(width / 8), bh = Math.ceil(height / 8);
  const coefficients = comps.map(() => [] as Int32Array[]);
  const pred = comps.map(() => 0);
  for (let b = 0; b < bw * bh; b++) {
    scan.forEach((sc, ci) => {
      const blk = new Int32Array(64);
      const t = decode(huff.get(0x00 | sc.td) as Map<string, number>);
      pred[ci] += t ? receive(t) : 0;
      blk[0] = pred[ci];
      for (let k = 1; k < 64;) {
        const rs = decode(huff.get(0x10 | sc.ta) as Map<string, number>);
        const [r, s] = [rs >> 4, rs & 15];
        if (s === 0) {
          if (r !== 15) break;
          k += 16;
          continue;
        }
        k += r;
        blk[ZZ[k]] = receive(s);
        k++;
      }
      coefficients[ci].push(blk);
    });
  }
  if (buf[buf.length - 2] !== 0xff || buf[buf.length - 1] !== 0xd9) throw new Error('no EOI');
  // Dequantise, inverse DCT from its definition, level shift, colour convert.
  const planes = comps.map((c, ci) => {
    const q = quant[c.tq];
    const plane = new Float64Array(bw * 8 * bh * 8);
    coefficients[ci].forEach((blk, b) => {
      const [ox, oy] = [(b % bw) * 8, Math.floor(b / bw) * 8];
      for (let y = 0; y < 8; y++) {
        for (let x = 0; x < 8; x++) {
          let s = 0;
          for (let v = 0; v < 8; v++) {
            for (let uu = 0; uu < 8; uu++) {
              const cu = uu === 0 ? Math.SQRT1_2 : 1, cv = v === 0 ? Math.SQRT1_2 : 1;
              s += cu * cv * blk[v * 8 + uu] * q[v * 8 + uu] * Math.cos(((2 * x + 1) * uu * Math.PI) / 16) * Math.cos(((2 * y + 1) * v * Math.PI) / 16);
            }
          }
          plane[(oy + y) * bw * 8 + ox + x] = s / 4 + 128;
        }
      }
    });
    return plane;
  });
  const rgba = new Uint8Array(width * height * 4);
  const clamp = (v: number) => Math.min(255, Math.max(0, Math.round(v)));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * bw * 8 + x;
      const [Y, cb, cr] = [planes[0][i], planes[1][i] - 128, planes[2][i] - 128];
      const o = (y * width + x) * 4;
      rgba[o] = clamp(Y + 1.402 * cr);
      rgba[o + 1] = clamp(Y - 0.344136 * cb - 0.714136 * cr);
      rgba[o + 2] = clamp(Y + 1.772 * cb);
      rgba[o + 3] = 255;
    }
  }
  return { width, height, rgba, quant, coefficients, components: comps };
}

/** Peak signal-to-noise ratio of the RGB channels (dB). */
export function psnr(a: Uint8Array, b: Uint8Array): number {
  let se = 0, n = 0;
  for (let i = 0; i < a.length; i++) {
    if (i % 4 === 3) continue;
    se += (a[i] - b[i]) ** 2;
    n++;
  }
  return se === 0 ? Infinity : 10 * Math.log10((255 * 255) / (se / n));
}
