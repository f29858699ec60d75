// Baseline JPEG encoder (ITU-T T.81 sequential DCT, Huffman, 8-bit; JFIF), for the
// JPEGImages folder of a PASCAL VOC export: VOC loaders (torchvision VOCSegmentation,
// mmsegmentation's PascalVOCDataset) look for <id>.jpg.
//
// Choices: YCbCr per JFIF 1.02 (full range), no chroma subsampling by default (4:4:4: label
// maps are pixel-exact, so colour edges stay where the labels are; options give 4:2:2,
// 4:2:0, 4:4:0, grey and restart intervals), the example quantisation tables
// of T.81 Annex K.1 scaled by quality as libjpeg does (q < 50: 5000/q %, else 200-2q %),
// the example Huffman tables of Annex K.3, a float DCT computed from its definition
// (separable 8-point cosine sums), blocks past the image's right and bottom edges padded
// by repeating the last column and row.
import { InputError } from '../gpu/errors.js';

/** Annex K.1, in natural (row-major) order. */
const LUMA_Q = [
  16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
  18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];
const CHROMA_Q = [
  17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
  ...new Array<number>(32).fill(99),
];

/** Annex K.3: code counts per length 1..16, then the symbols in code order. */
interface HuffSpec { bits: number[]; vals: number[] }
const DC_LUMA: HuffSpec = { bits: [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], vals: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] };
const DC_CHROMA: HuffSpec = { bits: [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], vals: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] };
const AC_LUMA: HuffSpec = {
  bits: [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d],
  vals: [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08,
    0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59,
    0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6,
    0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
  ],
};
const AC_CHROMA: HuffSpec = {
  bits: [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77],
  vals: [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91,
    0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58,
    0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4,
    0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
  ],
};
export const JPEG_HUFFMAN_TABLES = { DC_LUMA, DC_CHROMA, AC_LUMA, AC_CHROMA } as const;

/** ZIGZAG[k] = natural index of the k-th coefficient in zig-zag order (T.81 Figure 5). */
export const ZIGZAG: readonly number[] = (() => {
  const out: number[] = [];
  for (let s = 0; s < 15; s++) {
    // Anti-diagonal s (row + col = s), walked up-right when s is even, down-left when odd.
    const cells: number[] = [];
    for (let r = Math.max(0, s - 7); r <= Math.min(7, s); r++) cells.push(r * 8 + (s - r));
    out.push(...(s % 2 === 0 ? cells.reverse() : cells));
  }
  return out;
})();

/** The quantisation table of `base` at `quality` 1..100 (libjpeg's scaling), natural order. */
export function qualityTable(base: readonly number[], quality: number): number[] {
  const scale = quality < 50 ? Math.floor(5000 / quality) : 200 - 2 * quality;
  return base.map((q) => Math.min(255, Math.max(1, Math.floor((q * scale + 50) / 100))));
}
export const JPEG_BASE_TABLES = { LUMA_Q, CHROMA_Q } as const;

/** Canonical codes (T.81 Annex C), indexed by symbol: code bits and code length (0 when
 *  the table has no code for the symbol). */
function huffCodes(spec: HuffSpec): { code: Int32Array; len: Int32Array } {
  const out = { code: new Int32Array(256), len: new Int32Array(256) };
  let code = 0;
  let k = 0;
  for (let len = 1; len <= 16; len++) {
    for (let i = 0; i < spec.bits[len - 1]; i++) {
      out.code[spec.vals[k]] = code++;
      out.len[spec.vals[k++]] = len;
    }
    code <<= 1;
  }
  return out;
}

class BitWriter {
  private buf = new Uint8Array(1 << 16);
  private size = 0;
  /** Pending bits (at most 7 between calls), most significant first. */
  private acc = 0;
  private n = 0;
  /** Appends the low `len` bits of `bits` (len <= 16). */
  put(bits: number, len: number): void {
    this.acc = (this.acc << len) | (bits & ((1 << len) - 1));
    this.n += len;
    while (this.n >= 8) {
      this.n -= 8;
      const byte = (this.acc >>> this.n) & 0xff;
      this.byte(byte);
      // A 0xFF byte in entropy-coded data is followed by a stuffed 0x00 (T.81 F.1.2.3).
      if (byte === 0xff) this.byte(0);
    }
    this.acc &= (1 << this.n) - 1;
  }
  private byte(b: number): void {
    if (this.size === this.buf.length) {
      const grown = new Uint8Array(this.buf.length * 2);
      grown.set(this.buf);
      this.buf = grown;
    }
    this.buf[this.size++] = b;
  }
  /** Pads to a byte boundary with 1-bits and writes marker 0xFF `m` (not stuffed). */
  marker(m: number): void {
    if (this.n > 0) this.put((1 << (8 - this.n)) - 1, 8 - this.n);
    this.byte(0xff);
    this.byte(m);
  }
  /** Pads the last byte with 1-bits (F.1.2.3) and returns everything written. */
  finish(): Uint8Array {
    if (this.n > 0) this.put((1 << (8 - this.n)) - 1, 8 - this.n);
    return this.buf.subarray(0, this.size);
  }
}

/** cos((2x + 1) u pi / 16) * C(u) / 2, the 1-D DCT basis [u * 8 + x]. */
const BASIS = (() => {
  const b = new Float64Array(64);
  for (let u = 0; u < 8; u++) for (let x = 0; x < 8; x++) b[u * 8 + x] = (u === 0 ? Math.SQRT1_2 : 1) / 2 * Math.cos(((2 * x + 1) * u * Math.PI) / 16);
  return b;
})();

/** 2-D forward DCT of one level-shifted block (natural order), in place into `out`. */
function fdct(block: Float64Array, out: Float64Array, tmp: Float64Array): void {
  for (let y = 0; y < 8; y++) {
    for (let u = 0; u < 8; u++) {
      let s = 0;
      for (let x = 0; x < 8; x++) s += BASIS[u * 8 + x] * block[y * 8 + x];
      tmp[y * 8 + u] = s;
    }
  }
  for (let u = 0; u < 8; u++) {
    for (let v = 0; v < 8; v++) {
      let s = 0;
      for (let y = 0; y < 8; y++) s += BASIS[v * 8 + y] * tmp[y * 8 + u];
      out[v * 8 + u] = s;
    }
  }
}

/** Bit count of |v| (the JPEG magnitude category) and the value's bits as written. */
function category(v: number): [number, number] {
  const a = Math.abs(v);
  let size = 0;
  while (a >> size) size++;
  return [size, v < 0 ? v + (1 << size) - 1 : v];
}

function segment(marker: number, body: number[]): number[] {
  return [0xff, marker, (body.length + 2) >> 8, (body.length + 2) & 0xff, ...body];
}

/** Options of encodeJpeg beyond the defaults (4:4:4 YCbCr, no restart markers), for
 *  producing the other layouts cameras and libraries write (the decoder's tests use them). */
export interface JpegEncodeOptions {
  /** Luma sampling factors [h, v] against chroma 1x1: [1, 1] 4:4:4 (default), [2, 1] 4:2:2,
   *  [2, 2] 4:2:0, [1, 2] 4:4:0, [4, 1] 4:1:1. Chroma is the box average of the h x v pixels
   *  it covers. */
  sampling?: readonly [number, number];
  /** A restart marker (RSTn) every this many MCUs (DRI); 0 (default): none. */
  restartInterval?: number;
  /** One component (the luma of the pixels) instead of YCbCr. */
  grey?: boolean;
}

/** A baseline JPEG of RGBA pixels [height, width, 4] (alpha ignored) at `quality` 1..100. */
export function encodeJpeg(rgba: Uint8Array, width: number, height: number, quality = 95, options: JpegEncodeOptions = {}): Uint8Array {
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1 || width > 65535 || height > 65535) {
    throw new InputError(`JPEG: image size ${width}x${height} must be 1..65535 on each side`);
  }
  if (rgba.length !== width * height * 4) throw new InputError(`JPEG: ${rgba.length} bytes given for a ${width}x${height} RGBA image (${width * height * 4})`);
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) throw new InputError(`JPEG quality ${quality} must be an integer in 1..100`);
  const grey = options.grey ?? false;
  const [hs, vs] = grey ? [1, 1] : (options.sampling ?? [1, 1]);
  if (![1, 2, 4].includes(hs) || ![1, 2].includes(vs)) throw new InputError(`JPEG sampling ${hs}x${vs}: horizontal must be 1, 2 or 4, vertical 1 or 2`);
  const ri = options.restartInterval ?? 0;
  if (!Number.isInteger(ri) || ri < 0 || ri > 65535) throw new InputError(`JPEG restart interval ${ri} must be an integer in 0..65535`);
  const nComp = grey ? 1 : 3;
  const qTables = [qualityTable(LUMA_Q, quality), qualityTable(CHROMA_Q, quality)].slice(0, nComp === 1 ? 1 : 2);
  const specs = ([[DC_LUMA, AC_LUMA], [DC_CHROMA, AC_CHROMA]] as const).slice(0, nComp === 1 ? 1 : 2);
  const codes = specs.map(([dc, ac]) => [huffCodes(dc), huffCodes(ac)]);

  const header: number[] = [0xff, 0xd8];
  header.push(...segment(0xe0, [0x4a, 0x46, 0x49, 0x46, 0, 1, 2, 0, 0, 1, 0, 1, 0, 0])); // JFIF 1.02, aspect 1:1, no thumbnail
  qTables.forEach((t, id) => header.push(...segment(0xdb, [id, ...ZIGZAG.map((k) => t[k])])));
  const lumaHv = (hs << 4) | vs;
  const sofComps = grey ? [1, 0x11, 0] : [1, lumaHv, 0, 2, 0x11, 1, 3, 0x11, 1];
  header.push(...segment(0xc0, [8, height >> 8, height & 0xff, width >> 8, width & 0xff, nComp, ...sofComps]));
  specs.forEach(([dc, ac], id) => {
    header.push(...segment(0xc4, [0x00 | id, ...dc.bits, ...dc.vals]));
    header.push(...segment(0xc4, [0x10 | id, ...ac.bits, ...ac.vals]));
  });
  if (ri > 0) header.push(...segment(0xdd, [ri >> 8, ri & 0xff]));
  header.push(...segment(0xda, grey ? [1, 1, 0x00, 0, 63, 0] : [3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]));

  const bw = new BitWriter();
  const prevDc = [0, 0, 0];
  const block = [new Float64Array(64), new Float64Array(64), new Float64Array(64)];
  const coef = new Float64Array(64);
  const tmp = new Float64Array(64);
  const zz = new Int32Array(64);
  /** Quantises, and Huffman-codes one block of component c (0: luma, 1, 2: chroma). */
  const codeBlock = (c: number, src: Float64Array) => {
    const t = c === 0 ? 0 : 1;
    const q = qTables[t];
    const [dcCodes, acCodes] = codes[t];
    fdct(src, coef, tmp);
    for (let k = 0; k < 64; k++) zz[k] = Math.round(coef[ZIGZAG[k]] / q[ZIGZAG[k]]);
    const diff = zz[0] - prevDc[c];
    prevDc[c] = zz[0];
    const [ds, dbits] = category(diff);
    bw.put(dcCodes.code[ds], dcCodes.len[ds]);
    if (ds) bw.put(dbits, ds);
    let run = 0;
    for (let k = 1; k < 64; k++) {
      if (zz[k] === 0) {
        run++;
        continue;
      }
      while (run > 15) {
        bw.put(acCodes.code[0xf0], acCodes.len[0xf0]);
        run -= 16;
      }
      const [s, bits] = category(zz[k]);
      const sym = (run << 4) | s;
      bw.put(acCodes.code[sym], acCodes.len[sym]);
      bw.put(bits, s);
      run = 0;
    }
    if (run > 0) bw.put(acCodes.code[0x00], acCodes.len[0x00]);
  };
  const mcuW = 8 * hs;
  const mcuH = 8 * vs;
  const mcusX = Math.ceil(width / mcuW);
  const mcusY = Math.ceil(height / mcuH);
  let mcu = 0;
  let restarts = 0;
  for (let by = 0; by < height; by += mcuH) {
    for (let bx = 0; bx < width; bx += mcuW) {
      // Luma blocks of the MCU, left to right then top to bottom (T.81 A.2.3).
      for (let v = 0; v < vs; v++) {
        for (let h = 0; h < hs; h++) {
          for (let y = 0; y < 8; y++) {
            const py = Math.min(by + v * 8 + y, height - 1);
            for (let x = 0; x < 8; x++) {
              const p = (py * width + Math.min(bx + h * 8 + x, width - 1)) * 4;
              const [r, g, b] = [rgba[p], rgba[p + 1], rgba[p + 2]];
              // JFIF: Y, Cb, Cr in 0..255, level-shifted by -128 for the DCT.
              block[0][y * 8 + x] = 0.299 * r + 0.587 * g + 0.114 * b - 128;
            }
          }
          codeBlock(0, block[0]);
        }
      }
      if (!grey) {
        for (let y = 0; y < 8; y++) {
          for (let x = 0; x < 8; x++) {
            let cb = 0;
            let cr = 0;
            for (let v = 0; v < vs; v++) {
              const py = Math.min(by + y * vs + v, height - 1);
              for (let h = 0; h < hs; h++) {
                const p = (py * width + Math.min(bx + x * hs + h, width - 1)) * 4;
                const [r, g, b] = [rgba[p], rgba[p + 1], rgba[p + 2]];
                cb += -0.168736 * r - 0.331264 * g + 0.5 * b;
                cr += 0.5 * r - 0.418688 * g - 0.081312 * b;
              }
            }
            block[1][y * 8 + x] = cb / (hs * vs);
            block[2][y * 8 + x] = cr / (hs * vs);
          }
        }
        codeBlock(1, block[1]);
        codeBlock(2, block[2]);
      }
      mcu++;
      if (ri > 0 && mcu % ri === 0 && mcu < mcusX * mcusY) {
        // T.81 F.1.2.3: byte-align with 1-bits, RSTn (n counting modulo 8), DC predictions reset.
        bw.marker(0xd0 + (restarts++ % 8));
        prevDc.fill(0);
      }
    }
  }
  const data = bw.finish();
  const out = new Uint8Array(header.length + data.length + 2);
  out.set(header, 0);
  out.set(data, header.length);
  out.set([0xff, 0xd9], header.length + data.length);
  return out;
}
