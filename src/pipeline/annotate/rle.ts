// COCO run-length encoded masks (pycocotools common/maskApi.c, cocoapi commit 8c9bcc3),
// decoded to this project's row-major masks.
//
// An RLE mask of size [h, w] is a list of run lengths over the pixels in column-major
// order (pixel (x, y) is number x*h + y), alternating 0-runs and 1-runs and starting
// with a (possibly empty) 0-run; the lengths sum to h*w.
// Two spellings exist in COCO JSON:
//  - uncompressed (iscrowd annotations of the datasets): `counts` is a list of integers;
//  - compressed (results files, pycocotools' own output): `counts` is a string, each
//    count a little-endian run of 5-bit groups in characters 48..111 ('0'..'o'); bit 5 of
//    a character says another group follows, and bit 4 of the last group is the sign;
//    from the fourth count on the string holds the difference to the count two earlier
//    (maskApi.c rleToString / rleFrString).
import { InputError } from '../../gpu/errors.js';

/** An RLE mask as COCO JSON writes it: `size` is [height, width]. */
export interface CocoRle {
  size: [number, number];
  counts: string | number[];
}

/** The run lengths of a compressed `counts` string (maskApi.c rleFrString). */
export function countsFromString(s: string, where: string): number[] {
  const out: number[] = [];
  let p = 0;
  while (p < s.length) {
    let value = 0;
    let k = 0;
    for (;;) {
      if (p >= s.length) throw new InputError(`${where}: the compressed RLE string ends inside a count (at character ${p}); the counts are truncated`);
      const code = s.charCodeAt(p) - 48;
      if (code < 0 || code > 63) {
        throw new InputError(`${where}: character ${JSON.stringify(s[p])} at ${p} is not in a compressed RLE string (characters '0'..'o' only)`);
      }
      // 5 bits per group; the value can pass 32 bits before the sign is applied, so
      // arithmetic, not bitwise, operations.
      value += (code & 0x1f) * 2 ** (5 * k);
      p++;
      k++;
      if (code & 0x20) continue;
      if (code & 0x10) value -= 2 ** (5 * k);
      break;
    }
    if (out.length > 2) value += out[out.length - 2];
    if (!Number.isSafeInteger(value) || value < 0 || value > 0xffffffff) {
      throw new InputError(`${where}: compressed RLE count ${out.length} decodes to ${value}, not a run length in 0..2^32-1; the string is corrupt`);
    }
    out.push(value);
  }
  return out;
}

/** Checks the [h, w] of an RLE's `size`. */
export function rleSize(size: unknown, where: string): [number, number] {
  const ok = Array.isArray(size) && size.length === 2 && size.every((v) => Number.isSafeInteger(v) && v > 0);
  if (!ok) throw new InputError(`${where}: RLE 'size' must be [height, width] with positive integers, got ${JSON.stringify(size)}`);
  return size as [number, number];
}

/** The run lengths of an RLE object, either spelling, checked to cover exactly h*w pixels. */
export function rleCounts(rle: CocoRle, where: string): number[] {
  const [h, w] = rleSize(rle.size, where);
  let counts: number[];
  if (typeof rle.counts === 'string') counts = countsFromString(rle.counts, where);
  else if (Array.isArray(rle.counts)) {
    const bad = rle.counts.findIndex((c) => !Number.isSafeInteger(c) || c < 0);
    if (bad >= 0) throw new InputError(`${where}: RLE count ${bad} is ${JSON.stringify(rle.counts[bad])}; counts must be non-negative integers`);
    counts = rle.counts;
  } else {
    throw new InputError(`${where}: RLE 'counts' must be a string (compressed) or a list of integers (uncompressed), got ${typeof rle.counts}`);
  }
  let total = 0;
  for (const c of counts) total += c;
  if (total !== h * w) {
    throw new InputError(`${where}: the RLE counts cover ${total} pixels, but its size [${h}, ${w}] has ${h * w}; the mask is truncated or belongs to another image size`);
  }
  return counts;
}

/** Row-major [h * w] mask (1 inside) of column-major run lengths that sum to h*w. */
export function decodeRle(counts: readonly number[], h: number, w: number): Uint8Array {
  const out = new Uint8Array(h * w);
  let pos = 0;
  for (let j = 0; j < counts.length; j++) {
    const end = pos + counts[j];
    if (j % 2 === 1) {
      for (let p = pos; p < end; p++) {
        const x = Math.floor(p / h);
        out[(p - x * h) * w + x] = 1;
      }
    }
    pos = end;
  }
  return out;
}

/** An RLE object (either spelling) as a row-major [h * w] mask. */
export function rleToMask(rle: CocoRle, where: string): Uint8Array {
  const counts = rleCounts(rle, where);
  return decodeRle(counts, rle.size[0], rle.size[1]);
}
