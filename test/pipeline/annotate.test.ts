// Annotators and the COCO decoding under them: RLE (both spellings) against masks built
// here and encoded by an encoder written here from the format's description; the polygon
// rasteriser against an exact even-odd point-in-polygon test at pixel centres (float64);
// COCO category mapping and file matching; the PNG-folder annotator; answer checks.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError, ShapeError } from '../../src/gpu/errors.js';
import { encodePng } from '../../src/io/png.js';
import {
  annotationMask, checkAnnotation, CocoGroundTruth, countsFromString, decodeRle, mapCategories, masksAnnotator, normaliseName,
  rasterisePolygon, rasterisePolygons, rleToMask, sampleIdOfFile, type AnnotateSample,
} from '../../src/pipeline/annotate/index.js';
import { COCO_CLASSES, VOC_CLASSES } from '../../src/pipeline/eval/vocab.js';
import { rng } from '../helpers.js';

// ---- reference encoders (from the format description, not from the decoder) ----

/** Column-major run lengths of a row-major mask, starting with a 0-run. */
function encodeCounts(mask: Uint8Array, h: number, w: number): number[] {
  const counts: number[] = [];
  let prev = 0;
  let run = 0;
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) {
      const v = mask[y * w + x];
      if (v !== prev) {
        counts.push(run);
        run = 0;
        prev = v;
      }
      run++;
    }
  }
  counts.push(run);
  return counts;
}

/** The compressed string: deltas to the count two earlier from the 4th on, each value in
 *  little-endian 5-bit groups with a continuation bit (0x20) and a sign bit (0x10) in
 *  the last group, offset by 48. Written with BigInt so the sign handling is exact. */
function encodeString(counts: number[]): string {
  let out = '';
  counts.forEach((c, i) => {
    let x = BigInt(i > 2 ? c - counts[i - 2] : c);
    for (;;) {
      let group = Number(x & 0x1fn);
      x >>= 5n;
      const more = group & 0x10 ? x !== -1n : x !== 0n;
      if (more) group |= 0x20;
      out += String.fromCharCode(group + 48);
      if (!more) break;
    }
  });
  return out;
}

function randomMask(h: number, w: number, r: () => number, density: number): Uint8Array {
  // Blobs rather than noise, so the runs have varied lengths (long ones need several groups).
  const m = new Uint8Array(h * w);
  const blobs = 1 + Math.floor(r() * 4);
  for (let b = 0; b < blobs; b++) {
    const cx = r() * w, cy = r() * h, rad = 1 + r() * Math.max(h, w) * density;
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if ((x - cx) ** 2 + (y - cy) ** 2 < rad * rad) m[y * w + x] = 1;
  }
  return m;
}

// ---- exact float64 polygon reference ----

/** Even-odd rule at (px, py): the parity of edges crossed by a ray toward +x. */
function insidePolygon(px: number, py: number, xy: readonly number[]): boolean {
  let c = false;
  const k = xy.length / 2;
  for (let i = 0, j = k - 1; i < k; j = i++) {
    const [xi, yi, xj, yj] = [xy[2 * i], xy[2 * i + 1], xy[2 * j], xy[2 * j + 1]];
    if (yi > py !== yj > py && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) c = !c;
  }
  return c;
}

function distanceToBoundary(px: number, py: number, xy: readonly number[]): number {
  let d = Infinity;
  const k = xy.length / 2;
  for (let i = 0; i < k; i++) {
    const j = (i + 1) % k;
    const [ax, ay, bx, by] = [xy[2 * i], xy[2 * i + 1], xy[2 * j], xy[2 * j + 1]];
    const [vx, vy] = [bx - ax, by - ay];
    const len = vx * vx + vy * vy;
    const t = len > 0 ? Math.max(0, Math.min(1, ((px - ax) * vx + (py - ay) * vy) / len)) : 0;
    d = Math.min(d, Math.hypot(px - ax - t * vx, py - ay - t * vy));
  }
  return d;
}

describe('COCO RLE', () => {
  it('decodes uncompressed and compressed counts of random masks to the mask they encode', () => {
    const r = rng(11);
    for (let t = 0; t < 200; t++) {
      const h = 1 + Math.floor(r() * 70);
      const w = 1 + Math.floor(r() * 70);
      const mask = t === 0 ? new Uint8Array(h * w) : t === 1 ? new Uint8Array(h * w).fill(1) : randomMask(h, w, r, r());
      const counts = encodeCounts(mask, h, w);
      const str = encodeString(counts);
      expect(countsFromString(str, 't')).toEqual(counts);
      expect(rleToMask({ size: [h, w], counts }, 'uncompressed')).toEqual(mask);
      expect(rleToMask({ size: [h, w], counts: str }, 'compressed')).toEqual(mask);
    }
  });

  it('decodes a hand-written example and a count needing several groups', () => {
    // 2x3 (h x w), column-major: col 0 = [0, 1], col 1 = [1, 1], col 2 = [0, 0] -> runs 1, 3, 2.
    expect(Array.from(rleToMask({ size: [2, 3], counts: [1, 3, 2] }, 'x'))).toEqual([0, 1, 0, 1, 1, 0]);
    expect(Array.from(rleToMask({ size: [2, 3], counts: '132' }, 'x'))).toEqual([0, 1, 0, 1, 1, 0]);
    // 1000 = 0b11111_01000: groups 8 (+0x20 continuation) then 31 with the sign bit set,
    // so a third group 0 is needed: '8'+32 -> 'X', 31+32 -> 'o', '0'.
    expect(countsFromString('Xo0', 'x')).toEqual([1000]);
    expect(encodeString([1000])).toBe('Xo0');
  });

  it('refuses truncated, oversized and malformed counts, naming the annotation', () => {
    expect(() => rleToMask({ size: [2, 2], counts: [1, 2] }, 'ann 7')).toThrow(/ann 7: the RLE counts cover 3 pixels.*\[2, 2\] has 4/);
    expect(() => rleToMask({ size: [2, 2], counts: [1, 4] }, 'a')).toThrow(InputError);
    expect(() => rleToMask({ size: [2, 2], counts: [1, -1, 4] }, 'a')).toThrow(/non-negative integers/);
    expect(() => rleToMask({ size: [2, 2], counts: 'p' }, 'a')).toThrow(/not in a compressed RLE string/);
    expect(() => rleToMask({ size: [2, 2], counts: 'X' }, 'a')).toThrow(/ends inside a count/);
    expect(() => rleToMask({ size: [2] as unknown as [number, number], counts: [4] }, 'a')).toThrow(/\[height, width\]/);
    expect(() => decodeRle([0, 4], 2, 2)).not.toThrow();
  });
});

describe('COCO polygons (pycocotools rule)', () => {
  it('equals the exact even-odd test at pixel centres except within 0.5 px of the boundary', () => {
    // The rule difference: pycocotools rounds vertices and the traced boundary to a
    // 1/5-pixel grid and takes the upper of two traced points at each column crossing,
    // so pixels whose centre is that close to an edge may flip (measured: about 1% of
    // pixels, none farther than 0.28 px); everything else must agree exactly.
    const r = rng(5);
    let total = 0;
    let differ = 0;
    for (let t = 0; t < 300; t++) {
      const h = 4 + Math.floor(r() * 30);
      const w = 4 + Math.floor(r() * 30);
      const k = 3 + Math.floor(r() * 7);
      const xy: number[] = [];
      for (let i = 0; i < k; i++) xy.push(-2 + r() * (w + 4), -2 + r() * (h + 4));
      const m = rasterisePolygon(xy, h, w);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          total++;
          const ref = insidePolygon(x + 0.5, y + 0.5, xy);
          if (ref === (m[y * w + x] === 1)) continue;
          differ++;
          expect(distanceToBoundary(x + 0.5, y + 0.5, xy), `polygon ${t} pixel (${x}, ${y})`).toBeLessThan(0.5);
        }
      }
    }
    expect(differ / total).toBeLessThan(0.02);
    expect(differ).toBeGreaterThan(0); // the rule difference is real, not vacuous
  });

  it('fills integer rectangles exactly, clips to the image, and unions polygon parts', () => {
    const h = 5;
    const w = 6;
    const rect = (x0: number, y0: number, x1: number, y1: number) => [x0, y0, x1, y0, x1, y1, x0, y1];
    const expectRect = (m: Uint8Array, x0: number, y0: number, x1: number, y1: number) => {
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) expect(m[y * w + x], `(${x}, ${y})`).toBe(x >= x0 && x < x1 && y >= y0 && y < y1 ? 1 : 0);
    };
    expectRect(rasterisePolygon(rect(1, 1, 4, 3), h, w), 1, 1, 4, 3);
    expectRect(rasterisePolygon(rect(-3, -2, 9, 8), h, w), 0, 0, w, h);
    // Clockwise or counter-clockwise: the same pixels.
    expect(rasterisePolygon([1, 1, 1, 3, 4, 3, 4, 1], h, w)).toEqual(rasterisePolygon(rect(1, 1, 4, 3), h, w));
    const both = rasterisePolygons([rect(0, 0, 2, 2), rect(1, 1, 3, 4)], h, w);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) expect(both[y * w + x]).toBe((x < 2 && y < 2) || (x >= 1 && x < 3 && y >= 1 && y < 4) ? 1 : 0);
  });

  it('decodes COCO segmentations: polygons, RLE spellings, size checks', () => {
    const h = 6;
    const w = 7;
    const mask = randomMask(h, w, rng(3), 0.5);
    const counts = encodeCounts(mask, h, w);
    expect(annotationMask({ size: [h, w], counts }, h, w, 'a')).toEqual(mask);
    expect(annotationMask({ size: [h, w], counts: encodeString(counts) }, h, w, 'a')).toEqual(mask);
    expect(annotationMask([[1, 1, 4, 1, 4, 3]], h, w, 'a')).toEqual(rasterisePolygon([1, 1, 4, 1, 4, 3], h, w));
    expect(annotationMask([], h, w, 'a')).toEqual(new Uint8Array(h * w));
    expect(() => annotationMask({ size: [w, h], counts }, h, w, 'ann 3')).toThrow(ShapeError);
    expect(() => annotationMask([[1, 2, 3, 4]], h, w, 'ann 3')).toThrow(/ann 3 polygon 0: .*at least 3 points/);
    expect(() => annotationMask([[1, 2, 3, 4, 5, 'x']], h, w, 'a')).toThrow(/not a finite number/);
    expect(() => annotationMask({ bbox: [1, 2, 3, 4] }, h, w, 'a')).toThrow(/list of polygons or an RLE/);
  });
});

describe('COCO ground-truth files', () => {
  const H = 8;
  const W = 10;
  const rle = (m: Uint8Array) => ({ size: [H, W], counts: encodeString(encodeCounts(m, H, W)) });
  const blob = (seed: number) => randomMask(H, W, rng(seed), 0.4);

  it('maps category names to the vocabulary: case, spaces, COCO spellings, both ways', () => {
    const cats = [
      { id: 1, name: 'Dining Table' }, { id: 2, name: 'tv' }, { id: 3, name: 'person' }, { id: 4, name: 'giraffe' },
      { id: 5, name: 'potted_plant' }, { id: 6, name: 'airplane' },
    ];
    const voc = mapCategories(cats, VOC_CLASSES, 'f');
    expect(Object.fromEntries(voc)).toEqual({ 1: 'diningtable', 2: 'tvmonitor', 3: 'person', 5: 'pottedplant', 6: 'aeroplane' });
    const coco = mapCategories([{ id: 9, name: 'tvmonitor' }, { id: 8, name: 'aeroplane' }, { id: 7, name: 'giraffe' }], COCO_CLASSES, 'f');
    expect(Object.fromEntries(coco)).toEqual({ 9: 'tv', 8: 'airplane', 7: 'giraffe' });
    expect(normaliseName('Hair-Drier ')).toBe('hairdrier');
    expect(() => mapCategories([{ id: 1, name: 'a' }, { id: 1, name: 'b' }], VOC_CLASSES, 'f.json')).toThrow(/f.json: category id 1 is listed twice/);
    expect(sampleIdOfFile('gen/two_seen-0003.png')).toBe('two_seen-0003');
    expect(sampleIdOfFile('one_seen-0000')).toBe('one_seen-0000');
  });

  it('gives the union of a class\'s annotations per image, null for a class with none', () => {
    const [a, b, c] = [blob(1), blob(2), blob(3)];
    const json = {
      images: [{ id: 10, file_name: 'two_seen-0000.png', height: H, width: W }, { id: 11, file_name: 'x/one_seen-0001.jpg', height: H, width: W }],
      categories: [{ id: 1, name: 'cat' }, { id: 2, name: 'dog' }, { id: 3, name: 'zebra' }],
      annotations: [
        { image_id: 10, category_id: 1, segmentation: rle(a) },
        { image_id: 10, category_id: 1, segmentation: { size: [H, W], counts: encodeCounts(b, H, W) } },
        { image_id: 10, category_id: 3, segmentation: rle(c) }, // not in the vocabulary: ignored
        { image_id: 11, category_id: 2, segmentation: [[0, 0, 5, 0, 5, 4, 0, 4]] },
      ],
    };
    const gt = new CocoGroundTruth(json, VOC_CLASSES, 'gt.json');
    const m = gt.masks('two_seen-0000', ['cat', 'dog'], H, W);
    expect(m.get('cat')).toEqual(Uint8Array.from(a, (v, i) => v | b[i]));
    expect(m.get('dog')).toBeNull();
    expect(gt.masks('one_seen-0001', ['dog'], H, W).get('dog')).toEqual(rasterisePolygon([0, 0, 5, 0, 5, 4, 0, 4], H, W));
    expect(() => gt.masks('one_seen-0001', ['dog'], W, H)).toThrow(/annotated as 8x10 but the generated image is 10x8/);
    expect(() => gt.masks('two_unseen-0000', ['dog'], H, W)).toThrow(/no image with file name 'two_unseen-0000/);
  });

  it('refuses malformed files with the path and the entry', () => {
    expect(() => new CocoGroundTruth({ images: [] }, VOC_CLASSES, 'g.json')).toThrow(/g.json: not a COCO annotation file/);
    const base = { images: [{ id: 1, file_name: 's.png', height: H, width: W }], categories: [{ id: 1, name: 'cat' }] };
    expect(() => new CocoGroundTruth({ ...base, annotations: [{ image_id: 2, category_id: 1, segmentation: [] }] }, VOC_CLASSES, 'g.json'))
      .toThrow(/annotations\[0\] names image_id 2, which is not in 'images'/);
    expect(() => new CocoGroundTruth({ ...base, annotations: [{ image_id: 1, category_id: 1, bbox: [0, 0, 1, 1] }] }, VOC_CLASSES, 'g.json'))
      .toThrow(/box-only annotations give no mask/);
    expect(() => new CocoGroundTruth({ ...base, images: [{ id: 1, file_name: 's.png' }], annotations: [] }, VOC_CLASSES, 'g.json')).toThrow(/images\[0\] must be/);
  });
});

describe('masks annotator', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gsd-annotate-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const H = 6;
  const W = 5;
  const image = { width: W, height: H, rgb: new Float32Array(3 * H * W), rgba: new Uint8Array(4 * H * W) };
  const sample = (id: string, classes: string[]): AnnotateSample => ({ id, image, classes, prompt: `a photograph of a ${classes.join(' and a ')}` });

  /** A PNG whose pixel i has RGB `rgb(i)`. */
  const png = (rgb: (i: number) => [number, number, number], w = W, h = H) => {
    const d = new Uint8Array(w * h * 4);
    for (let i = 0; i < w * h; i++) d.set([...rgb(i), 255], 4 * i);
    return encodePng(d, w, h);
  };

  it('reads <id>/<class>.png (largest channel > 127), null for a missing class, spaces as _', async () => {
    const gtDir = join(dir, 'png');
    await mkdir(join(gtDir, 'two_seen-0000'), { recursive: true });
    const vals = Array.from({ length: H * W }, (_, i) => (i * 37) % 256);
    await writeFile(join(gtDir, 'two_seen-0000', 'cat.png'), png((i) => [vals[i], vals[i], vals[i]]));
    await writeFile(join(gtDir, 'two_seen-0000', 'traffic_light.png'), png((i) => [0, 0, i % 2 ? 200 : 127]));
    const ann = await masksAnnotator(gtDir, COCO_CLASSES);
    expect(ann.name).toBe('masks');
    await ann.prepare?.([{ id: 'two_seen-0000', classes: ['cat', 'dog'] }]);
    const got = await ann.annotate(sample('two_seen-0000', ['cat', 'traffic light', 'dog']));
    expect(Array.from(got.get('cat') ?? [])).toEqual(vals.map((v) => (v > 127 ? 1 : 0)));
    expect(Array.from(got.get('traffic light') ?? [])).toEqual(vals.map((_, i) => (i % 2 ? 1 : 0)));
    expect(got.get('dog')).toBeNull();
    await expect(ann.prepare?.([{ id: 'two_seen-0000', classes: [] }, { id: 'one_seen-0004', classes: ['cat'] }])).rejects.toThrow(/no ground-truth folder for sample\(s\) one_seen-0004/);
    await writeFile(join(gtDir, 'two_seen-0000', 'dog.png'), png(() => [255, 255, 255], W + 1, H));
    await expect(ann.annotate(sample('two_seen-0000', ['dog']))).rejects.toThrow(ShapeError);
  });

  it('reads a COCO JSON file and checks coverage before generation', async () => {
    const file = join(dir, 'gt.json');
    const json = {
      images: [{ id: 1, file_name: 'one_seen-0000.png', height: H, width: W }],
      categories: [{ id: 1, name: 'dining table' }],
      annotations: [{ image_id: 1, category_id: 1, segmentation: [[0, 0, 3, 0, 3, 3, 0, 3]] }],
    };
    await writeFile(file, JSON.stringify(json));
    const ann = await masksAnnotator(file, VOC_CLASSES);
    await ann.prepare?.([{ id: 'one_seen-0000', classes: ['diningtable'] }]);
    const got = await ann.annotate(sample('one_seen-0000', ['diningtable']));
    expect(got.get('diningtable')).toEqual(rasterisePolygon([0, 0, 3, 0, 3, 3, 0, 3], H, W));
    await expect(ann.prepare?.([{ id: 'one_seen-0001', classes: ['diningtable'] }])).rejects.toThrow(/no image for sample\(s\) one_seen-0001/);
    await expect(ann.prepare?.([{ id: 'one_seen-0000', classes: ['cow'] }])).rejects.toThrow(/no category names class\(es\) cow \(categories: dining table\)/);
    await writeFile(join(dir, 'bad.json'), '{ not json');
    await expect(masksAnnotator(join(dir, 'bad.json'), VOC_CLASSES)).rejects.toThrow(/not valid JSON/);
    await expect(masksAnnotator(join(dir, 'nothing-here'), VOC_CLASSES)).rejects.toThrow(/no such file or folder/);
  });

  it('checks an annotator\'s answer: every class once, the image size, 0/1 masks', () => {
    const s = sample('x', ['cat', 'dog']);
    const full = new Uint8Array(H * W).fill(255);
    expect(checkAnnotation('a', s, new Map([['cat', full], ['dog', null]]))).toEqual([new Uint8Array(H * W).fill(1), null]);
    expect(() => checkAnnotation('det', s, new Map([['cat', full]]))).toThrow(/annotator 'det' gave no answer for class 'dog' of sample x/);
    expect(() => checkAnnotation('det', s, new Map([['cat', full], ['dog', null], ['cow', null]]))).toThrow(/answered classes \[cow\]/);
    expect(() => checkAnnotation('det', s, new Map([['cat', new Uint8Array(3)], ['dog', null]]))).toThrow(ShapeError);
  });
});
