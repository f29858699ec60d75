// JPEG decoder (ITU-T T.81), written from the standard: for photos and PASCAL VOC
// JPEGImages/*.jpg read by the commands that take images.
//
// Supported: baseline sequential DCT (SOF0), extended sequential DCT with 8-bit samples
// (SOF1, 8- or 16-bit quantisation tables) and progressive DCT (SOF2: spectral selection
// and successive approximation, EOB runs), all Huffman-coded; 1 component (grey) or 3
// (YCbCr per JFIF 1.02, full range; RGB when an Adobe APP14 segment says transform 0, or
// without JFIF/Adobe segments when the component ids are 'R', 'G', 'B', as libjpeg does);
// sampling factors 1..4 whose ratios to the largest are integers (4:4:4, 4:2:2, 4:2:0,
// 4:4:0, 4:1:1, ...); interleaved and non-interleaved scans; restart intervals (DRI/RSTn).
// APPn, COM and unknown segments are skipped. EXIF orientation is ignored: the pixels come
// back in stored order (a phone photo tagged "rotate 90" is returned unrotated).
// Not supported, each refused with an InputError naming it: 12-bit precision, lossless
// (SOF3), hierarchical (SOF5-7), arithmetic coding (SOF9-15, DAC), 2 or 4+ components
// (CMYK/YCCK), DNL-defined height. Malformed input (truncated data, a bad Huffman code, a
// missing table, a wrong restart marker, ...) is an InputError saying what is wrong; every
// loop advances through the bytes, so no input hangs.
//
// Choices: a float inverse DCT from its definition (separable 8-point cosine sums, like
// the encoder's forward DCT), rounded and clamped to 0..255 per component sample as
// libjpeg does; chroma upsampled by factor 2 with the triangular filter libjpeg calls
// "fancy" (each output sample 3/4 of the nearer and 1/4 of the farther input sample per
// axis, chroma sited at the centre of the samples it covers, edges replicated), in float
// and rounded once, so results may differ from libjpeg by a level; factors 3 and 4 are
// upsampled by replication. YCbCr -> RGB by the JFIF equations, rounded and clamped.
// Alpha is 255.
import { InputError } from '../gpu/errors.js';

export interface DecodedJpeg {
  width: number;
  height: number;
  /** [height, width, 4] RGBA bytes, alpha 255. */
  rgba: Uint8Array;
}

/** The largest image decoded (width * height): larger frames are refused up front, so a
 *  corrupt or hostile header cannot make the decoder allocate gigabytes. */
export const MAX_JPEG_PIXELS = 1 << 27;

/** The most scans a file may have: a progressive file has about 10 (libjpeg's default script
 *  has 10); a cap keeps a hostile file of thousands of near-empty scans, each a pass over
 *  every block, from taking minutes. */
export const MAX_JPEG_SCANS = 1000;

/** ZZ[k] = natural (row-major) index of the k-th coefficient in zig-zag order (T.81 Figure 5). */
const ZZ = (() => {
  const out = new Int32Array(64 + 16); // 16 extra entries for corrupt runs past 63: point at a scratch slot
  let k = 0;
  for (let s = 0; s < 15; s++) {
    const cells: number[] = [];
    for (let r = Math.max(0, s - 7); r <= Math.min(7, s); r++) cells.push(r * 8 + (s - r));
    if (s % 2 === 0) cells.reverse();
    for (const c of cells) out[k++] = c;
  }
  for (let i = 64; i < out.length; i++) out[i] = 64;
  return out;
})();

/** BASIS[u * 8 + x] = C(u) / 2 * cos((2x + 1) u pi / 16), C(0) = 1/sqrt(2), else 1. */
const BASIS = (() => {
  const b = new Float64Array(64);
  for (let u = 0; u < 8; u++) for (let x = 0; x < 8; x++) b[u * 8 + x] = ((u === 0 ? Math.SQRT1_2 : 1) / 2) * Math.cos(((2 * x + 1) * u * Math.PI) / 16);
  return b;
})();

/** 2-D inverse DCT of dequantised coefficients `coef` (natural order, 64) into `out`
 *  (level-shifted back: +128, not rounded): f(x, y) = sum_u sum_v C(u)C(v)/4 F(v, u)
 *  cos((2x+1)u pi/16) cos((2y+1)v pi/16), computed as two 1-D passes; `tmp` is 64 scratch. */
export function idct8x8(coef: ArrayLike<number>, out: Float64Array, tmp: Float64Array): void {
  // Rows of coefficients that are all zero contribute nothing (most rows of most blocks):
  // they are skipped in both passes, which changes no result.
  const rows: number[] = [];
  for (let v = 0; v < 8; v++) {
    let any = false;
    for (let u = 0; u < 8; u++) if (coef[v * 8 + u] !== 0) any = true;
    if (!any) continue;
    rows.push(v);
    for (let x = 0; x < 8; x++) {
      let s = 0;
      for (let u = 0; u < 8; u++) s += BASIS[u * 8 + x] * coef[v * 8 + u];
      tmp[v * 8 + x] = s;
    }
  }
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 8; x++) {
      let s = 0;
      for (let i = 0; i < rows.length; i++) s += BASIS[rows[i] * 8 + y] * tmp[rows[i] * 8 + x];
      out[y * 8 + x] = s + 128;
    }
  }
}

function fail(problem: string): never {
  throw new InputError(`JPEG: ${problem}`);
}

/** A Huffman table in decoding form (T.81 Annex F.2.2.3) plus a 9-bit lookup. */
interface Huffman {
  /** fast[9 leading bits] = length << 8 | symbol, or 0 when the code is longer than 9 bits. */
  fast: Uint16Array;
  maxcode: Int32Array; // [17], -1 when no code of that length
  valptr: Int32Array; // [17]
  mincode: Int32Array; // [17]
  vals: Uint8Array;
}

const FAST_BITS = 9;

function buildHuffman(counts: Uint8Array, vals: Uint8Array, where: string): Huffman {
  const h: Huffman = { fast: new Uint16Array(1 << FAST_BITS), maxcode: new Int32Array(18).fill(-1), valptr: new Int32Array(17), mincode: new Int32Array(17), vals };
  let code = 0;
  let k = 0;
  for (let len = 1; len <= 16; len++) {
    const n = counts[len - 1];
    h.valptr[len] = k;
    h.mincode[len] = code;
    if (n > 0) {
      // More codes than the lengths leave room for (Annex C): the table is corrupt.
      if (code + n > 1 << len) fail(`bad Huffman table ${where}: ${n} codes of length ${len} do not fit (over-subscribed)`);
      for (let i = 0; i < n; i++, k++, code++) {
        if (len <= FAST_BITS) {
          const shift = FAST_BITS - len;
          for (let f = code << shift; f < (code + 1) << shift; f++) h.fast[f] = (len << 8) | vals[k];
        }
      }
      h.maxcode[len] = code - 1;
    }
    code <<= 1;
  }
  h.maxcode[17] = 0x7fffffff; // sentinel
  return h;
}

/** Entropy-coded data reader: removes stuffed zero bytes, stops at markers. Bits past a
 *  marker or the end of the file read as 0 and are counted, so consuming one is reported as
 *  truncated data instead of decoding garbage. */
class BitReader {
  private acc = 0;
  private n = 0;
  /** How many of the low bits of `acc` are past the data (fake zeros). */
  private fake = 0;
  constructor(
    private readonly d: Uint8Array,
    public pos: number,
  ) {}

  private fill(): void {
    const d = this.d;
    while (this.n <= 24) {
      let byte = 0;
      if (this.fake === 0 && this.pos < d.length) {
        byte = d[this.pos];
        if (byte === 0xff) {
          const next = this.pos + 1 < d.length ? d[this.pos + 1] : -1;
          if (next === 0) this.pos += 2;
          else {
            byte = 0;
            this.fake += 8;
          }
        } else this.pos++;
      } else this.fake += 8;
      this.acc = ((this.acc << 8) | byte) >>> 0;
      this.n += 8;
    }
  }

  private overrun(): never {
    const atMarker = this.pos < this.d.length;
    fail(atMarker ? `corrupt or truncated scan data: marker 0xFF${hex(this.d[this.pos + 1] ?? 0)} at byte ${this.pos} inside the entropy-coded data` : 'truncated: the file ends inside the entropy-coded data');
  }

  bits(len: number): number {
    if (len === 0) return 0;
    if (this.n < len) this.fill();
    this.n -= len;
    if (this.n < this.fake) this.overrun();
    return (this.acc >>> this.n) & ((1 << len) - 1);
  }

  bit(): number {
    return this.bits(1);
  }

  /** A `len`-bit magnitude category value, sign-extended (T.81 F.2.2.1 EXTEND). */
  receiveExtend(len: number): number {
    if (len === 0) return 0;
    const v = this.bits(len);
    return v < 1 << (len - 1) ? v - (1 << len) + 1 : v;
  }

  decode(h: Huffman): number {
    if (this.n < 16) this.fill();
    const look = (this.acc >>> (this.n - FAST_BITS)) & ((1 << FAST_BITS) - 1);
    const f = h.fast[look];
    if (f !== 0) {
      this.n -= f >> 8;
      if (this.n < this.fake) this.overrun();
      return f & 0xff;
    }
    let len = FAST_BITS + 1;
    let code = (this.acc >>> (this.n - len)) & ((1 << len) - 1);
    while (len <= 16 && code > h.maxcode[len]) {
      len++;
      code = (this.acc >>> (this.n - len)) & ((1 << len) - 1);
    }
    if (len > 16) {
      if (this.n - 16 < this.fake) this.overrun();
      fail('bad Huffman code in the scan data (no code of the table matches)');
    }
    this.n -= len;
    if (this.n < this.fake) this.overrun();
    return h.vals[h.valptr[len] + code - h.mincode[len]];
  }

  /** Drops buffered bits (the byte padding before a marker) and moves to the next marker,
   *  skipping stray bytes; returns the marker's second byte, or -1 at the end of the file. */
  nextMarker(): number {
    this.acc = 0;
    this.n = 0;
    this.fake = 0;
    const d = this.d;
    while (this.pos < d.length) {
      if (d[this.pos] === 0xff) {
        let p = this.pos + 1;
        while (p < d.length && d[p] === 0xff) p++;
        if (p >= d.length) return -1;
        if (d[p] !== 0) {
          this.pos = p - 1;
          return d[p];
        }
        this.pos = p + 1;
      } else this.pos++;
    }
    return -1;
  }
}

function hex(b: number): string {
  return b.toString(16).toUpperCase().padStart(2, '0');
}

interface Component {
  id: number;
  h: number;
  v: number;
  tq: number;
  /** Blocks per line and per column allocated (whole MCUs). */
  bw: number;
  bh: number;
  /** Blocks that hold image samples (non-interleaved scans cover exactly these). */
  bwUsed: number;
  bhUsed: number;
  /** Sample width and height of the component (ceil(X * h / hmax), ceil(Y * v / vmax)). */
  w: number;
  ht: number;
  coef: Int16Array;
  /** The quantisation table in natural order, latched at the component's first scan. */
  q: Uint16Array | null;
  dcPred: number;
}

interface Frame {
  kind: 0 | 1 | 2;
  width: number;
  height: number;
  comps: Component[];
  hmax: number;
  vmax: number;
  mcusX: number;
  mcusY: number;
}

const SOF_NAMES: Record<number, string> = {
  0xc3: 'lossless JPEG (SOF3)',
  0xc5: 'hierarchical JPEG (SOF5, differential sequential)',
  0xc6: 'hierarchical progressive JPEG (SOF6)',
  0xc7: 'hierarchical lossless JPEG (SOF7)',
  0xc9: 'arithmetic-coded JPEG (SOF9)',
  0xca: 'arithmetic-coded progressive JPEG (SOF10)',
  0xcb: 'arithmetic-coded lossless JPEG (SOF11)',
  0xcd: 'arithmetic-coded hierarchical JPEG (SOF13)',
  0xce: 'arithmetic-coded hierarchical progressive JPEG (SOF14)',
  0xcf: 'arithmetic-coded hierarchical lossless JPEG (SOF15)',
};

/** Decodes a JPEG file's bytes into RGBA pixels (see the header comment for what is read). */
export function decodeJpeg(bytes: Uint8Array): DecodedJpeg {
  const d = bytes;
  if (d.length < 2 || d[0] !== 0xff || d[1] !== 0xd8) fail(`no SOI marker (a JPEG starts with FF D8; this starts with ${Array.from(d.subarray(0, 4), hex).join(' ') || 'nothing, 0 bytes'})`);
  const qt: (Uint16Array | null)[] = [null, null, null, null];
  const dcTables: (Huffman | null)[] = [null, null, null, null];
  const acTables: (Huffman | null)[] = [null, null, null, null];
  let frame: Frame | null = null;
  let restartInterval = 0;
  let jfif = false;
  let adobeTransform = -1;
  let scans = 0;
  const reader = new BitReader(d, 2);
  let marker = reader.nextMarker();
  if (marker < 0) fail('truncated: no marker after SOI');
  for (;;) {
    if (marker < 0) fail(frame && scans > 0 ? 'truncated: the file ends before the EOI marker (FF D9)' : 'truncated: the file ends before the image data');
    if (marker === 0xd9) break;
    if (marker === 0xd8) fail('a second SOI marker inside the image');
    if (marker >= 0xd0 && marker <= 0xd7) {
      // A stray RSTn between segments: skip it (libjpeg warns and goes on).
      reader.pos += 2;
      marker = reader.nextMarker();
      continue;
    }
    if (marker === 0x01) {
      reader.pos += 2;
      marker = reader.nextMarker();
      continue;
    }
    const start = reader.pos + 2;
    if (start + 2 > d.length) fail(`truncated: the file ends inside the 0xFF${hex(marker)} segment header`);
    const len = (d[start] << 8) | d[start + 1];
    if (len < 2) fail(`segment 0xFF${hex(marker)} at byte ${reader.pos} has an impossible length ${len}`);
    const end = start + len;
    if (end > d.length) fail(`truncated: the 0xFF${hex(marker)} segment at byte ${reader.pos} needs ${len} bytes, ${d.length - start} are left`);
    const seg = d.subarray(start + 2, end);
    const need = (n: number, what: string) => {
      if (seg.length < n) fail(`${what} segment too short (${seg.length} bytes, at least ${n} needed)`);
    };
    switch (marker) {
      case 0xc0:
      case 0xc1:
      case 0xc2: {
        if (frame) fail('more than one frame (SOF) marker');
        need(6, 'SOF');
        const precision = seg[0];
        if (precision !== 8) fail(`unsupported sample precision ${precision}-bit (only 8-bit JPEG is read)`);
        const height = (seg[1] << 8) | seg[2];
        const width = (seg[3] << 8) | seg[4];
        const nc = seg[5];
        if (width === 0 || height === 0) fail(`zero image size ${width}x${height}${height === 0 ? ' (a height defined later by a DNL marker is not supported)' : ''}`);
        if (nc !== 1 && nc !== 3) fail(`${nc} colour components (only 1, grey, or 3, YCbCr/RGB, are read${nc === 4 ? '; this is CMYK or YCCK' : ''})`);
        need(6 + 3 * nc, 'SOF');
        if (width * height > MAX_JPEG_PIXELS) fail(`image of ${width}x${height} pixels is larger than the ${MAX_JPEG_PIXELS} pixels this decoder reads`);
        const comps: Component[] = [];
        for (let i = 0; i < nc; i++) {
          const id = seg[6 + 3 * i];
          const h = seg[7 + 3 * i] >> 4;
          const v = seg[7 + 3 * i] & 15;
          const tq = seg[8 + 3 * i];
          if (h < 1 || h > 4 || v < 1 || v > 4) fail(`component ${id} has sampling factors ${h}x${v} (each must be 1..4)`);
          if (tq > 3) fail(`component ${id} uses quantisation table ${tq} (0..3 exist)`);
          if (comps.some((c) => c.id === id)) fail(`two components with id ${id}`);
          comps.push({ id, h, v, tq, bw: 0, bh: 0, bwUsed: 0, bhUsed: 0, w: 0, ht: 0, coef: new Int16Array(0), q: null, dcPred: 0 });
        }
        const hmax = Math.max(...comps.map((c) => c.h));
        const vmax = Math.max(...comps.map((c) => c.v));
        for (const c of comps) {
          if (hmax % c.h !== 0 || vmax % c.v !== 0) fail(`sampling factors ${comps.map((k) => `${k.h}x${k.v}`).join(', ')} are not integer ratios (unsupported)`);
        }
        const mcusX = Math.ceil(width / (8 * hmax));
        const mcusY = Math.ceil(height / (8 * vmax));
        for (const c of comps) {
          c.w = Math.ceil((width * c.h) / hmax);
          c.ht = Math.ceil((height * c.v) / vmax);
          c.bwUsed = Math.ceil(c.w / 8);
          c.bhUsed = Math.ceil(c.ht / 8);
          c.bw = mcusX * c.h;
          c.bh = mcusY * c.v;
          c.coef = new Int16Array(c.bw * c.bh * 64 + 64); // + 64: scratch block for corrupt runs
        }
        frame = { kind: (marker - 0xc0) as 0 | 1 | 2, width, height, comps, hmax, vmax, mcusX, mcusY };
        break;
      }
      case 0xc4: {
        let p = 0;
        while (p < seg.length) {
          if (p + 17 > seg.length) fail('DHT segment too short for its table header');
          const tc = seg[p] >> 4;
          const th = seg[p] & 15;
          if (tc > 1 || th > 3) fail(`DHT defines table class ${tc} id ${th} (class 0..1, id 0..3)`);
          const counts = seg.subarray(p + 1, p + 17);
          let total = 0;
          for (let i = 0; i < 16; i++) total += counts[i];
          if (total > 256) fail(`bad Huffman table: ${total} codes (at most 256)`);
          if (p + 17 + total > seg.length) fail('DHT segment too short for its symbols');
          const vals = seg.slice(p + 17, p + 17 + total);
          (tc === 0 ? dcTables : acTables)[th] = buildHuffman(counts, vals, `${tc === 0 ? 'DC' : 'AC'} ${th}`);
          p += 17 + total;
        }
        break;
      }
      case 0xdb: {
        let p = 0;
        while (p < seg.length) {
          const pq = seg[p] >> 4;
          const tq = seg[p] & 15;
          if (pq > 1 || tq > 3) fail(`DQT defines table ${tq} with precision ${pq} (table 0..3, precision 0 or 1)`);
          const size = pq ? 128 : 64;
          if (p + 1 + size > seg.length) fail('DQT segment too short for its table');
          const t = new Uint16Array(64);
          for (let k = 0; k < 64; k++) t[ZZ[k]] = pq ? (seg[p + 1 + 2 * k] << 8) | seg[p + 2 + 2 * k] : seg[p + 1 + k];
          qt[tq] = t;
          p += 1 + size;
        }
        break;
      }
      case 0xdd:
        need(2, 'DRI');
        restartInterval = (seg[0] << 8) | seg[1];
        break;
      case 0xda: {
        if (!frame) fail('a scan (SOS) before the frame header (SOF)');
        if (scans >= MAX_JPEG_SCANS) fail(`more than ${MAX_JPEG_SCANS} scans (a progressive file has about 10)`);
        need(1, 'SOS');
        const ns = seg[0];
        need(1 + 2 * ns + 3, 'SOS');
        if (ns < 1 || ns > 4) fail(`a scan with ${ns} components (1..4)`);
        const sc: { c: Component; dc: number; ac: number }[] = [];
        for (let i = 0; i < ns; i++) {
          const id = seg[1 + 2 * i];
          const c = frame.comps.find((k) => k.id === id);
          if (!c) fail(`the scan names component ${id}, which the frame does not have`);
          if (sc.some((s) => s.c === c)) fail(`the scan names component ${id} twice`);
          sc.push({ c, dc: seg[2 + 2 * i] >> 4, ac: seg[2 + 2 * i] & 15 });
        }
        const ss = seg[1 + 2 * ns];
        const se = seg[2 + 2 * ns];
        const ah = seg[3 + 2 * ns] >> 4;
        const al = seg[3 + 2 * ns] & 15;
        if (ns > 1 && sc.reduce((a, s) => a + s.c.h * s.c.v, 0) > 10) fail('an interleaved scan with more than 10 blocks per MCU');
        for (const s of sc) {
          if (!s.c.q) {
            const q = qt[s.c.tq];
            if (!q) fail(`component ${s.c.id} uses quantisation table ${s.c.tq}, which no DQT defined`);
            s.c.q = q.slice();
          }
        }
        reader.pos = end;
        decodeScan(reader, frame, sc, ss, se, ah, al, restartInterval, dcTables, acTables);
        scans++;
        marker = reader.nextMarker();
        continue;
      }
      case 0xcc:
        fail('arithmetic coding (DAC marker) is not supported');
      case 0xdc:
        fail('a DNL marker (height defined after the scan) is not supported');
      case 0xe0:
        if (seg.length >= 5 && seg[0] === 0x4a && seg[1] === 0x46 && seg[2] === 0x49 && seg[3] === 0x46 && seg[4] === 0) jfif = true;
        break;
      case 0xee:
        if (seg.length >= 12 && String.fromCharCode(...seg.subarray(0, 5)) === 'Adobe') adobeTransform = seg[11];
        break;
      default:
        if (SOF_NAMES[marker]) fail(`${SOF_NAMES[marker]} is not supported`);
        // APPn, COM, JPGn and other segments: skipped.
        break;
    }
    reader.pos = end;
    marker = reader.nextMarker();
  }
  if (!frame) fail('no frame header (SOF marker) before EOI');
  if (scans === 0) fail('no scan (SOS marker) before EOI');
  return toRgba(frame, jfif, adobeTransform);
}

function decodeScan(
  r: BitReader,
  f: Frame,
  sc: { c: Component; dc: number; ac: number }[],
  ss: number,
  se: number,
  ah: number,
  al: number,
  restartInterval: number,
  dcTables: (Huffman | null)[],
  acTables: (Huffman | null)[],
): void {
  const progressive = f.kind === 2;
  if (progressive) {
    if (ss === 0 ? se !== 0 : se < ss || se > 63) fail(`progressive scan with spectral selection ${ss}..${se} (DC scans are 0..0, AC scans 1..63 ascending)`);
    if (ss > 0 && sc.length !== 1) fail(`a progressive AC scan with ${sc.length} components (must be 1)`);
    if (al > 13 || (ah !== 0 && ah !== al + 1)) fail(`progressive scan with successive approximation Ah=${ah} Al=${al}`);
  } else {
    // Sequential: the whole block in one scan; Ss/Se/Ah/Al are fixed by the standard and ignored.
    ss = 0;
    se = 63;
    ah = 0;
    al = 0;
  }
  const needDc = ss === 0 && ah === 0;
  const needAc = se > 0;
  const dcH: Huffman[] = [];
  const acH: Huffman[] = [];
  for (const s of sc) {
    const dh = dcTables[s.dc];
    const ach = acTables[s.ac];
    if (needDc && (s.dc > 3 || !dh)) fail(`the scan uses DC Huffman table ${s.dc}, which no DHT defined`);
    if (needAc && (s.ac > 3 || !ach)) fail(`the scan uses AC Huffman table ${s.ac}, which no DHT defined`);
    dcH.push(dh as Huffman);
    acH.push(ach as Huffman);
  }
  let eobrun = 0;

  /** Decodes one block of component `ci` of the scan at coefficient offset `off`. */
  const block = (ci: number, off: number) => {
    const coef = sc[ci].c.coef;
    if (!progressive) {
      const t = r.decode(dcH[ci]);
      if (t > 11) fail(`DC difference category ${t} (at most 11 for 8-bit)`);
      const pred = (sc[ci].c.dcPred += r.receiveExtend(t));
      coef[off] = pred;
      const ac = acH[ci];
      for (let k = 1; k < 64; ) {
        const rs = r.decode(ac);
        const s = rs & 15;
        const run = rs >> 4;
        if (s === 0) {
          if (run !== 15) break; // EOB
          k += 16;
          continue;
        }
        k += run;
        if (k > 63) fail('corrupt scan data: an AC run past coefficient 63');
        coef[off + ZZ[k]] = r.receiveExtend(s);
        k++;
      }
      return;
    }
    if (ss === 0) {
      if (ah === 0) {
        const t = r.decode(dcH[ci]);
        if (t > 11) fail(`DC difference category ${t} (at most 11 for 8-bit)`);
        const pred = (sc[ci].c.dcPred += r.receiveExtend(t));
        coef[off] = pred * (1 << al);
      } else if (r.bit()) coef[off] |= 1 << al;
      return;
    }
    if (ah === 0) {
      if (eobrun > 0) {
        eobrun--;
        return;
      }
      const ac = acH[ci];
      for (let k = ss; k <= se; ) {
        const rs = r.decode(ac);
        const s = rs & 15;
        const run = rs >> 4;
        if (s === 0) {
          if (run < 15) {
            eobrun = (1 << run) - 1 + r.bits(run);
            break;
          }
          k += 16;
          continue;
        }
        k += run;
        if (k > se) fail(`corrupt scan data: an AC run past coefficient ${se}`);
        coef[off + ZZ[k]] = r.receiveExtend(s) * (1 << al);
        k++;
      }
      return;
    }
    // AC successive-approximation refinement (T.81 G.1.2.3).
    const p1 = 1 << al;
    const m1 = -1 << al;
    let k = ss;
    if (eobrun <= 0) {
      const ac = acH[ci];
      for (; k <= se; k++) {
        const rs = r.decode(ac);
        let s = rs & 15;
        let run = rs >> 4;
        if (s !== 0) {
          if (s !== 1) fail(`corrupt refinement scan: coefficient size ${s} (must be 1)`);
          s = r.bit() ? p1 : m1;
        } else if (run !== 15) {
          eobrun = (1 << run) + r.bits(run);
          break;
        }
        // Skip `run` zero-history coefficients, refining the non-zero ones met on the way.
        while (k <= se) {
          const z = off + ZZ[k];
          if (coef[z] !== 0) {
            if (r.bit() && (coef[z] & p1) === 0) coef[z] += coef[z] >= 0 ? p1 : m1;
          } else {
            if (run === 0) break;
            run--;
          }
          k++;
        }
        if (s !== 0) {
          if (k > se) fail(`corrupt refinement scan: a new coefficient past ${se}`);
          coef[off + ZZ[k]] = s;
        }
      }
    }
    if (eobrun > 0) {
      for (; k <= se; k++) {
        const z = off + ZZ[k];
        if (coef[z] !== 0 && r.bit() && (coef[z] & p1) === 0) coef[z] += coef[z] >= 0 ? p1 : m1;
      }
      eobrun--;
    }
  };

  const resetAtRestart = () => {
    for (const s of sc) s.c.dcPred = 0;
    eobrun = 0;
  };
  resetAtRestart();
  let restartsSeen = 0;
  const restart = (mcu: number, total: number) => {
    if (restartInterval === 0 || mcu === total || mcu % restartInterval !== 0) return;
    const m = r.nextMarker();
    const want = 0xd0 + (restartsSeen % 8);
    if (m !== want) fail(m < 0 ? 'truncated: the file ends where a restart marker was due' : `expected restart marker RST${restartsSeen % 8} after ${mcu} MCUs, found 0xFF${hex(m)}`);
    r.pos += 2;
    restartsSeen++;
    resetAtRestart();
  };

  if (sc.length === 1) {
    // Non-interleaved: one block per MCU, over the blocks that hold samples.
    const c = sc[0].c;
    const total = c.bwUsed * c.bhUsed;
    let mcu = 0;
    for (let by = 0; by < c.bhUsed; by++) {
      for (let bx = 0; bx < c.bwUsed; bx++) {
        block(0, (by * c.bw + bx) * 64);
        mcu++;
        restart(mcu, total);
      }
    }
    return;
  }
  const total = f.mcusX * f.mcusY;
  let mcu = 0;
  for (let my = 0; my < f.mcusY; my++) {
    for (let mx = 0; mx < f.mcusX; mx++) {
      for (let ci = 0; ci < sc.length; ci++) {
        const c = sc[ci].c;
        for (let v = 0; v < c.v; v++) {
          for (let h = 0; h < c.h; h++) block(ci, ((my * c.v + v) * c.bw + mx * c.h + h) * 64);
        }
      }
      mcu++;
      restart(mcu, total);
    }
  }
}

/** Dequantises and inverse-transforms a component into a plane of bw*8 x bh*8 samples. */
function componentPlane(c: Component): Uint8Array {
  const stride = c.bw * 8;
  const plane = new Uint8Array(stride * c.bh * 8);
  const q = c.q ?? new Uint16Array(64);
  const deq = new Float64Array(64);
  const out = new Float64Array(64);
  const tmp = new Float64Array(64);
  for (let by = 0; by < c.bhUsed; by++) {
    for (let bx = 0; bx < c.bwUsed; bx++) {
      const off = (by * c.bw + bx) * 64;
      for (let i = 0; i < 64; i++) deq[i] = c.coef[off + i] * q[i];
      idct8x8(deq, out, tmp);
      for (let y = 0; y < 8; y++) {
        const row = (by * 8 + y) * stride + bx * 8;
        for (let x = 0; x < 8; x++) {
          plane[row + x] = clampByte(out[y * 8 + x]);
        }
      }
    }
  }
  return plane;
}

/** A component plane at full resolution as float samples (width x height). */
function upsample(c: Component, plane: Uint8Array, f: Frame): Float32Array {
  const { width, height } = f;
  const stride = c.bw * 8;
  const rx = f.hmax / c.h;
  const ry = f.vmax / c.v;
  const out = new Float32Array(width * height);
  if (rx === 1 && ry === 1) {
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) out[y * width + x] = plane[y * stride + x];
    return out;
  }
  // Horizontal pass into rows of `width` for each of the component's ht rows.
  const rows = new Float32Array(width * c.ht);
  const lastX = c.w - 1;
  for (let y = 0; y < c.ht; y++) {
    const src = y * stride;
    const dst = y * width;
    if (rx === 1) for (let x = 0; x < width; x++) rows[dst + x] = plane[src + x];
    else if (rx === 2) {
      for (let x = 0; x < width; x++) {
        const j = x >> 1;
        const o = x & 1 ? Math.min(j + 1, lastX) : Math.max(j - 1, 0);
        rows[dst + x] = 0.75 * plane[src + j] + 0.25 * plane[src + o];
      }
    } else for (let x = 0; x < width; x++) rows[dst + x] = plane[src + Math.floor(x / rx)];
  }
  const lastY = c.ht - 1;
  for (let y = 0; y < height; y++) {
    const dst = y * width;
    if (ry === 1) out.set(rows.subarray(y * width, y * width + width), dst);
    else if (ry === 2) {
      const j = y >> 1;
      const o = y & 1 ? Math.min(j + 1, lastY) : Math.max(j - 1, 0);
      const a = j * width;
      const b = o * width;
      for (let x = 0; x < width; x++) out[dst + x] = 0.75 * rows[a + x] + 0.25 * rows[b + x];
    } else out.set(rows.subarray(Math.floor(y / ry) * width, Math.floor(y / ry) * width + width), dst);
  }
  return out;
}

/** Math.round then clamp to 0..255 ((v + 0.5) | 0 truncates, which equals flooring for
 *  v >= -0.5; anything below rounds to <= 0 either way and is clamped). */
function clampByte(v: number): number {
  const r = (v + 0.5) | 0;
  return r < 0 ? 0 : r > 255 ? 255 : r;
}

function toRgba(f: Frame, jfif: boolean, adobeTransform: number): DecodedJpeg {
  const { width, height } = f;
  const n = width * height;
  const rgba = new Uint8Array(n * 4);
  const planes = f.comps.map((c) => upsample(c, componentPlane(c), f));
  if (planes.length === 1) {
    const g = planes[0];
    for (let i = 0; i < n; i++) {
      const v = clampByte(g[i]);
      rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = v;
      rgba[4 * i + 3] = 255;
    }
    return { width, height, rgba };
  }
  const ids = f.comps.map((c) => c.id);
  const rgb = adobeTransform === 0 || (!jfif && adobeTransform < 0 && ids[0] === 0x52 && ids[1] === 0x47 && ids[2] === 0x42);
  const [p0, p1, p2] = planes;
  if (rgb) {
    for (let i = 0; i < n; i++) {
      rgba[4 * i] = clampByte(p0[i]);
      rgba[4 * i + 1] = clampByte(p1[i]);
      rgba[4 * i + 2] = clampByte(p2[i]);
      rgba[4 * i + 3] = 255;
    }
    return { width, height, rgba };
  }
  for (let i = 0; i < n; i++) {
    const y = p0[i];
    const cb = p1[i] - 128;
    const cr = p2[i] - 128;
    rgba[4 * i] = clampByte(y + 1.402 * cr);
    rgba[4 * i + 1] = clampByte(y - 0.344136 * cb - 0.714136 * cr);
    rgba[4 * i + 2] = clampByte(y + 1.772 * cb);
    rgba[4 * i + 3] = 255;
  }
  return { width, height, rgba };
}
