// Float64 reference for (batched) non-maximum suppression, from the definition: visit the
// boxes by decreasing score (equal scores by index), keep a box unless an earlier kept box
// of its group overlaps it with IoU > threshold, IoU = |A n B| / |A u B| with areas
// (x2 - x1)(y2 - y1) and an empty union giving no overlap. Also the smallest distance of
// any decisive IoU from the threshold, so tests can assert their inputs are unambiguous
// for a float32 implementation.

export interface NmsRefResult {
  keep: number[];
  /** min over compared (kept, candidate) pairs of |IoU - threshold|. */
  margin: number;
}

export function iouRef(a: ArrayLike<number>, i: number, j: number): number {
  const w = Math.max(0, Math.min(a[4 * i + 2], a[4 * j + 2]) - Math.max(a[4 * i], a[4 * j]));
  const h = Math.max(0, Math.min(a[4 * i + 3], a[4 * j + 3]) - Math.max(a[4 * i + 1], a[4 * j + 1]));
  const inter = w * h;
  const area = (k: number) => (a[4 * k + 2] - a[4 * k]) * (a[4 * k + 3] - a[4 * k + 1]);
  const union = area(i) + area(j) - inter;
  return union > 0 ? inter / union : 0;
}

/** boxes [N, 4], scores [N], groups [N] (or none) -> kept indices by decreasing score. */
export function batchedNmsRef(boxes: ArrayLike<number>, scores: ArrayLike<number>, groups: ArrayLike<number> | null, thr: number): NmsRefResult {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (scores[b] - scores[a]) || a - b);
  const keep: number[] = [];
  let margin = Infinity;
  for (const i of order) {
    let suppressed = false;
    for (const k of keep) {
      if (groups && groups[k] !== groups[i]) continue;
      const iou = iouRef(boxes, k, i);
      margin = Math.min(margin, Math.abs(iou - thr));
      if (iou > thr) {
        suppressed = true;
        break;
      }
    }
    if (!suppressed) keep.push(i);
  }
  return { keep, margin };
}
