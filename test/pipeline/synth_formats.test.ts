// The file formats and the label rule under the synthetic dataset, against references
// written in the tests: COCO RLE encoding (decoded by the project's decoder and by a
// reference encoder from the format description; area and bbox by brute force), palette
// PNGs (chunks, CRC, palette = VOCdevkit's colour map, indices read back from IDAT and
// through pngjs), the baseline JPEG encoder (decoded by a T.81 decoder written here:
// quantised coefficients equal a float64 DCT from its definition, image within a PSNR),
// label maps (float64 rule on seeded logits with overlaps and exact ties) and the ignore
// band (brute-force neighbourhood test).
import { describe, expect, it } from 'vitest';
import { InputError, ShapeError } from '../../src/gpu/errors.js';
import { countsToString, encodeRle, maskArea, maskBbox, maskToCounts } from '../../src/io/coco_rle.js';
import { encodeJpeg, JPEG_HUFFMAN_TABLES } from '../../src/io/jpeg.js';
import { crc32, decodePaletteIndices, encodePalettePng, vocPalette } from '../../src/io/png_palette.js';
import { encodePng } from '../../src/io/png.js';
import { rleToMask } from '../../src/pipeline/annotate/rle.js';
import { ignoreBand, labelCounts, labelMap } from '../../src/pipeline/synth/labels.js';
import { rng } from '../helpers.js';
import { decodeBaselineJpeg, paletteIndices, pngChunks, psnr, referenceLabels, vocColour } from './synth_helpers.js';

function blobs(h: number, w: number, r: () => number, count: number): Uint8Array {
  const m = new Uint8Array(h * w);
  for (let b = 0; b < count; b++) {
    const [cx, cy, rad] = [r() * w, r() * h, 0.5 + r() * Math.max(h, w) * 0.3];
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if ((x - cx) ** 2 + (y - cy) ** 2 < rad * rad) m[y * w + x] = 1;
  }
  return m;
}

/** The compressed string from the format description: from the 4th count on the
 *  difference to the count two back; each value in little-endian 5-bit groups, bit 5 set
 *  when a group follows, the last group's bit 4 the sign; offset 48. BigInt, so the sign
 *  handling is exact at any size. */
function referenceString(counts: number[]): string {
  let out = '';
  counts.forEach((c, i) => {
    let x = BigInt(i > 2 ? c - counts[i - 2] : c);
    for (;;) {
      let group = Number(BigInt.asUintN(5, x));
      x >>= 5n;
      const more = group & 0x10 ? x !== -1n : x !== 0n;
      if (more) group |= 0x20;
      out += String.fromCharCode(group + 48);
      if (!more) break;
    }
  });
  return out;
}

describe('COCO RLE encoder', () => {
  it('encodes masks that the project decoder turns back into the same masks; area and bbox by brute force', () => {
    const r = rng(11);
    const shapes: Array<[number, number]> = [[1, 1], [1, 9], [7, 1], [13, 17], [64, 48], [5, 300]];
    for (const [h, w] of shapes) {
      for (const kind of ['empty', 'full', 'blobs', 'noise'] as const) {
        const mask = kind === 'empty' ? new Uint8Array(h * w) : kind === 'full' ? new Uint8Array(h * w).fill(1)
          : kind === 'blobs' ? blobs(h, w, r, 3) : Uint8Array.from({ length: h * w }, () => (r() < 0.4 ? 1 : 0));
        const rle = encodeRle(mask, h, w);
        expect(rle.size).toEqual([h, w]);
        expect(rleToMask(rle, 'test'), `${h}x${w} ${kind}`).toEqual(mask);
        expect(rleToMask({ size: [h, w], counts: maskToCounts(mask, h, w) }, 'test')).toEqual(mask);
        let area = 0;
        let [x0, y0, x1, y1] = [Infinity, Infinity, -1, -1];
        for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (mask[y * w + x]) {
          area++;
          [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
        }
        expect(maskArea(mask)).toBe(area);
        expect(maskBbox(mask, h, w)).toEqual(area ? [x0, y0, x1 - x0 + 1, y1 - y0 + 1] : [0, 0, 0, 0]);
      }
    }
  });

  it('writes the counts column by column, starting with the 0-run, and compresses as maskApi.c does', () => {
    // 2x3, row-major [[1,0,1],[1,1,0]]: columns (1,1), (0,1), (1,0) -> 0,2,1,2,1.
    expect(maskToCounts(Uint8Array.from([1, 0, 1, 1, 1, 0]), 2, 3)).toEqual([0, 2, 1, 2, 1]);
    expect(maskToCounts(new Uint8Array([1, 1]), 1, 2)).toEqual([0, 2]);
    expect(countsToString([1000])).toBe('Xo0');
    // Random counts up to 2^32 (differences to the count two back go negative and past
    // 2^31) against the reference encoder.
    const r = rng(5);
    for (let t = 0; t < 200; t++) {
      const counts = Array.from({ length: 1 + Math.floor(r() * 12) }, () => Math.floor(r() ** 4 * 2 ** (r() < 0.2 ? 32 : 12)));
      expect(countsToString(counts), JSON.stringify(counts)).toBe(referenceString(counts));
    }
  });

  it('refuses a mask of the wrong length', () => {
    expect(() => encodeRle(new Uint8Array(5), 2, 3)).toThrow(InputError);
  });
});

describe('palette PNG', () => {
  it('uses the VOCdevkit colour map (background black, aeroplane dark red, person, void)', () => {
    const pal = vocPalette();
    for (let i = 0; i < 256; i++) expect([pal[3 * i], pal[3 * i + 1], pal[3 * i + 2]], `entry ${i}`).toEqual(vocColour(i));
    expect([...pal.subarray(0, 3)]).toEqual([0, 0, 0]);
    expect([...pal.subarray(3, 6)]).toEqual([128, 0, 0]);
    expect([...pal.subarray(15 * 3, 16 * 3)]).toEqual([192, 128, 128]);
    expect([...pal.subarray(255 * 3)]).toEqual([224, 224, 192]);
  });

  it('writes an 8-bit indexed PNG whose pixel bytes are the labels, readable by pngjs as the palette colours', () => {
    const [w, h] = [37, 11];
    const r = rng(3);
    const labels = Uint8Array.from({ length: w * h }, () => [0, 1, 7, 20, 255][Math.floor(r() * 5)]);
    const png = encodePalettePng(labels, w, h, vocPalette());
    const chunks = pngChunks(png);
    expect(chunks.map((c) => c.type)).toEqual(['IHDR', 'PLTE', 'IDAT', 'IEND']);
    for (const c of chunks) expect(crc32(Buffer.concat([Buffer.from(c.type, 'latin1'), c.data])), c.type).toBe(c.crc);
    // CRC-32 check value of the ISO-HDLC CRC (the catalogue's "123456789" test).
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    const read = paletteIndices(png);
    expect([read.width, read.height]).toEqual([w, h]);
    expect(read.indices).toEqual(labels);
    expect(read.palette.length).toBe(768);
    // Through pngjs (which expands the palette) and back.
    expect(decodePaletteIndices(png, vocPalette(), 'test').indices).toEqual(labels);
  });

  it('refuses indices past the palette and reports colours that are not in it', () => {
    expect(() => encodePalettePng(Uint8Array.from([0, 3]), 2, 1, vocPalette().subarray(0, 9))).toThrow(/index 3, the palette has 3 entries/);
    const rgba = Uint8Array.from([0, 0, 0, 255, 1, 2, 3, 255]);
    expect(() => decodePaletteIndices(encodePng(rgba, 2, 1), vocPalette(), 'x.png')).toThrow(/x.png: pixel \(1, 0\) has colour \(1, 2, 3\)/);
  });
});

describe('baseline JPEG encoder', () => {
  /** A test picture: smooth gradients, a sharp edge and seeded noise. */
  function picture(w: number, h: number, seed: number): Uint8Array {
    const r = rng(seed);
    const out = new Uint8Array(w * h * 4);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const o = (y * w + x) * 4;
        out[o] = Math.round((255 * x) / Math.max(1, w - 1));
        out[o + 1] = x > w / 2 ? 200 : 40;
        out[o + 2] = Math.min(255, Math.round(128 + 60 * Math.sin(y / 3) + 30 * (r() - 0.5)));
        out[o + 3] = 255;
      }
    }
    return out;
  }

  /** The quantised coefficients the standard defines for one 8x8 block: JFIF YCbCr, level
   *  shift, DCT-II with C(0) = 1/sqrt 2 and 1/4 scaling, divided by Q and rounded. */
  function referenceBlock(rgba: Uint8Array, w: number, h: number, bx: number, by: number, comp: number, q: number[]): Array<number | null> {
    const f = (x: number, y: number) => {
      const o = (Math.min(y, h - 1) * w + Math.min(x, w - 1)) * 4;
      const [R, G, B] = [rgba[o], rgba[o + 1], rgba[o + 2]];
      return [0.299 * R + 0.587 * G + 0.114 * B, -0.168736 * R - 0.331264 * G + 0.5 * B + 128, 0.5 * R - 0.418688 * G - 0.081312 * B + 128][comp] - 128;
    };
    const out: Array<number | null> = [];
    for (let v = 0; v < 8; v++) {
      for (let u = 0; u < 8; u++) {
        let s = 0;
        for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) s += f(bx * 8 + x, by * 8 + y) * Math.cos(((2 * x + 1) * u * Math.PI) / 16) * Math.cos(((2 * y + 1) * v * Math.PI) / 16);
        const F = ((u === 0 ? Math.SQRT1_2 : 1) * (v === 0 ? Math.SQRT1_2 : 1) * s) / 4;
        const x = F / q[v * 8 + u];
        // A quotient within 1e-9 of .5 can round either way with another summation order.
        out.push(Math.abs(Math.abs(x - Math.trunc(x)) - 0.5) < 1e-9 ? null : Math.round(x));
      }
    }
    return out;
  }

  const K1_LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99];
  const K1_CHROMA = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    ...new Array<number>(32).fill(99)];
  const scaled = (t: number[], q: number) => t.map((v) => Math.min(255, Math.max(1, Math.floor((v * (q < 50 ? Math.floor(5000 / q) : 200 - 2 * q) + 50) / 100))));

  it('has the Annex K.3 Huffman tables: every DC category and (run, size) symbol once', () => {
    const { DC_LUMA, DC_CHROMA, AC_LUMA, AC_CHROMA } = JPEG_HUFFMAN_TABLES;
    const acSymbols = [0x00, 0xf0];
    for (let run = 0; run < 16; run++) for (let size = 1; size <= 10; size++) acSymbols.push((run << 4) | size);
    for (const t of [DC_LUMA, DC_CHROMA]) expect([...t.vals].sort((a, b) => a - b)).toEqual([...Array(12).keys()]);
    for (const t of [AC_LUMA, AC_CHROMA]) expect([...t.vals].sort((a, b) => a - b)).toEqual(acSymbols.sort((a, b) => a - b));
    for (const t of [DC_LUMA, DC_CHROMA, AC_LUMA, AC_CHROMA]) expect(t.bits.reduce((a, b) => a + b, 0)).toBe(t.vals.length);
  });

  for (const [w, h, q] of [[21, 13, 95], [64, 40, 75], [8, 8, 100], [3, 2, 50], [40, 17, 10]] as const) {
    it(`encodes ${w}x${h} at quality ${q}: the coefficients are the standard's, the picture decodes back`, () => {
      const rgba = picture(w, h, w * 100 + q);
      const jpg = encodeJpeg(rgba, w, h, q);
      const d = decodeBaselineJpeg(jpg);
      expect([d.width, d.height]).toEqual([w, h]);
      expect(d.components.map((c) => [c.id, c.h, c.v, c.tq])).toEqual([[1, 1, 1, 0], [2, 1, 1, 1], [3, 1, 1, 1]]);
      expect(d.quant[0]).toEqual(scaled(K1_LUMA, q));
      expect(d.quant[1]).toEqual(scaled(K1_CHROMA, q));
      const bw = Math.ceil(w / 8);
      let checked = 0;
      for (let c = 0; c < 3; c++) {
        d.coefficients[c].forEach((blk, b) => {
          const ref = referenceBlock(rgba, w, h, b % bw, Math.floor(b / bw), c, d.quant[c === 0 ? 0 : 1]);
          ref.forEach((v, k) => {
            if (v === null) return;
            checked++;
            if (blk[k] !== v) expect.fail(`component ${c} block ${b} coefficient ${k}: ${blk[k]}, the standard gives ${v}`);
          });
        });
      }
      expect(checked).toBeGreaterThan(0.99 * 3 * 64 * d.coefficients[0].length);
      // Reconstruction quality: ~quantisation noise only.
      const minPsnr = q >= 95 ? 36 : q >= 75 ? 28 : 18;
      expect(psnr(d.rgba, rgba)).toBeGreaterThan(minPsnr);
    });
  }

  it('refuses bad sizes and qualities', () => {
    expect(() => encodeJpeg(new Uint8Array(16), 2, 2, 0)).toThrow(/quality 0/);
    expect(() => encodeJpeg(new Uint8Array(12), 2, 2)).toThrow(/12 bytes/);
    expect(() => encodeJpeg(new Uint8Array(0), 0, 0)).toThrow(InputError);
  });
});

describe('label maps', () => {
  it('take, per pixel, the class with the higher logit among those over the threshold; ties to the smaller label', () => {
    const r = rng(21);
    for (const t of [0.5, 0.3, 0.8]) {
      for (const n of [1, 2, 3]) {
        const px = 400;
        const logits = Array.from({ length: n }, () => Float32Array.from({ length: px }, () => (r() - 0.5) * 8));
        // Exact ties on some pixels, above and below the threshold.
        for (let p = 0; p < 40; p++) for (let k = 1; k < n; k++) logits[k][p] = logits[0][p];
        const labels = [7, 3, 12].slice(0, n);
        const got = labelMap(logits, labels, px, t);
        expect(got).toEqual(referenceLabels(logits, labels, t));
        // The rule decides something on these inputs: background, single and contested pixels.
        expect(new Set(got).size).toBe(n + 1);
      }
    }
    const counts = labelCounts(Uint8Array.from([0, 3, 3, 255, 0, 0]));
    expect(counts).toEqual({ 0: 3, 3: 2, 255: 1 });
  });

  it('refuse mismatched inputs and non-finite logits', () => {
    expect(() => labelMap([new Float32Array(4)], [1, 2], 4)).toThrow(ShapeError);
    expect(() => labelMap([new Float32Array(3)], [1], 4)).toThrow(ShapeError);
    expect(() => labelMap([new Float32Array(4)], [255], 4)).toThrow(/label 255/);
    expect(() => labelMap([Float32Array.from([0, NaN, 1, 2])], [1], 4)).toThrow(/non-finite mask logit/);
  });

  it('ignore band: 255 exactly where another label lies within the radius (Chebyshev), by brute force', () => {
    const r = rng(8);
    const [h, w] = [23, 31];
    const map = new Uint8Array(h * w);
    for (const [lab, m] of [[4, blobs(h, w, r, 2)], [9, blobs(h, w, r, 2)]] as const) for (let p = 0; p < m.length; p++) if (m[p]) map[p] = lab;
    expect(ignoreBand(map, h, w, 0)).toEqual(map);
    for (const radius of [1, 2, 3]) {
      const got = ignoreBand(map, h, w, radius);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          let other = false;
          for (let dy = -radius; dy <= radius; dy++) for (let dx = -radius; dx <= radius; dx++) {
            const [yy, xx] = [y + dy, x + dx];
            if (yy >= 0 && yy < h && xx >= 0 && xx < w && map[yy * w + xx] !== map[y * w + x]) other = true;
          }
          expect(got[y * w + x], `(${x}, ${y}) radius ${radius}`).toBe(other ? 255 : map[y * w + x]);
        }
      }
    }
    expect(() => ignoreBand(map, h, w, -1)).toThrow(InputError);
  });
});
