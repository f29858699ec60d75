// COCO run-length encoding of binary masks, as pycocotools writes it (common/maskApi.c
// rleEncode, rleToString, rleArea, rleToBbox; cocoapi commit 8c9bcc3), from this project's
// row-major masks. The decoder of the same format is pipeline/annotate/rle.ts.
//
// Format: the pixels in column-major order (pixel (x, y) is number x*h + y), as alternating
// runs of 0s and 1s starting with a (possibly empty) run of 0s. The compressed string
// writes each count as little-endian 5-bit groups in characters 48..111, bit 5 of a
// character meaning "another group follows" and bit 4 of the last group the sign; from
// the fourth count on it writes the difference to the count two earlier.
import { InputError } from '../gpu/errors.js';

/** An RLE mask as COCO JSON writes it (`size` is [height, width]). */
export interface CompressedRle {
  size: [number, number];
  counts: string;
}

function checkMask(mask: Uint8Array, h: number, w: number): void {
  if (!Number.isSafeInteger(h) || !Number.isSafeInteger(w) || h < 1 || w < 1) throw new InputError(`RLE encoding: mask size ${h}x${w} must be positive integers`);
  if (mask.length !== h * w) throw new InputError(`RLE encoding: the mask has ${mask.length} pixels, its size ${h}x${w} needs ${h * w}`);
}

/** Column-major run lengths of a row-major [h * w] mask (non-zero = inside), starting with
 *  the run of 0s (maskApi.c rleEncode). */
export function maskToCounts(mask: Uint8Array, h: number, w: number): number[] {
  checkMask(mask, h, w);
  const counts: number[] = [];
  let inside = false;
  let run = 0;
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) {
      const v = mask[y * w + x] !== 0;
      if (v !== inside) {
        counts.push(run);
        run = 0;
        inside = v;
      }
      run++;
    }
  }
  counts.push(run);
  return counts;
}

/** The compressed `counts` string of run lengths (maskApi.c rleToString). */
export function countsToString(counts: readonly number[]): string {
  let s = '';
  for (let i = 0; i < counts.length; i++) {
    // Counts can pass 2^31 (and differences go negative), so the shift is a floor
    // division; `& 0x1f` is exact on the low bits of any safe integer.
    let x = i > 2 ? counts[i] - counts[i - 2] : counts[i];
    for (;;) {
      let c = x & 0x1f;
      x = Math.floor(x / 32);
      const more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      s += String.fromCharCode(c + 48);
      if (!more) break;
    }
  }
  return s;
}

/** A row-major [h * w] mask as a compressed COCO RLE object. */
export function encodeRle(mask: Uint8Array, h: number, w: number): CompressedRle {
  return { size: [h, w], counts: countsToString(maskToCounts(mask, h, w)) };
}

/** Pixels inside (maskApi.c rleArea: the sum of the odd runs). */
export function maskArea(mask: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i] !== 0) n++;
  return n;
}

/** The tight box [x, y, width, height] of a row-major mask, [0, 0, 0, 0] when empty, as
 *  maskApi.c rleToBbox gives it (column and row of the first and last pixel inside). */
export function maskBbox(mask: Uint8Array, h: number, w: number): [number, number, number, number] {
  checkMask(mask, h, w);
  let [x0, y0, x1, y1] = [w, h, -1, -1];
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) {
      if (mask[row + x] === 0) continue;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
  }
  return x1 < 0 ? [0, 0, 0, 0] : [x0, y0, x1 - x0 + 1, y1 - y0 + 1];
}
