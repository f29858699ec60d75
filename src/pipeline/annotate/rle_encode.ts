// COCO run-length encoding of masks, as pycocotools writes results files (maskApi.c
// rleEncode and rleToString, cocoapi commit 8c9bcc3): run lengths over the pixels in
// column-major order (pixel (x, y) is number x*h + y), alternating 0-runs and 1-runs and
// starting with a (possibly empty) 0-run; then the compressed string: from the fourth
// count on, each count minus the count two before it; each value written as little-endian
// 5-bit groups in characters 48 + group, bit 5 set on every group but the last, the last
// group's bit 4 being the sign (arithmetic shifts until only sign bits are left).
// rle.ts decodes both spellings.
import { ShapeError } from '../../gpu/errors.js';
import type { CocoRle } from './rle.js';

/** Column-major run lengths of a row-major [h * w] mask (nonzero = inside). */
export function maskToCounts(mask: ArrayLike<number>, h: number, w: number): number[] {
  if (mask.length !== h * w) throw new ShapeError(`RLE encode: ${mask.length} mask values for a ${h}x${w} mask`);
  const counts: number[] = [];
  let current = 0;
  let run = 0;
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) {
      const v = mask[y * w + x] ? 1 : 0;
      if (v !== current) {
        counts.push(run);
        run = 0;
        current = v;
      }
      run++;
    }
  }
  counts.push(run);
  return counts;
}

/** pycocotools' compressed `counts` string of run lengths. */
export function countsToString(counts: readonly number[]): string {
  let s = '';
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i] - (i > 2 ? counts[i - 2] : 0);
    for (let more = true; more;) {
      let c = x & 0x1f;
      // x >>= 5 on a C long: floor division keeps counts past 2^31 exact.
      x = Math.floor(x / 32);
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      s += String.fromCharCode(c + 48);
    }
  }
  return s;
}

/** A row-major mask as a COCO compressed RLE object ({size: [h, w], counts}). */
export function encodeRle(mask: ArrayLike<number>, h: number, w: number): CocoRle {
  return { size: [h, w], counts: countsToString(maskToCounts(mask, h, w)) };
}
