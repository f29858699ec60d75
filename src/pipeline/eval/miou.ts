// Protocol-I evaluation (category-wise IoU on generated images, seen / unseen classes):
// an accumulator of per-class intersection and union pixel counts over images, for any
// number of methods side by side (the grounding module's masks, DAAM's masks).
//
// Definitions (this project's, written out in the eval_miou fixture's manifest; the
// official repository has no evaluation code):
//  - per image k and class c its prompt names: I_kc = #(P AND G), U_kc = #(P OR G), a
//    pixel being inside a mask when its value is > 0.5 (Uint8 0/1 or 0/255 masks, or
//    probabilities / 0.0-1.0 floats);
//  - IoU_c = sum_k I_kc / sum_k U_kc over the images whose prompt names c (other images are
//    ignored, whatever they contain); null with status 'not named in any prompt' if no
//    prompt names c, null with status 'undefined: union 0 over its images' if the summed
//    union is 0;
//  - mIoU seen / unseen: arithmetic mean of the non-null IoU_c over the split's classes,
//    summed in the split's order; null if none;
//  - harmonic mean H = 2 s u / (s + u); 0 if both are 0; null if either is null.
// Counts are exact integers; ratios and means are float64.
import { InputError, ShapeError } from '../../gpu/errors.js';
import type { ClassSplit } from './vocab.js';

/** A binary mask, one value per pixel; > 0.5 is inside. */
export type Mask = ArrayLike<number>;

export const IOU_STATUSES = ['evaluated', 'not named in any prompt', 'undefined: union 0 over its images'] as const;
export type IoUStatus = (typeof IOU_STATUSES)[number];

export interface Counts {
  intersection: number;
  union: number;
}

export interface ClassResult extends Counts {
  /** Indices of the images whose prompt names the class, in the order added. */
  images: number[];
  iou: number | null;
  status: IoUStatus;
}

export interface MethodResult {
  /** Every class of the class list, in its order. */
  per_class: Record<string, ClassResult>;
  miou_seen: number | null;
  miou_unseen: number | null;
  harmonic_mean: number | null;
  seen_classes_averaged: string[];
  unseen_classes_averaged: string[];
}

export interface ImageMasks {
  /** Image index reported in `images` (default: the number of images added before). */
  index?: number;
  /** The classes the prompt names, each at most once. */
  classes: readonly string[];
  /** Ground-truth mask per class, in `classes` order. */
  gt: readonly Mask[];
  /** Per method: predicted mask per class, in `classes` order. */
  pred: Readonly<Record<string, readonly Mask[]>>;
}

/** Intersection and union pixel counts of one predicted mask against its ground truth. */
export function maskCounts(pred: Mask, gt: Mask): Counts {
  if (pred.length !== gt.length) {
    throw new ShapeError(`IoU: prediction has ${pred.length} pixels, ground truth ${gt.length}; resize the prediction to the ground truth first`);
  }
  let intersection = 0;
  let union = 0;
  for (let i = 0; i < gt.length; i++) {
    const p = pred[i] > 0.5;
    const g = gt[i] > 0.5;
    if (p && g) intersection++;
    if (p || g) union++;
  }
  return { intersection, union };
}

/** Mean of the non-null IoUs of `classes`, summed in their order; null if none. */
export function meanIoU(perClass: Readonly<Record<string, { iou: number | null }>>, classes: readonly string[]): { mean: number | null; used: string[] } {
  const used = classes.filter((c) => perClass[c]?.iou != null);
  if (used.length === 0) return { mean: null, used };
  let sum = 0;
  for (const c of used) sum += perClass[c].iou as number;
  return { mean: sum / used.length, used };
}

/** H = 2 s u / (s + u); 0 when both are 0; null when either is null. */
export function harmonicMean(s: number | null, u: number | null): number | null {
  if (s === null || u === null) return null;
  if (s + u === 0) return 0;
  return (2 * s * u) / (s + u);
}

interface Acc extends Counts {
  images: number[];
}

export class IoUAccumulator {
  private readonly known: Set<string>;
  /** method -> class -> summed counts. */
  private readonly acc = new Map<string, Map<string, Acc>>();
  private added = 0;

  constructor(readonly classList: readonly string[], readonly methods: readonly string[]) {
    this.known = new Set(classList);
    if (this.known.size !== classList.length) throw new InputError(`IoU: the class list names a class twice: ${classList.join(', ')}`);
    if (methods.length === 0 || new Set(methods).size !== methods.length) {
      throw new InputError(`IoU: methods must be distinct and at least one, got [${methods.join(', ')}]`);
    }
    for (const m of methods) this.acc.set(m, new Map(classList.map((c) => [c, { intersection: 0, union: 0, images: [] }])));
  }

  get imageCount(): number {
    return this.added;
  }

  private checkClasses(classes: readonly string[], where: string): void {
    const seen = new Set<string>();
    for (const c of classes) {
      if (!this.known.has(c)) throw new InputError(`${where}: class '${c}' is not in the class list (${this.classList.join(', ')})`);
      if (seen.has(c)) throw new InputError(`${where}: the prompt names '${c}' twice; each class may be named once per image`);
      seen.add(c);
    }
  }

  /** Adds one image; returns its per-method, per-class counts. */
  addImage(img: ImageMasks): Record<string, Record<string, Counts>> {
    const index = img.index ?? this.added;
    const where = `IoU image ${index}`;
    this.checkClasses(img.classes, where);
    if (img.gt.length !== img.classes.length) throw new ShapeError(`${where}: ${img.gt.length} ground-truth masks for ${img.classes.length} classes`);
    // Count everything first, so a bad mask leaves the sums untouched.
    const out: Record<string, Record<string, Counts>> = {};
    for (const m of this.methods) {
      const preds = img.pred[m];
      if (!preds) throw new InputError(`${where}: no predictions for method '${m}' (have: ${Object.keys(img.pred).join(', ')})`);
      if (preds.length !== img.classes.length) throw new ShapeError(`${where}: method '${m}' has ${preds.length} masks for ${img.classes.length} classes`);
      out[m] = Object.fromEntries(img.classes.map((c, j) => [c, maskCounts(preds[j], img.gt[j])]));
    }
    this.addCounts({ index, classes: img.classes, counts: out });
    return out;
  }

  /** Adds one image from its stored per-method, per-class counts (a resumed evaluation
   *  re-accumulates finished images this way); the same sums as addImage on its masks. */
  addCounts(img: { index?: number; classes: readonly string[]; counts: Readonly<Record<string, Readonly<Record<string, Counts>>>> }): void {
    const index = img.index ?? this.added;
    const where = `IoU image ${index}`;
    this.checkClasses(img.classes, where);
    for (const m of this.methods) {
      const per = img.counts[m];
      if (!per) throw new InputError(`${where}: no counts for method '${m}' (have: ${Object.keys(img.counts).join(', ')})`);
      for (const c of img.classes) {
        const k = per[c];
        const ok = k && Number.isSafeInteger(k.intersection) && Number.isSafeInteger(k.union) && k.intersection >= 0 && k.intersection <= k.union;
        if (!ok) throw new InputError(`${where}: method '${m}' class '${c}' counts ${JSON.stringify(k)} must be integers with 0 <= intersection <= union`);
      }
    }
    for (const m of this.methods) {
      for (const c of img.classes) {
        const a = this.acc.get(m)?.get(c) as Acc;
        a.intersection += img.counts[m][c].intersection;
        a.union += img.counts[m][c].union;
        a.images.push(index);
      }
    }
    this.added++;
  }

  /** Per-class IoU and the split's means for one method. */
  result(method: string, split: ClassSplit): MethodResult {
    const acc = this.acc.get(method);
    if (!acc) throw new InputError(`IoU: unknown method '${method}' (have: ${this.methods.join(', ')})`);
    for (const c of [...split.seen, ...split.unseen]) {
      if (!this.known.has(c)) throw new InputError(`IoU: split '${split.name}' names '${c}', which is not in the class list`);
    }
    const perClass: Record<string, ClassResult> = {};
    for (const c of this.classList) {
      const a = acc.get(c) as Acc;
      const base = { images: [...a.images], intersection: a.intersection, union: a.union };
      if (a.images.length === 0) perClass[c] = { ...base, iou: null, status: 'not named in any prompt' };
      else if (a.union === 0) perClass[c] = { ...base, iou: null, status: 'undefined: union 0 over its images' };
      else perClass[c] = { ...base, iou: a.intersection / a.union, status: 'evaluated' };
    }
    const seen = meanIoU(perClass, split.seen);
    const unseen = meanIoU(perClass, split.unseen);
    return {
      per_class: perClass,
      miou_seen: seen.mean,
      miou_unseen: unseen.mean,
      harmonic_mean: harmonicMean(seen.mean, unseen.mean),
      seen_classes_averaged: seen.used,
      unseen_classes_averaged: unseen.used,
    };
  }

  /** result() for every method. */
  results(split: ClassSplit): Record<string, MethodResult> {
    return Object.fromEntries(this.methods.map((m) => [m, this.result(m, split)]));
  }
}
