// JPEG decoder tests. References, written in this file from T.81 and JFIF, not from the
// decoder: a direct float64 2-D cosine sum for the inverse DCT; a float64 model of what a
// correct decoder returns for our encoder's 4:4:4 output (forward DCT by the 2-D sum,
// quantisation, inverse DCT by the 2-D sum, JFIF colour equations); worst-case error
// bounds derived from the quantisation tables; and the original pixels, with bounds that
// account for chroma subsampling.
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/gpu/errors.js';
import { encodeJpeg, JPEG_BASE_TABLES, qualityTable, type JpegEncodeOptions } from '../../src/io/jpeg.js';
import { decodeJpeg, idct8x8 } from '../../src/io/jpeg_decode.js';
import { rng } from '../helpers.js';
import { COLOUR_SCRIPT, GREY_SCRIPT, writeProgressiveJpeg, writeSequentialJpeg } from './jpeg_progressive_writer.js';

/** C(u)/2 cos((2x+1) u pi / 16). */
const basis = (u: number, x: number) => ((u === 0 ? Math.SQRT1_2 : 1) / 2) * Math.cos(((2 * x + 1) * u * Math.PI) / 16);

/** F(v, u) = sum_y sum_x basis(v, y) basis(u, x) f(y, x), both indices natural order. */
function refFdct(f: ArrayLike<number>): Float64Array {
  const out = new Float64Array(64);
  for (let v = 0; v < 8; v++) {
    for (let u = 0; u < 8; u++) {
      let s = 0;
      for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) s += basis(v, y) * basis(u, x) * f[y * 8 + x];
      out[v * 8 + u] = s;
    }
  }
  return out;
}

/** f(y, x) = sum_v sum_u basis(v, y) basis(u, x) F(v, u). */
function refIdct(c: ArrayLike<number>): Float64Array {
  const out = new Float64Array(64);
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 8; x++) {
      let s = 0;
      for (let v = 0; v < 8; v++) for (let u = 0; u < 8; u++) s += basis(v, y) * basis(u, x) * c[v * 8 + u];
      out[y * 8 + x] = s;
    }
  }
  return out;
}

const clamp255 = (v: number) => Math.min(255, Math.max(0, Math.round(v)));

/** JFIF forward colour transform of one pixel, chroma centred on 0 (not +128). */
function ycc(r: number, g: number, b: number): [number, number, number] {
  return [0.299 * r + 0.587 * g + 0.114 * b, -0.168736 * r - 0.331264 * g + 0.5 * b, 0.5 * r - 0.418688 * g - 0.081312 * b];
}

function toRgb(y: number, cb: number, cr: number): [number, number, number] {
  return [y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb];
}

/** Random RGBA pixels (alpha 255) with some smooth structure and some noise. */
function randomImage(w: number, h: number, seed: number): Uint8Array {
  const r = rng(seed);
  const px = new Uint8Array(w * h * 4);
  const f = [r() * 0.5, r() * 0.5, r() * 0.5];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = (y * w + x) * 4;
      for (let c = 0; c < 3; c++) px[p + c] = clamp255(128 + 90 * Math.sin(f[c] * x + (c + 1) * 0.3 * y) + 40 * (r() - 0.5));
      px[p + 3] = 255;
    }
  }
  return px;
}

/** The quantised coefficients (natural order, per block, blocks row-major over
 *  ceil(w/8) x ceil(h/8)) of the Y, Cb, Cr planes of `px` at quality q, edges replicated to
 *  whole blocks: forward DCT by the 2-D sum, each divided by its step and rounded. */
function refCoefficients(px: Uint8Array, w: number, h: number, q: number, rgb = false): Int32Array[] {
  const tables = [qualityTable(JPEG_BASE_TABLES.LUMA_Q, q), qualityTable(JPEG_BASE_TABLES.CHROMA_Q, q)];
  const planes = [0, 1, 2].map(() => new Float64Array(w * h));
  for (let i = 0; i < w * h; i++) {
    // rgb: the planes are R, G, B, each level-shifted by -128 (the chroma slots hold centred values).
    const v = rgb ? [px[4 * i], px[4 * i + 1] - 128, px[4 * i + 2] - 128] : ycc(px[4 * i], px[4 * i + 1], px[4 * i + 2]);
    planes[0][i] = v[0] - 128;
    planes[1][i] = v[1];
    planes[2][i] = v[2];
  }
  const [bw, bh] = [Math.ceil(w / 8), Math.ceil(h / 8)];
  return planes.map((plane, c) => {
    const qt = tables[c === 0 ? 0 : 1];
    const out = new Int32Array(bw * bh * 64);
    for (let by = 0; by < bh; by++) {
      for (let bx = 0; bx < bw; bx++) {
        const blk = new Float64Array(64);
        for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) blk[y * 8 + x] = plane[Math.min(by * 8 + y, h - 1) * w + Math.min(bx * 8 + x, w - 1)];
        refFdct(blk).forEach((v, i) => (out[(by * bw + bx) * 64 + i] = Math.round(v / qt[i])));
      }
    }
    return out;
  });
}

/** Pixels from quantised coefficients as refCoefficients lays them out: dequantised,
 *  inverse 2-D sum, samples rounded and clamped, JFIF inverse colour transform. */
function refReconstruct(coefs: Int32Array[], w: number, h: number, q: number, rgbPlanes = false): Uint8Array {
  const tables = [qualityTable(JPEG_BASE_TABLES.LUMA_Q, q), qualityTable(JPEG_BASE_TABLES.CHROMA_Q, q)];
  const bw = Math.ceil(w / 8);
  const dec = coefs.map((coef, c) => {
    const qt = tables[c === 0 ? 0 : 1];
    const plane = new Float64Array(w * h);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const off = (Math.floor(y / 8) * bw + Math.floor(x / 8)) * 64;
        let s = 0;
        for (let v = 0; v < 8; v++) for (let u = 0; u < 8; u++) s += basis(v, y % 8) * basis(u, x % 8) * coef[off + v * 8 + u] * qt[v * 8 + u];
        plane[y * w + x] = clamp255(s + 128);
      }
    }
    return plane;
  });
  const out = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) {
    const rgb = coefs.length === 1 ? [dec[0][i], dec[0][i], dec[0][i]] : rgbPlanes ? [dec[0][i], dec[1][i], dec[2][i]] : toRgb(dec[0][i], dec[1][i] - 128, dec[2][i] - 128);
    for (let c = 0; c < 3; c++) out[4 * i + c] = clamp255(rgb[c]);
    out[4 * i + 3] = 255;
  }
  return out;
}

/** What a correct decoder returns for encodeJpeg(px, w, h, q) (4:4:4), in float64. */
function refDecode444(px: Uint8Array, w: number, h: number, q: number): Uint8Array {
  return refReconstruct(refCoefficients(px, w, h, q), w, h, q);
}

/** What a correct decoder with triangular chroma upsampling returns for
 *  encodeJpeg(px, w, h, q, { sampling: [hs, vs] }), in float64: chroma as the encoder forms
 *  it (the mean of the hs x vs pixels a sample covers, pixel coordinates clamped to the
 *  image), each plane through the quantised 2-D-sum DCT and back, samples rounded and
 *  clamped, chroma interpolated linearly at each pixel centre's position in chroma sample
 *  coordinates ((x + 1/2) / hs - 1/2, clamped to the samples that exist), JFIF colours;
 *  for a factor of 4 (4:1:1) each chroma sample is repeated over its 4 pixels instead. */
function refDecodeSampled(px: Uint8Array, w: number, h: number, q: number, [hs, vs]: [number, number]): Uint8Array {
  const tables = [qualityTable(JPEG_BASE_TABLES.LUMA_Q, q), qualityTable(JPEG_BASE_TABLES.CHROMA_Q, q)];
  const [mw, mh] = [Math.ceil(w / (8 * hs)) * 8, Math.ceil(h / (8 * vs)) * 8]; // chroma samples incl. padding
  const pix = (x: number, y: number) => ycc(...(Array.from(px.subarray((Math.min(y, h - 1) * w + Math.min(x, w - 1)) * 4, (Math.min(y, h - 1) * w + Math.min(x, w - 1)) * 4 + 3)) as [number, number, number]));
  /** One plane (sw x sh samples, sample(x, y) given) through quantise / dequantise. */
  const roundTrip = (sw: number, sh: number, sample: (x: number, y: number) => number, qt: number[]) => {
    const out = new Float64Array(sw * sh);
    for (let by = 0; by < sh; by += 8) {
      for (let bx = 0; bx < sw; bx += 8) {
        const blk = new Float64Array(64);
        for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) blk[y * 8 + x] = sample(bx + x, by + y);
        const f = refIdct(refFdct(blk).map((v, i) => Math.round(v / qt[i]) * qt[i]));
        for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) out[(by + y) * sw + bx + x] = clamp255(f[y * 8 + x] + 128);
      }
    }
    return out;
  };
  const luma = roundTrip(mw * hs, mh * vs, (x, y) => pix(x, y)[0] - 128, tables[0]);
  const chroma = [1, 2].map((c) =>
    roundTrip(mw, mh, (x, y) => {
      let s = 0;
      for (let j = 0; j < vs; j++) for (let i = 0; i < hs; i++) s += pix(x * hs + i, y * vs + j)[c];
      return s / (hs * vs);
    }, tables[1]),
  );
  const [cw, ch] = [Math.ceil(w / hs), Math.ceil(h / vs)];
  const lerpAt = (plane: Float64Array, x: number, y: number) => {
    // Factors other than 1 and 2: each sample repeated over the pixels it covers.
    if (hs > 2 || vs > 2) return plane[Math.floor(y / vs) * mw + Math.floor(x / hs)];
    const fx = Math.min(Math.max((x + 0.5) / hs - 0.5, 0), cw - 1);
    const fy = Math.min(Math.max((y + 0.5) / vs - 0.5, 0), ch - 1);
    const [x0, y0] = [Math.floor(fx), Math.floor(fy)];
    const [x1, y1] = [Math.min(x0 + 1, cw - 1), Math.min(y0 + 1, ch - 1)];
    const [ax, ay] = [fx - x0, fy - y0];
    const row = (yy: number) => (1 - ax) * plane[yy * mw + x0] + ax * plane[yy * mw + x1];
    return (1 - ay) * row(y0) + ay * row(y1);
  };
  const out = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const rgb = toRgb(luma[y * mw * hs + x], lerpAt(chroma[0], x, y) - 128, lerpAt(chroma[1], x, y) - 128);
      for (let c = 0; c < 3; c++) out[(y * w + x) * 4 + c] = clamp255(rgb[c]);
      out[(y * w + x) * 4 + 3] = 255;
    }
  }
  return out;
}

/** Worst-case |decoded sample - original sample| of one component at block position (x, y)
 *  for quantisation table `qt` (natural order): each coefficient is off by at most q/2 after
 *  dequantising, so the sample is off by at most sum_uv q_uv/2 |basis(v,y) basis(u,x)|,
 *  plus 0.5 for rounding the sample. */
function sampleBound(qt: readonly number[]): Float64Array {
  const out = new Float64Array(64);
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 8; x++) {
      let s = 0.5;
      for (let v = 0; v < 8; v++) for (let u = 0; u < 8; u++) s += (qt[v * 8 + u] / 2) * Math.abs(basis(v, y) * basis(u, x));
      out[y * 8 + x] = s;
    }
  }
  return out;
}

/** Per-channel worst-case |decoded - original| of RGB through YCbCr: |dR| <= eY + 1.402 eCr,
 *  |dG| <= eY + 0.344136 eCb + 0.714136 eCr, |dB| <= eY + 1.772 eC, + 0.5 for rounding. */
function rgbBound(eY: number, eC: number): [number, number, number] {
  return [eY + 1.402 * eC + 0.5, eY + (0.344136 + 0.714136) * eC + 0.5, eY + 1.772 * eC + 0.5];
}

function maxDiff(a: Uint8Array, b: Uint8Array): { max: number; nonzero: number } {
  let max = 0;
  let nonzero = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > max) max = d;
    if (d) nonzero++;
  }
  return { max, nonzero };
}

describe('jpeg decoder: inverse DCT', () => {
  it('idct8x8 equals the direct float64 2-D cosine sum on random coefficients', () => {
    const r = rng(11);
    const out = new Float64Array(64);
    const tmp = new Float64Array(64);
    for (let t = 0; t < 20; t++) {
      const c = new Float64Array(64);
      for (let i = 0; i < 64; i++) c[i] = (r() - 0.5) * (i === 0 ? 2000 : 400 / (1 + i / 8));
      if (t % 4 === 1) c.fill(0, 8); // rows that are all zero take the skip path
      idct8x8(c, out, tmp);
      const ref = refIdct(c);
      for (let i = 0; i < 64; i++) expect(Math.abs(out[i] - 128 - ref[i]), `block ${t} sample ${i}`).toBeLessThan(1e-9);
    }
  });
});

describe('jpeg decoder: our encoder, 4:4:4', () => {
  const sizes: [number, number][] = [
    [1, 1],
    [7, 13],
    [33, 17],
  ];
  for (const [w, h] of sizes) {
    for (const q of [100, 95, 75, 30, 5]) {
      it(`${w}x${h} q=${q}: the float64 reference decode, and within the derived bound of the original`, () => {
        const px = randomImage(w, h, w * 100 + q);
        const jpg = encodeJpeg(px, w, h, q);
        const dec = decodeJpeg(jpg);
        expect([dec.width, dec.height]).toEqual([w, h]);
        // Against the float64 model of the same stream: equal, but for rounding ties
        // (a sample or channel landing within float error of .5) that may go either way.
        const ref = refDecode444(px, w, h, q);
        const d = maxDiff(dec.rgba, ref);
        expect(d.max, `max |decoded - reference|`).toBeLessThanOrEqual(1);
        expect(d.nonzero, `samples off by 1`).toBeLessThanOrEqual(Math.ceil(dec.rgba.length * 0.002));
        // Against the original: the worst case from the quantisation tables.
        const by = sampleBound(qualityTable(JPEG_BASE_TABLES.LUMA_Q, q));
        const bc = sampleBound(qualityTable(JPEG_BASE_TABLES.CHROMA_Q, q));
        for (let y = 0; y < h; y++) {
          for (let x = 0; x < w; x++) {
            const bound = rgbBound(by[(y % 8) * 8 + (x % 8)], bc[(y % 8) * 8 + (x % 8)]);
            for (let c = 0; c < 3; c++) {
              const p = (y * w + x) * 4 + c;
              expect(Math.abs(dec.rgba[p] - px[p]), `(${x}, ${y}) channel ${c}`).toBeLessThanOrEqual(bound[c]);
            }
            expect(dec.rgba[(y * w + x) * 4 + 3]).toBe(255);
          }
        }
        if (q === 100) {
          // q = 100 (every step 1): a few levels at most.
          expect(maxDiff(dec.rgba, px).max).toBeLessThanOrEqual(4);
        }
      });
    }
  }
});

/** Pixels whose chroma is a linear ramp (which a 2x box average and the triangular
 *  upsampling reproduce away from the edges) and whose luma is textured. */
function rampImage(w: number, h: number, seed: number): Uint8Array {
  const r = rng(seed);
  const px = new Uint8Array(w * h * 4);
  const [ax, ay, bx, by] = [r() * 2 - 1, r() * 2 - 1, r() * 2 - 1, r() * 2 - 1].map((v) => (v * 30) / Math.max(w, h));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const Y = 128 + 50 * Math.sin(0.9 * x + 0.4 * y) + 8 * (r() - 0.5);
      const cb = ax * (x - w / 2) + ay * (y - h / 2);
      const cr = bx * (x - w / 2) + by * (y - h / 2);
      const rgb = toRgb(Y, cb, cr);
      const p = (y * w + x) * 4;
      for (let c = 0; c < 3; c++) px[p + c] = clamp255(rgb[c]);
      px[p + 3] = 255;
    }
  }
  return px;
}

describe('jpeg decoder: chroma subsampling, grey, restart markers', () => {
  const layouts: [string, [number, number]][] = [
    ['4:2:0', [2, 2]],
    ['4:2:2', [2, 1]],
    ['4:4:0', [1, 2]],
  ];
  for (const [name, sampling] of layouts) {
    for (const [w, h] of [
      [33, 17],
      [7, 13],
      [40, 24],
    ] as [number, number][]) {
      it(`${name} ${w}x${h} q=100: luma exact to the 4:4:4 bound, chroma to the ramp bound`, () => {
        const px = rampImage(w, h, w + h * 7 + sampling[0] * 3 + sampling[1]);
        const dec = decodeJpeg(encodeJpeg(px, w, h, 100, { sampling }));
        expect([dec.width, dec.height]).toEqual([w, h]);
        // Against the float64 model of the stream (triangular upsampling).
        const d = maxDiff(dec.rgba, refDecodeSampled(px, w, h, 100, sampling));
        expect(d.max, `max |decoded - reference|`).toBeLessThanOrEqual(1);
        expect(d.nonzero, `samples off by 1`).toBeLessThanOrEqual(Math.ceil(dec.rgba.length * 0.002));
        const eQ = sampleBound(qualityTable(JPEG_BASE_TABLES.LUMA_Q, 100)); // all steps 1: same for both tables
        // Chroma: the original pixel's chroma differs from the ramp by its RGB rounding
        // (<= 0.5), and so do the averaged samples the decoder interpolates (<= 0.5); the
        // ramp itself is reproduced exactly by box-average + triangular interpolation except
        // at the image's first and last rows / columns, where edge replication leaves up to
        // half a sample step of slope (a <= 0.5 px offset times the ramp's slope, doubled
        // for the last sample which may cover one real pixel).
        const slope = 30 / Math.max(w, h);
        for (let y = 0; y < h; y++) {
          for (let x = 0; x < w; x++) {
            const edge = (sampling[0] === 2 && (x === 0 || x === w - 1) ? slope : 0) + (sampling[1] === 2 && (y === 0 || y === h - 1) ? slope : 0);
            const eC = eQ[(y % 8) * 8 + (x % 8)] + 1 + edge;
            const bound = rgbBound(eQ[(y % 8) * 8 + (x % 8)], eC);
            for (let c = 0; c < 3; c++) {
              const p = (y * w + x) * 4 + c;
              expect(Math.abs(dec.rgba[p] - px[p]), `(${x}, ${y}) channel ${c}`).toBeLessThanOrEqual(bound[c]);
            }
          }
        }
      });
    }
  }

  it('4:2:0, 4:2:2, 4:4:0 at q=75 and q=20, odd and even sizes, on random pixels: the float64 reference decode', () => {
    for (const [, sampling] of layouts) {
      for (const [q, w, h] of [
        [75, 21, 19],
        [20, 22, 18],
      ]) {
        const px = randomImage(w, h, q + sampling[0] * 10 + sampling[1]);
        const dec = decodeJpeg(encodeJpeg(px, w, h, q, { sampling }));
        const d = maxDiff(dec.rgba, refDecodeSampled(px, w, h, q, sampling));
        expect(d.max, `${sampling} q=${q}: max |decoded - reference|`).toBeLessThanOrEqual(1);
        expect(d.nonzero, `${sampling} q=${q}: samples off by 1`).toBeLessThanOrEqual(Math.ceil(dec.rgba.length * 0.002));
      }
    }
  });

  it('4:1:1 (luma 4x1): the float64 reference decode with chroma repeated over 4 pixels', () => {
    for (const [q, w, h] of [
      [90, 37, 11],
      [40, 64, 16],
    ]) {
      const px = randomImage(w, h, q + w);
      const jpg = encodeJpeg(px, w, h, q, { sampling: [4, 1], restartInterval: 1 });
      const d = maxDiff(decodeJpeg(jpg).rgba, refDecodeSampled(px, w, h, q, [4, 1]));
      expect(d.max, `q=${q}: max |decoded - reference|`).toBeLessThanOrEqual(1);
      expect(d.nonzero, `q=${q}: samples off by 1`).toBeLessThanOrEqual(Math.ceil(w * h * 4 * 0.002));
    }
  });

  it('grey: one component, R = G = B = the luma within the quantisation bound', () => {
    for (const [w, h, q] of [
      [33, 17, 100],
      [9, 10, 60],
    ]) {
      const px = randomImage(w, h, 5 + w);
      const dec = decodeJpeg(encodeJpeg(px, w, h, q, { grey: true }));
      const bound = sampleBound(qualityTable(JPEG_BASE_TABLES.LUMA_Q, q));
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const p = (y * w + x) * 4;
          expect(dec.rgba[p + 1]).toBe(dec.rgba[p]);
          expect(dec.rgba[p + 2]).toBe(dec.rgba[p]);
          const luma = ycc(px[p], px[p + 1], px[p + 2])[0];
          expect(Math.abs(dec.rgba[p] - luma), `(${x}, ${y})`).toBeLessThanOrEqual(bound[(y % 8) * 8 + (x % 8)]);
        }
      }
    }
  });

  it('restart intervals decode to exactly the pixels of the same image without them', () => {
    const [w, h] = [41, 37];
    const px = randomImage(w, h, 77);
    for (const opts of [{}, { sampling: [2, 2] }, { sampling: [2, 1] }, { grey: true }] as JpegEncodeOptions[]) {
      const plain = decodeJpeg(encodeJpeg(px, w, h, 80, opts)).rgba;
      const [hs, vs] = opts.sampling ?? [1, 1];
      const mcus = Math.ceil(w / (8 * hs)) * Math.ceil(h / (8 * vs));
      for (const restartInterval of [1, 2, 3, 7]) {
        const jpg = encodeJpeg(px, w, h, 80, { ...opts, restartInterval });
        expect(findMarker(jpg, 0xdd), 'DRI written').toBeGreaterThan(0);
        // RST0..RST7 cycle: the last one written is RSTn with n = (restarts - 1) % 8.
        const restarts = Math.ceil(mcus / restartInterval) - 1;
        expect(restarts).toBeGreaterThan(0);
        expect(findMarker(jpg, 0xd0 + ((restarts - 1) % 8)), 'last RST written').toBeGreaterThan(0);
        expect(decodeJpeg(jpg).rgba, `${JSON.stringify(opts)} interval ${restartInterval}`).toEqual(plain);
      }
    }
  });
});

describe('jpeg decoder: progressive (SOF2)', () => {
  // The test's progressive writer codes known coefficients with spectral selection,
  // successive approximation (DC and AC refinement), EOB runs and optional restarts; the
  // decoder must reconstruct what the float64 reference makes of those coefficients.
  for (const [w, h, q, ri] of [
    [37, 21, 90, 0],
    [37, 21, 30, 0],
    [64, 48, 100, 0],
    [33, 17, 75, 3],
    [8, 8, 50, 1],
  ]) {
    it(`${w}x${h} q=${q}${ri ? ` restart every ${ri}` : ''}: colour and grey equal the float64 reconstruction`, () => {
      const px = randomImage(w, h, 500 + w + q);
      const coefs = refCoefficients(px, w, h, q);
      const tables = [qualityTable(JPEG_BASE_TABLES.LUMA_Q, q), qualityTable(JPEG_BASE_TABLES.CHROMA_Q, q)];
      for (const [cs, qts, script] of [
        [coefs, [tables[0], tables[1], tables[1]], COLOUR_SCRIPT],
        [coefs.slice(0, 1), [tables[0]], GREY_SCRIPT],
      ] as const) {
        const jpg = writeProgressiveJpeg(cs, qts, w, h, script, ri);
        const dec = decodeJpeg(jpg);
        expect([dec.width, dec.height]).toEqual([w, h]);
        const d = maxDiff(dec.rgba, refReconstruct(cs, w, h, q));
        expect(d.max, `${cs.length} components: max |decoded - reference|`).toBeLessThanOrEqual(1);
        expect(d.nonzero, `${cs.length} components: samples off by 1`).toBeLessThanOrEqual(Math.ceil(dec.rgba.length * 0.002));
      }
    });
  }

  it('sequential files with one scan per component, or scans in another order, and non-Annex-K tables', () => {
    const [w, h, q] = [29, 18, 60];
    const coefs = refCoefficients(randomImage(w, h, 41), w, h, q);
    const [tl, tc] = [qualityTable(JPEG_BASE_TABLES.LUMA_Q, q), qualityTable(JPEG_BASE_TABLES.CHROMA_Q, q)];
    const want = refReconstruct(coefs, w, h, q);
    for (const [scans, ri] of [
      [[[0, 1, 2]], 0],
      [[[0], [1], [2]], 0],
      [[[2], [0, 1]], 4],
    ] as [number[][], number][]) {
      const d = maxDiff(decodeJpeg(writeSequentialJpeg(coefs, [tl, tc, tc], w, h, scans, ri)).rgba, want);
      expect(d.max, JSON.stringify(scans)).toBeLessThanOrEqual(1);
      expect(d.nonzero, JSON.stringify(scans)).toBeLessThanOrEqual(Math.ceil(w * h * 4 * 0.002));
    }
  });

  it('3 components stored as RGB (Adobe APP14 transform 0) are not colour-converted', () => {
    const [w, h, q] = [19, 12, 85];
    const px = randomImage(w, h, 31);
    const coefs = refCoefficients(px, w, h, q, true);
    const [tl, tc] = [qualityTable(JPEG_BASE_TABLES.LUMA_Q, q), qualityTable(JPEG_BASE_TABLES.CHROMA_Q, q)];
    const jpg = writeProgressiveJpeg(coefs, [tl, tc, tc], w, h, COLOUR_SCRIPT);
    // Replace the JFIF APP0 (bytes 2..19) with an Adobe APP14 segment: version 100,
    // flags 0, 0, transform 0 (RGB).
    const adobe = [0xff, 0xee, 0, 14, ...Array.from('Adobe', (ch) => ch.charCodeAt(0)), 0, 100, 0, 0, 0, 0, 0];
    expect(Array.from(jpg.subarray(2, 4))).toEqual([0xff, 0xe0]);
    const withAdobe = new Uint8Array([0xff, 0xd8, ...adobe, ...jpg.subarray(20)]);
    const d = maxDiff(decodeJpeg(withAdobe).rgba, refReconstruct(coefs, w, h, q, true));
    expect(d.max).toBeLessThanOrEqual(1);
    expect(d.nonzero).toBeLessThanOrEqual(Math.ceil(w * h * 4 * 0.002));
    // The same stream under JFIF is YCbCr, so it decodes to other colours.
    expect(maxDiff(decodeJpeg(jpg).rgba, refReconstruct(coefs, w, h, q, true)).max).toBeGreaterThan(20);
  });

  it('every truncation of a progressive file is an InputError', () => {
    const [w, h] = [17, 9];
    const coefs = refCoefficients(randomImage(w, h, 8), w, h, 80);
    const t = [qualityTable(JPEG_BASE_TABLES.LUMA_Q, 80), qualityTable(JPEG_BASE_TABLES.CHROMA_Q, 80)];
    const jpg = writeProgressiveJpeg(coefs, [t[0], t[1], t[1]], w, h, COLOUR_SCRIPT, 2);
    for (let n = 0; n < jpg.length; n++) {
      expect(() => decodeJpeg(jpg.subarray(0, n)), `cut at ${n} of ${jpg.length}`).toThrow(InputError);
    }
  });
});

describe('jpeg decoder: equivalent encodings of one image', () => {
  const [w, h] = [23, 14];
  const px = randomImage(w, h, 61);
  const base = encodeJpeg(px, w, h, 70, { sampling: [2, 2] });
  const want = decodeJpeg(base).rgba;
  const seg = (m: number, body: number[]) => [0xff, m, (body.length + 2) >> 8, (body.length + 2) & 0xff, ...body];

  it('SOF1 (extended sequential) and 16-bit quantisation tables decode like SOF0', () => {
    const sof1 = base.slice();
    sof1[findMarker(sof1, 0xc0) + 1] = 0xc1;
    expect(decodeJpeg(sof1).rgba).toEqual(want);
    // Each 8-bit DQT segment (one table) rewritten with 16-bit entries (Pq = 1).
    const out: number[] = [];
    let p = 0;
    while (p < base.length) {
      if (base[p] === 0xff && base[p + 1] === 0xdb) {
        const len = (base[p + 2] << 8) | base[p + 3];
        const tq = base[p + 4] & 15;
        const entries = Array.from(base.subarray(p + 5, p + 5 + 64));
        out.push(...seg(0xdb, [0x10 | tq, ...entries.flatMap((v) => [0, v])]));
        p += 2 + len;
      } else if (base[p] === 0xff && base[p + 1] === 0xda) {
        out.push(...base.subarray(p));
        break;
      } else out.push(base[p++]);
    }
    expect(out.length).toBe(base.length + 2 * 64);
    expect(decodeJpeg(new Uint8Array(out)).rgba).toEqual(want);
  });

  it('APPn (EXIF), COM segments and fill bytes before markers are skipped', () => {
    const exif = seg(0xe1, [...Array.from('Exif', (c) => c.charCodeAt(0)), 0, 0, 0x4d, 0x4d, 0, 0x2a, 0, 0, 0, 8, 0, 0]);
    const com = seg(0xfe, Array.from('made by a test', (c) => c.charCodeAt(0)));
    const sos = findMarker(base, 0xda);
    const edited = new Uint8Array([...base.subarray(0, 2), ...exif, ...com, 0xff, 0xff, ...base.subarray(2, sos), 0xff, ...base.subarray(sos)]);
    expect(decodeJpeg(edited).rgba).toEqual(want);
  });

  it('bytes after EOI are ignored; a missing EOI is reported as truncation', () => {
    expect(decodeJpeg(new Uint8Array([...base, 0, 1, 2, 3])).rgba).toEqual(want);
    expectInputError(base.subarray(0, base.length - 2), /truncated: the file ends before the EOI marker/);
  });
});

/** Byte offset of marker 0xFF `m` (not a stuffed FF 00), or -1. */
function findMarker(jpg: Uint8Array, m: number): number {
  for (let i = 0; i + 1 < jpg.length; i++) if (jpg[i] === 0xff && jpg[i + 1] === m) return i;
  return -1;
}

/** Offset of the first byte of a segment's body (after marker and length). */
function segmentBody(jpg: Uint8Array, m: number): number {
  const at = findMarker(jpg, m);
  if (at < 0) throw new Error(`no marker ${m.toString(16)}`);
  return at + 4;
}

function expectInputError(bytes: Uint8Array, want: RegExp): void {
  let err: unknown = null;
  try {
    decodeJpeg(bytes);
  } catch (e) {
    err = e;
  }
  expect(err, `expected an InputError matching ${want}`).toBeInstanceOf(InputError);
  expect((err as Error).message).toMatch(want);
}

describe('jpeg decoder: malformed input', () => {
  const [w, h] = [40, 19];
  const good = encodeJpeg(randomImage(w, h, 3), w, h, 90, { sampling: [2, 2], restartInterval: 2 });

  it('names the problem: no SOI, precision, lossless, arithmetic, components, zero size', () => {
    expectInputError(new Uint8Array(0), /no SOI marker/);
    expectInputError(new TextEncoder().encode('hello, not a jpeg'), /no SOI marker/);
    const sof = findMarker(good, 0xc0);
    const edit = (f: (b: Uint8Array) => void) => {
      const b = good.slice();
      f(b);
      return b;
    };
    expectInputError(edit((b) => (b[sof + 4] = 12)), /precision 12-bit/);
    expectInputError(edit((b) => (b[sof + 1] = 0xc3)), /lossless/);
    expectInputError(edit((b) => (b[sof + 1] = 0xc9)), /arithmetic/);
    expectInputError(edit((b) => (b[sof + 1] = 0xca)), /arithmetic/);
    expectInputError(edit((b) => (b[sof + 1] = 0xc5)), /hierarchical/);
    expectInputError(edit((b) => (b[sof + 9] = 4)), /4 colour components.*CMYK/);
    expectInputError(edit((b) => (b[sof + 9] = 5)), /5 colour components/);
    expectInputError(edit((b) => (b[sof + 9] = 2)), /2 colour components/);
    expectInputError(edit((b) => (b[sof + 5] = b[sof + 6] = 0)), /zero image size 40x0/);
    expectInputError(edit((b) => (b[sof + 7] = b[sof + 8] = 0)), /zero image size 0x19/);
    expectInputError(edit((b) => (b[sof + 11] = 0x55)), /sampling factors 5x5/);
    expectInputError(
      edit((b) => {
        b[sof + 11] = 0x32;
        b[sof + 14] = 0x22;
      }),
      /not integer ratios/,
    );
  });

  it('names the problem: bad Huffman code, bad tables, missing tables, wrong restart marker', () => {
    // All 1-bits is no code of the Annex K tables.
    const sos = segmentBody(good, 0xda);
    const data = sos + ((good[sos - 2] << 8) | good[sos - 1]) - 2;
    const b = good.slice();
    b.set([0xff, 0x00, 0xff, 0x00, 0xff, 0x00], data);
    expectInputError(b, /bad Huffman code/);
    // Over-subscribed DHT: three codes of length 1 (counts 0,1,5,... become 3,0,3,...: same total).
    const dht = segmentBody(good, 0xc4);
    const c = good.slice();
    expect(Array.from(c.subarray(dht + 1, dht + 4))).toEqual([0, 1, 5]);
    c.set([3, 0, 3], dht + 1);
    expectInputError(c, /bad Huffman table.*over-subscribed/);
    // A component names quantisation table 3, never defined.
    const sof = findMarker(good, 0xc0);
    const d = good.slice();
    d[sof + 12] = 3;
    expectInputError(d, /quantisation table 3, which no DQT defined/);
    // The scan names AC table 2, never defined.
    const e = good.slice();
    e[sos + 2] = 0x02;
    expectInputError(e, /AC Huffman table 2, which no DHT defined/);
    // RST0 replaced by RST5.
    const rst = findMarker(good, 0xd0);
    const f = good.slice();
    f[rst + 1] = 0xd5;
    expectInputError(f, /expected restart marker RST0.*found 0xFFD5/);
  });

  it('every truncation of a valid file is an InputError (never another exception or a hang)', () => {
    for (const src of [good, encodeJpeg(randomImage(9, 9, 4), 9, 9, 50, { grey: true })]) {
      for (let n = 0; n < src.length; n++) {
        let err: unknown = null;
        try {
          decodeJpeg(src.subarray(0, n));
        } catch (e) {
          err = e;
        }
        expect(err, `cut at ${n} of ${src.length}`).toBeInstanceOf(InputError);
        expect((err as Error).message, `cut at ${n}`).toMatch(/truncated|no SOI|corrupt|ends/);
      }
    }
  });

  it('random byte corruption gives a decoded image or an InputError, nothing else', () => {
    const r = rng(99);
    let errors = 0;
    for (let t = 0; t < 300; t++) {
      const b = good.slice();
      for (let k = 0; k < 1 + (t % 4); k++) b[2 + Math.floor(r() * (b.length - 2))] = Math.floor(r() * 256);
      try {
        const dec = decodeJpeg(b);
        expect(dec.rgba.length).toBe(dec.width * dec.height * 4);
      } catch (e) {
        expect(e, String(e)).toBeInstanceOf(InputError);
        errors++;
      }
    }
    expect(errors).toBeGreaterThan(0);
  });
});
