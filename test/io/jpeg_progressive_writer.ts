// JPEG writers for the decoder's tests, written from T.81: progressive (Annex G, Huffman)
// and sequential with a choice of scans (multi-scan SOF0 files). They take already-
// quantised coefficients, so the test knows exactly what a correct decoder must
// reconstruct; the progressive one follows a scan script with spectral selection and
// successive approximation, EOB runs and refinement correction bits; both take optional
// restart intervals. 4:4:4 or grey only (every component 1x1, so an MCU of an interleaved
// scan is one block per component). Huffman tables: every DC category at 4 bits, every AC
// symbol but 0xFF at 9 bits (valid, not optimal, and unlike the Annex K tables).

export interface ProgressiveScan {
  comps: number[];
  ss: number;
  se: number;
  ah: number;
  al: number;
}

/** The scan script libjpeg uses for 3-component progressive files (jcparam.c's
 *  jpeg_simple_progression, as a list of scans): DC first and refine, luma bands, chroma. */
export const COLOUR_SCRIPT: ProgressiveScan[] = [
  { comps: [0, 1, 2], ss: 0, se: 0, ah: 0, al: 1 },
  { comps: [0], ss: 1, se: 5, ah: 0, al: 2 },
  { comps: [2], ss: 1, se: 63, ah: 0, al: 1 },
  { comps: [1], ss: 1, se: 63, ah: 0, al: 1 },
  { comps: [0], ss: 6, se: 63, ah: 0, al: 2 },
  { comps: [0], ss: 1, se: 63, ah: 2, al: 1 },
  { comps: [0, 1, 2], ss: 0, se: 0, ah: 1, al: 0 },
  { comps: [2], ss: 1, se: 63, ah: 1, al: 0 },
  { comps: [1], ss: 1, se: 63, ah: 1, al: 0 },
  { comps: [0], ss: 1, se: 63, ah: 1, al: 0 },
];

export const GREY_SCRIPT: ProgressiveScan[] = [
  { comps: [0], ss: 0, se: 0, ah: 0, al: 2 },
  { comps: [0], ss: 1, se: 9, ah: 0, al: 3 },
  { comps: [0], ss: 10, se: 63, ah: 0, al: 1 },
  { comps: [0], ss: 1, se: 9, ah: 3, al: 2 },
  { comps: [0], ss: 0, se: 0, ah: 2, al: 1 },
  { comps: [0], ss: 1, se: 9, ah: 2, al: 1 },
  { comps: [0], ss: 0, se: 0, ah: 1, al: 0 },
  { comps: [0], ss: 1, se: 63, ah: 1, al: 0 },
];

const ZIG: number[] = (() => {
  const out: number[] = [];
  for (let s = 0; s < 15; s++) {
    const cells: number[] = [];
    for (let r = Math.max(0, s - 7); r <= Math.min(7, s); r++) cells.push(r * 8 + (s - r));
    out.push(...(s % 2 === 0 ? cells.reverse() : cells));
  }
  return out;
})();

class Bits {
  bytes: number[] = [];
  private acc = 0;
  private n = 0;
  put(v: number, len: number): void {
    for (let i = len - 1; i >= 0; i--) {
      this.acc = (this.acc << 1) | ((v >> i) & 1);
      if (++this.n === 8) {
        this.bytes.push(this.acc);
        if (this.acc === 0xff) this.bytes.push(0);
        this.acc = 0;
        this.n = 0;
      }
    }
  }
  /** 1-bit padding to a byte boundary. */
  align(): void {
    while (this.n !== 0) this.put(1, 1);
  }
}

const DC_LEN = 4; // symbol s -> code s, 4 bits
const AC_LEN = 9; // symbol s -> code s, 9 bits

function size(v: number): number {
  let a = Math.abs(v);
  let s = 0;
  while (a) {
    s++;
    a >>= 1;
  }
  return s;
}

/** Appends magnitude bits of v (category size(v)) in the JPEG one's-complement form. */
function putValue(b: Bits, v: number): void {
  const s = size(v);
  if (s) b.put(v < 0 ? v + (1 << s) - 1 : v, s);
}

function seg(marker: number, body: number[]): number[] {
  return [0xff, marker, (body.length + 2) >> 8, (body.length + 2) & 0xff, ...body];
}

/** A progressive JPEG of coefficient blocks `coefs[c]` (natural order, quantised, blocks
 *  row-major over ceil(w/8) x ceil(h/8)) with quantisation tables `qt` (natural order, one
 *  per component). */
export function writeProgressiveJpeg(coefs: readonly Int32Array[], qt: readonly (readonly number[])[], w: number, h: number, script: readonly ProgressiveScan[], restartInterval = 0): Uint8Array {
  return writeJpeg(coefs, qt, w, h, script, restartInterval, false);
}

/** A sequential (SOF0) JPEG of the same coefficients whose scans are `scans` (lists of
 *  component indices: [[0, 1, 2]] interleaved, [[0], [1], [2]] one scan per component). */
export function writeSequentialJpeg(coefs: readonly Int32Array[], qt: readonly (readonly number[])[], w: number, h: number, scans: number[][], restartInterval = 0): Uint8Array {
  return writeJpeg(coefs, qt, w, h, scans.map((comps) => ({ comps, ss: 0, se: 63, ah: 0, al: 0 })), restartInterval, true);
}

function writeJpeg(coefs: readonly Int32Array[], qt: readonly (readonly number[])[], w: number, h: number, script: readonly ProgressiveScan[], restartInterval: number, sequential: boolean): Uint8Array {
  const nc = coefs.length;
  const [bw, bh] = [Math.ceil(w / 8), Math.ceil(h / 8)];
  const out: number[] = [0xff, 0xd8];
  out.push(...seg(0xe0, [0x4a, 0x46, 0x49, 0x46, 0, 1, 2, 0, 0, 1, 0, 1, 0, 0]));
  for (let c = 0; c < nc; c++) out.push(...seg(0xdb, [c, ...ZIG.map((k) => qt[c][k])]));
  const sof = [8, h >> 8, h & 0xff, w >> 8, w & 0xff, nc];
  for (let c = 0; c < nc; c++) sof.push(c + 1, 0x11, c);
  out.push(...seg(sequential ? 0xc0 : 0xc2, sof));
  const dcCounts = new Array<number>(16).fill(0);
  dcCounts[DC_LEN - 1] = 12;
  const acCounts = new Array<number>(16).fill(0);
  acCounts[AC_LEN - 1] = 255; // symbols 0..254 (255 = run 15 size 15 never occurs); a count is one byte
  out.push(...seg(0xc4, [0x00, ...dcCounts, ...Array.from({ length: 12 }, (_, i) => i)]));
  out.push(...seg(0xc4, [0x10, ...acCounts, ...Array.from({ length: 255 }, (_, i) => i)]));
  if (restartInterval) out.push(...seg(0xdd, [restartInterval >> 8, restartInterval & 0xff]));

  for (const scan of script) {
    const { comps, ss, se, ah, al } = scan;
    const sos = [comps.length];
    for (const c of comps) sos.push(c + 1, 0x00);
    sos.push(ss, se, (ah << 4) | al);
    out.push(...seg(0xda, sos));
    const b = new Bits();
    const pred = new Array<number>(nc).fill(0);
    let eobrun = 0;
    let be: number[] = []; // correction bits that follow the pending EOB run
    const flushEob = () => {
      if (eobrun === 0) return;
      const r = size(eobrun) - 1;
      b.put(r << 4, AC_LEN);
      if (r) b.put(eobrun - (1 << r), r);
      for (const bit of be) b.put(bit, 1);
      eobrun = 0;
      be = [];
    };
    const block = (c: number, blk: number) => {
      const coef = coefs[c].subarray(blk * 64, blk * 64 + 64);
      if (sequential) {
        // DC difference, then the AC coefficients 1..63 with EOB (symbol 0x00) per block.
        const diff = coef[0] - pred[c];
        pred[c] = coef[0];
        b.put(size(diff), DC_LEN);
        putValue(b, diff);
        let r = 0;
        for (let k = 1; k < 64; k++) {
          const v = coef[ZIG[k]];
          if (v === 0) {
            r++;
            continue;
          }
          while (r > 15) {
            b.put(0xf0, AC_LEN);
            r -= 16;
          }
          b.put((r << 4) | size(v), AC_LEN);
          putValue(b, v);
          r = 0;
        }
        if (r > 0) b.put(0x00, AC_LEN);
        return;
      }
      if (ss === 0) {
        if (ah === 0) {
          const v = coef[0] >> al; // arithmetic shift: the DC point transform
          const diff = v - pred[c];
          pred[c] = v;
          b.put(size(diff), DC_LEN);
          putValue(b, diff);
        } else b.put((coef[0] >> al) & 1, 1);
        return;
      }
      // AC: magnitudes divided by 2^al (truncating), in zig-zag order.
      const abs = (k: number) => Math.abs(coef[ZIG[k]]) >> al;
      if (ah === 0) {
        let r = 0;
        for (let k = ss; k <= se; k++) {
          const a = abs(k);
          if (a === 0) {
            r++;
            continue;
          }
          flushEob();
          while (r > 15) {
            b.put(0xf0, AC_LEN);
            r -= 16;
          }
          const v = coef[ZIG[k]] < 0 ? -a : a;
          b.put((r << 4) | size(v), AC_LEN);
          putValue(b, v);
          r = 0;
        }
        if (r > 0) {
          eobrun++;
          if (eobrun === 0x7fff) flushEob();
        }
        return;
      }
      // Refinement: coefficients already non-zero get one correction bit; newly non-zero
      // ones (|c| >> al === 1) are coded as run/size-1 symbols with a sign bit.
      let eob = -1;
      for (let k = ss; k <= se; k++) if (abs(k) === 1) eob = k;
      let r = 0;
      let br: number[] = [];
      for (let k = ss; k <= se; k++) {
        const a = abs(k);
        if (a === 0) {
          r++;
          continue;
        }
        while (r > 15 && k <= eob) {
          flushEob();
          b.put(0xf0, AC_LEN);
          r -= 16;
          for (const bit of br) b.put(bit, 1);
          br = [];
        }
        if (a > 1) {
          br.push(a & 1);
          continue;
        }
        flushEob();
        b.put((r << 4) | 1, AC_LEN);
        b.put(coef[ZIG[k]] < 0 ? 0 : 1, 1);
        for (const bit of br) b.put(bit, 1);
        br = [];
        r = 0;
      }
      if (r > 0 || br.length > 0) {
        eobrun++;
        be.push(...br);
        if (eobrun === 0x7fff || be.length > 900) flushEob();
      }
    };
    let mcu = 0;
    let rst = 0;
    const total = bw * bh;
    for (let blk = 0; blk < total; blk++) {
      for (const c of comps) block(c, blk);
      mcu++;
      if (restartInterval && mcu % restartInterval === 0 && mcu < total) {
        flushEob();
        b.align();
        b.bytes.push(0xff, 0xd0 + (rst++ % 8));
        pred.fill(0);
      }
    }
    flushEob();
    b.align();
    out.push(...b.bytes);
  }
  out.push(0xff, 0xd9);
  return new Uint8Array(out);
}
