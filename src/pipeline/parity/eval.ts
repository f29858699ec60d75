// Parity for the Protocol-I evaluation fixtures (component `eval`, e.g. eval_miou/): the
// stored gt and per-method masks of every image are accumulated with IoUAccumulator and
// every number under `expected` is checked: IoU, mIoU seen / unseen and harmonic mean
// within the manifest's absolute tolerance; intersection / union counts, image lists,
// statuses, averaged class lists and which values are null exactly (metric 'exact').
// It also checks that the built-in vocabulary (eval/vocab.ts) equals the manifest's `voc`
// block: the VOC classes and the official splits' rows, seen and unseen classes.
import { join } from 'node:path';
import { InputError, ShapeError } from '../../gpu/errors.js';
import { SafetensorsFile } from '../../io/safetensors.js';
import { IOU_STATUSES, IoUAccumulator, type ClassResult, type MethodResult } from '../eval/miou.js';
import { VOC_CLASSES, VOC_SPLIT_ROWS, vocSplit } from '../eval/vocab.js';
import type { ParityCheck, ParityHandler } from './types.js';

interface EvalImage {
  index: number;
  classes: string[];
  io: Record<string, string>;
  [perClass: `per_class_${string}`]: Record<string, { intersection: number; union: number }> | undefined;
}

interface EvalManifest {
  tolerance?: { max?: number };
  class_list: string[];
  split: { official_split?: number; seen: string[]; unseen: string[] };
  images: EvalImage[];
  expected: Record<string, MethodResult>;
  voc?: {
    classes: string[];
    official_splits: Record<string, { rows: [string, number][]; seen: string[]; unseen: string[] }>;
  };
}

function field<T>(manifest: Record<string, unknown>, key: string, dir: string): T {
  if (manifest[key] === undefined) throw new InputError(`${join(dir, 'manifest.json')}: missing '${key}' (an eval fixture needs class_list, split, images, expected)`);
  return manifest[key] as T;
}

/** Checks collected for one fixture; `tol` is the absolute tolerance of ratios and means. */
class Checks {
  readonly list: ParityCheck[] = [];
  constructor(private readonly tol: number) {}

  exact(name: string, actual: ArrayLike<number>, expected: ArrayLike<number>): void {
    this.list.push({ name, actual: Array.from(actual), expected: Array.from(expected), metric: 'exact', tol: 0 });
  }

  /** A check that fails: something the manifest or the computation lacks. */
  missing(name: string, what: string): void {
    this.list.push({ name: `${name} (${what})`, actual: [NaN], expected: [0], metric: 'exact', tol: 0 });
  }

  /** A float64 value that may be null: null-ness exactly, the value within tol. */
  nullable(name: string, actual: number | null, expected: number | null | undefined): void {
    if (expected === undefined) this.missing(name, 'not in the manifest');
    else if (expected === null) this.exact(`${name} is null`, [actual === null ? 1 : 0], [1]);
    else this.list.push({ name, actual: [actual ?? NaN], expected: [expected], metric: 'abs', tol: this.tol });
  }

  /** Two name lists equal in order: positions of `expected`'s names in `actual`. */
  names(name: string, actual: readonly string[], expected: readonly string[]): void {
    this.exact(name, expected.map((c) => actual.indexOf(c)), expected.map((_, i) => i));
    if (actual.length !== expected.length) this.exact(`${name} (length)`, [actual.length], [expected.length]);
  }
}

/** The built-in VOC vocabulary and official splits against the manifest's `voc` block. */
function checkVocab(c: Checks, m: EvalManifest, log: (msg: string) => void): void {
  if (!m.voc) {
    log('eval: manifest has no voc block; built-in vocabulary not compared');
    return;
  }
  c.names('vocab voc.classes', VOC_CLASSES, m.voc.classes);
  for (const [k, s] of Object.entries(m.voc.official_splits)) {
    const split = vocSplit(Number(k));
    c.names(`vocab voc split ${k} rows`, VOC_SPLIT_ROWS[Number(k) as 1 | 2 | 3], s.rows.map((r) => r[0]));
    // The CSV's second column numbers split 1's row order.
    c.exact(`vocab voc split ${k} second column`, s.rows.map((r) => VOC_SPLIT_ROWS[1].indexOf(r[0])), s.rows.map((r) => r[1]));
    c.names(`vocab voc split ${k} seen`, split.seen, s.seen);
    c.names(`vocab voc split ${k} unseen`, split.unseen, s.unseen);
  }
  if (m.split.official_split !== undefined) {
    const split = vocSplit(m.split.official_split);
    c.names('vocab split used (seen)', split.seen, m.split.seen);
    c.names('vocab split used (unseen)', split.unseen, m.split.unseen);
  }
}

function checkClass(c: Checks, name: string, a: ClassResult | undefined, e: ClassResult): void {
  if (!a) return c.missing(name, 'not in class_list');
  c.exact(`${name}.counts`, [a.intersection, a.union], [e.intersection, e.union]);
  c.exact(`${name}.images`, a.images, e.images ?? [NaN]);
  c.exact(`${name}.status`, [IOU_STATUSES.indexOf(a.status)], [IOU_STATUSES.indexOf(e.status as never)]);
  c.nullable(`${name}.iou`, a.iou, e.iou);
}

export const handler: ParityHandler = {
  async run(dir, manifest, log) {
    const m: EvalManifest = {
      tolerance: manifest.tolerance as EvalManifest['tolerance'],
      class_list: field(manifest, 'class_list', dir),
      split: field(manifest, 'split', dir),
      images: field(manifest, 'images', dir),
      expected: field(manifest, 'expected', dir),
      voc: manifest.voc as EvalManifest['voc'],
    };
    const tol = Number(m.tolerance?.max ?? 1e-9);
    const methods = Object.keys(m.expected);
    const c = new Checks(tol);
    checkVocab(c, m, log);

    const acc = new IoUAccumulator(m.class_list, methods);
    const io = await SafetensorsFile.open(join(dir, 'io.safetensors'));
    try {
      for (const img of m.images) {
        const rows = async (what: string): Promise<Float32Array[]> => {
          const name = img.io[what];
          if (!name) throw new InputError(`${dir}: image ${img.index} has no io entry '${what}'`);
          const shape = io.info(name).shape;
          if (shape.length !== 3 || shape[0] !== img.classes.length) {
            throw new ShapeError(`${dir}: ${name} is [${shape}], expected [${img.classes.length}, H, W] (one row per class of image ${img.index})`);
          }
          const data = await io.readF32(name);
          const plane = shape[1] * shape[2];
          return img.classes.map((_, j) => data.subarray(j * plane, (j + 1) * plane));
        };
        const pred: Record<string, Float32Array[]> = {};
        for (const meth of methods) pred[meth] = await rows(meth);
        const counts = acc.addImage({ index: img.index, classes: img.classes, gt: await rows('gt'), pred });
        for (const meth of methods) {
          const exp = img[`per_class_${meth}`];
          if (!exp) continue;
          for (const cls of img.classes) {
            const e = exp[cls];
            const a = counts[meth][cls];
            const name = `image.${img.index}.${meth}.${cls}.counts`;
            if (e) c.exact(name, [a.intersection, a.union], [e.intersection, e.union]);
            else c.missing(name, 'not in the manifest');
          }
        }
      }
    } finally {
      await io.close();
    }
    log(`eval: ${acc.imageCount} images, methods ${methods.join(', ')}, ${m.class_list.length} classes`);

    const split = { name: 'manifest split', seen: m.split.seen, unseen: m.split.unseen };
    for (const meth of methods) {
      const a = acc.result(meth, split);
      const e = m.expected[meth];
      const classes = new Set([...m.class_list, ...Object.keys(e.per_class)]);
      for (const cls of classes) {
        const ec = e.per_class[cls];
        if (ec) checkClass(c, `${meth}.${cls}`, a.per_class[cls], ec);
        else c.missing(`${meth}.${cls}`, 'not in expected.per_class');
      }
      c.nullable(`${meth}.miou_seen`, a.miou_seen, e.miou_seen);
      c.nullable(`${meth}.miou_unseen`, a.miou_unseen, e.miou_unseen);
      c.nullable(`${meth}.harmonic_mean`, a.harmonic_mean, e.harmonic_mean);
      c.names(`${meth}.seen_classes_averaged`, a.seen_classes_averaged, e.seen_classes_averaged);
      c.names(`${meth}.unseen_classes_averaged`, a.unseen_classes_averaged, e.unseen_classes_averaged);
    }
    return c.list;
  },
};
