import { describe, expect, it } from 'vitest';
import { InputError, ShapeError } from '../../src/gpu/errors.js';
import { harmonicMean, IoUAccumulator, maskCounts, meanIoU, type Mask } from '../../src/pipeline/eval/miou.js';
import { COCO_CLASSES, COCO_UNSEEN_65_15, cocoSplit65_15, VOC_CLASSES, VOC_SPLIT_ROWS, vocSplit } from '../../src/pipeline/eval/vocab.js';
import { handler } from '../../src/pipeline/parity/eval.js';
import { readManifest } from '../../src/pipeline/parity/index.js';
import { evaluate } from '../../src/pipeline/parity/types.js';
import { goldenDir, rng } from '../helpers.js';

const CLASSES = ['a', 'b', 'c', 'd', 'e', 'f'];
const SPLIT = { name: 'test', seen: ['a', 'b', 'c', 'd'], unseen: ['e', 'f'] };

interface RandomImage {
  classes: string[];
  gt: Mask[];
  pred: Record<string, Mask[]>;
}

/** Random images naming 1-3 distinct classes of a-e (f is never named); masks of three
 *  kinds: Uint8 0/1, Uint8 0/255 and float probabilities, with some all-empty ones. */
function randomImages(count: number, pixels: number, seed: number, methods: string[]): RandomImage[] {
  const r = rng(seed);
  const mask = (kind: number): Mask => {
    const density = r() < 0.15 ? 0 : r();
    if (kind === 0) return Uint8Array.from({ length: pixels }, () => (r() < density ? 1 : 0));
    if (kind === 1) return Uint8Array.from({ length: pixels }, () => (r() < density ? 255 : 0));
    return Float32Array.from({ length: pixels }, () => (r() < density ? 0.5 + 0.5 * r() + 1e-3 : 0.5 * r()));
  };
  return Array.from({ length: count }, () => {
    const pool = CLASSES.slice(0, 5);
    const classes: string[] = [];
    const n = 1 + Math.floor(r() * 3);
    while (classes.length < n) {
      const c = pool[Math.floor(r() * pool.length)];
      if (!classes.includes(c)) classes.push(c);
    }
    const pred = Object.fromEntries(methods.map((m) => [m, classes.map(() => mask(Math.floor(r() * 3)))]));
    return { classes, gt: classes.map(() => mask(Math.floor(r() * 3))), pred };
  });
}

/** Brute force: per class, every pixel of every naming image pooled into one long
 *  boolean pair list; IoU = #both / #either. */
function bruteForce(images: RandomImage[], method: string) {
  const out: Record<string, { images: number[]; iou: number | null; inter: number; union: number }> = {};
  for (const c of CLASSES) {
    const p: boolean[] = [];
    const g: boolean[] = [];
    const idx: number[] = [];
    images.forEach((im, k) => {
      const j = im.classes.indexOf(c);
      if (j < 0) return;
      idx.push(k);
      for (const v of Array.from(im.pred[method][j])) p.push(v > 0.5);
      for (const v of Array.from(im.gt[j])) g.push(v > 0.5);
    });
    const inter = p.filter((v, i) => v && g[i]).length;
    const union = p.filter((v, i) => v || g[i]).length;
    out[c] = { images: idx, inter, union, iou: idx.length && union ? inter / union : null };
  }
  return out;
}

describe('Protocol-I IoU accumulator', () => {
  it('matches a brute-force pooled IoU on random masks, for three methods', () => {
    const methods = ['grounding', 'daam', 'other'];
    const images = randomImages(9, 37, 5, methods);
    const acc = new IoUAccumulator(CLASSES, methods);
    images.forEach((im) => acc.addImage(im));
    expect(acc.imageCount).toBe(9);
    for (const m of methods) {
      const ref = bruteForce(images, m);
      const res = acc.result(m, SPLIT);
      expect(Object.keys(res.per_class)).toEqual(CLASSES);
      for (const c of CLASSES) {
        const a = res.per_class[c];
        expect([a.intersection, a.union, a.images], `${m} ${c}`).toEqual([ref[c].inter, ref[c].union, ref[c].images]);
        expect(a.iou, `${m} ${c}`).toBe(ref[c].iou);
      }
      // f is named nowhere.
      expect(res.per_class.f).toMatchObject({ iou: null, status: 'not named in any prompt', images: [] });
      // This seed names every class but f, each with a non-empty union.
      expect(res.seen_classes_averaged).toEqual(SPLIT.seen);
      const seenVals = SPLIT.seen.map((c) => ref[c].iou).filter((v): v is number => v !== null);
      const s = seenVals.reduce((x, y) => x + y, 0) / seenVals.length;
      expect(Math.abs((res.miou_seen as number) - s)).toBeLessThan(1e-15);
      expect(res.miou_unseen).toBe(ref.e.iou);
      expect(res.unseen_classes_averaged).toEqual(ref.e.iou === null ? [] : ['e']);
      const u = ref.e.iou as number;
      expect(Math.abs((res.harmonic_mean as number) - 2 / (1 / s + 1 / u))).toBeLessThan(1e-14);
    }
  });

  it('empty union over all of a class\'s images is undefined (null) and left out of the means', () => {
    const acc = new IoUAccumulator(CLASSES, ['m']);
    const empty = new Uint8Array(4);
    acc.addImage({ classes: ['a', 'b'], gt: [Uint8Array.of(1, 1, 0, 0), empty], pred: { m: [Uint8Array.of(1, 0, 0, 0), empty] } });
    acc.addImage({ classes: ['b'], gt: [empty], pred: { m: [empty] } });
    const r = acc.result('m', SPLIT);
    expect(r.per_class.b).toEqual({ images: [0, 1], intersection: 0, union: 0, iou: null, status: 'undefined: union 0 over its images' });
    expect(r.per_class.a).toEqual({ images: [0], intersection: 1, union: 2, iou: 0.5, status: 'evaluated' });
    expect(r.miou_seen).toBe(0.5);
    expect(r.seen_classes_averaged).toEqual(['a']);
    // No unseen class named: mIoU unseen and H are null.
    expect([r.miou_unseen, r.harmonic_mean]).toEqual([null, null]);
  });

  it('an empty ground truth counts the prediction in the union (IoU 0, included)', () => {
    const acc = new IoUAccumulator(CLASSES, ['m']);
    acc.addImage({ classes: ['e'], gt: [new Uint8Array(3)], pred: { m: [Uint8Array.of(1, 1, 0)] } });
    acc.addImage({ classes: ['a'], gt: [Uint8Array.of(1, 1, 1)], pred: { m: [Uint8Array.of(1, 1, 1)] } });
    const r = acc.result('m', SPLIT);
    expect(r.per_class.e).toMatchObject({ intersection: 0, union: 2, iou: 0, status: 'evaluated' });
    expect([r.miou_seen, r.miou_unseen, r.harmonic_mean]).toEqual([1, 0, 0]);
  });

  it('threshold: > 0.5 is inside, exactly 0.5 is not; 0/255 Uint8 masks work', () => {
    expect(maskCounts(Float32Array.of(0.5, 0.5000001, 1, 0), Float32Array.of(1, 1, 0.5, 0))).toEqual({ intersection: 1, union: 3 });
    expect(maskCounts(Uint8Array.of(255, 0, 255), Uint8Array.of(1, 1, 0))).toEqual({ intersection: 1, union: 3 });
  });

  it('harmonic mean and mean rules', () => {
    expect(harmonicMean(null, 0.5)).toBeNull();
    expect(harmonicMean(0.5, null)).toBeNull();
    expect(harmonicMean(0, 0)).toBe(0);
    expect(harmonicMean(0, 0.5)).toBe(0);
    expect(harmonicMean(0.4, 0.6)).toBeCloseTo(0.48, 15);
    expect(meanIoU({ a: { iou: null }, b: { iou: 0.25 }, c: { iou: 0.75 } }, ['a', 'b', 'c', 'z'])).toEqual({ mean: 0.5, used: ['b', 'c'] });
    expect(meanIoU({ a: { iou: null } }, ['a'])).toEqual({ mean: null, used: [] });
  });

  it('rejects bad images with a clear error and leaves the sums untouched', () => {
    const acc = new IoUAccumulator(CLASSES, ['m', 'n']);
    const one = Uint8Array.of(1, 0);
    expect(() => acc.addImage({ classes: ['a', 'a'], gt: [one, one], pred: { m: [one, one], n: [one, one] } })).toThrow(/twice/);
    expect(() => acc.addImage({ classes: ['zebra'], gt: [one], pred: { m: [one], n: [one] } })).toThrow(InputError);
    expect(() => acc.addImage({ classes: ['a'], gt: [one], pred: { m: [one] } })).toThrow(/method 'n'/);
    expect(() => acc.addImage({ classes: ['a'], gt: [one], pred: { m: [one], n: [Uint8Array.of(1)] } })).toThrow(ShapeError);
    expect(() => acc.addImage({ classes: ['a'], gt: [], pred: { m: [one], n: [one] } })).toThrow(ShapeError);
    expect(acc.imageCount).toBe(0);
    expect(acc.result('m', SPLIT).per_class.a).toMatchObject({ images: [], intersection: 0, union: 0 });
    expect(() => acc.result('m', { name: 'bad', seen: ['q'], unseen: [] })).toThrow(/'q'/);
    expect(() => acc.result('x', SPLIT)).toThrow(/unknown method/);
    expect(() => new IoUAccumulator(['a', 'a'], ['m'])).toThrow(InputError);
  });
});

describe('Protocol-I vocabularies', () => {
  it('VOC: 20 classes, three official splits that each permute them, unseen as the official CSVs', () => {
    expect(new Set(VOC_CLASSES).size).toBe(20);
    const unseen: Record<number, string[]> = {
      1: ['tvmonitor', 'car', 'dog', 'sofa', 'train'],
      2: ['horse', 'motorbike', 'person', 'pottedplant', 'sheep'],
      3: ['bus', 'cat', 'chair', 'cow', 'diningtable'],
    };
    for (const k of [1, 2, 3] as const) {
      expect([...VOC_SPLIT_ROWS[k]].sort()).toEqual([...VOC_CLASSES].sort());
      const s = vocSplit(k);
      expect(s.unseen).toEqual(unseen[k]);
      expect(s.seen.length).toBe(15);
      expect(s.seen.some((c) => s.unseen.includes(c))).toBe(false);
    }
    // Together the three unseen sets cover 15 distinct classes.
    expect(new Set([1, 2, 3].flatMap((k) => unseen[k])).size).toBe(15);
    expect(() => vocSplit(4)).toThrow(/1, 2 and 3/);
  });

  it('COCO: 80 classes, 65 seen / 15 unseen, disjoint and covering', () => {
    expect(new Set(COCO_CLASSES).size).toBe(80);
    expect(COCO_CLASSES.slice(0, 3)).toEqual(['person', 'bicycle', 'car']);
    expect(COCO_CLASSES[79]).toBe('toothbrush');
    const s = cocoSplit65_15();
    expect([s.seen.length, s.unseen.length]).toEqual([65, 15]);
    expect(s.unseen).toEqual([...COCO_UNSEEN_65_15]);
    expect([...s.seen, ...s.unseen].sort()).toEqual([...COCO_CLASSES].sort());
  });
});

describe('eval parity handler', () => {
  it('reproduces every expected number of the eval_miou fixture, and catches a wrong one', async () => {
    const dir = goldenDir('eval_miou');
    if (!dir) return;
    const manifest = await readManifest(dir);
    const rows = (await handler.run(dir, manifest, () => {})).map(evaluate);
    const bad = rows.filter((r) => !r.pass).map((r) => r.name);
    expect(bad).toEqual([]);
    expect(rows.some((r) => r.metric === 'abs')).toBe(true);
    expect(rows.some((r) => r.name.startsWith('vocab voc split 3'))).toBe(true);

    // Tampered copies: an IoU off by 2e-9, a null turned into a number, a status, a
    // swapped official split row; each fails exactly its own check.
    const t = JSON.parse(JSON.stringify(manifest)) as {
      expected: Record<string, { per_class: Record<string, { iou: number | null; status: string }> }>;
      voc: { official_splits: Record<string, { rows: [string, number][] }> };
    };
    const g = t.expected.grounding.per_class;
    const evaluated = Object.keys(g).find((c) => g[c].iou !== null) as string;
    const nulled = Object.keys(g).find((c) => g[c].iou === null) as string;
    const statusOf = Object.keys(g).find((c) => c !== evaluated && g[c].iou !== null) as string;
    g[evaluated].iou = (g[evaluated].iou as number) + 2e-9;
    g[nulled].iou = 0;
    g[statusOf].status = 'evaluated (typo)';
    const rows2 = t.voc.official_splits['2'].rows;
    [rows2[0], rows2[1]] = [rows2[1], rows2[0]];
    const bad2 = (await handler.run(dir, t as unknown as Record<string, unknown>, () => {})).map(evaluate).filter((r) => !r.pass).map((r) => r.name);
    expect(bad2.sort()).toEqual([
      `grounding.${evaluated}.iou`,
      `grounding.${nulled}.iou`,
      `grounding.${statusOf}.status`,
      'vocab voc split 2 rows',
    ].sort());
  });
});
