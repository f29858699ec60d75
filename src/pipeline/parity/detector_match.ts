// Comparison rules of the detector fixtures (golden/detector/README.md sections 6 and 8):
// summaries of the largest tensors (head, tail, sub normalised by the reference's max |x|;
// sums within tol * Σ|x| and tol * l2), and the greedy matching of proposal and
// detection lists, where rows near a discrete decision (the fragile lists) may be
// present on one side only.
import type { ParityCheck } from './types.js';

/** summaries.tensors[name] of a detector manifest. */
export interface SummarySpec {
  numel: number;
  sub_stride: number;
  parts: { head: string; tail: string; sub: string; stats: string };
}

/** Reference parts of one summarised tensor. */
export interface SummaryRef {
  head: Float32Array;
  tail: Float32Array;
  sub: Float32Array;
  /** [Σx, Σ|x|, sqrt(Σx²), max|x|] in float64. */
  stats: Float64Array;
}

/** The four checks of a summarised tensor, from the implementation's full values. */
export function summaryChecks(spec: SummarySpec, ref: SummaryRef, x: Float32Array, tol: number): ParityCheck[] {
  const n = x.length;
  const head = x.subarray(0, Math.min(ref.head.length, n));
  const tail = x.subarray(Math.max(0, n - ref.tail.length));
  const sub: number[] = [];
  for (let i = 0; i < n; i += spec.sub_stride) sub.push(x[i]);
  let sum = 0;
  let abs = 0;
  let sq = 0;
  let mx = 0;
  for (let i = 0; i < n; i++) {
    sum += x[i];
    abs += Math.abs(x[i]);
    sq += x[i] * x[i];
    mx = Math.max(mx, Math.abs(x[i]));
  }
  const [rs, ra, rl, rm] = ref.stats;
  // Sums within tol * Σ|x|, the l2 norm within tol * l2 and max |x| within tol * max |x|:
  // each value divided by its scale, compared with abs tol.
  const scales = [ra, ra, rl, rm].map((v) => (v > 0 ? v : 1));
  const absTol = tol * (rm > 0 ? rm : 1);
  return [
    { name: spec.parts.head, actual: head, expected: ref.head, metric: 'abs', tol: absTol },
    { name: spec.parts.tail, actual: tail, expected: ref.tail, metric: 'abs', tol: absTol },
    { name: spec.parts.sub, actual: sub, expected: ref.sub, metric: 'abs', tol: absTol },
    {
      name: spec.parts.stats,
      actual: [sum, abs, Math.sqrt(sq), mx].map((v, i) => v / scales[i]),
      expected: [rs, ra, rl, rm].map((v, i) => v / scales[i]),
      metric: 'abs',
      tol,
    },
  ];
}

/** A list of rows: boxes [R, 4], scores [R], labels [R] (detections only). */
export interface RowList {
  boxes: ArrayLike<number>;
  scores: ArrayLike<number>;
  labels?: ArrayLike<number>;
}

export interface MatchTolerance {
  score_tol: number;
  box_tol_px: number;
}

export interface MatchResult {
  /** Per stored row: the implementation row it matched, or -1. */
  refToImpl: Int32Array;
  /** Per stored row left unmatched: the fragile row covering it, or -1. */
  refFragile: Int32Array;
  /** Implementation rows no stored row matched, with the fragile row covering each (-1: none). */
  implLeft: { row: number; fragile: number }[];
}

const rows = (l: RowList) => l.scores.length;

function boxDiff(a: ArrayLike<number>, i: number, b: ArrayLike<number>, j: number): number {
  let d = 0;
  for (let k = 0; k < 4; k++) d = Math.max(d, Math.abs(a[i * 4 + k] - b[j * 4 + k]));
  return d;
}

/** The row of `pool` (among `free`, if given) closest in box to row i of `from`, with
 *  |Δscore| <= score_tol and the same label; -1 when none is within box_tol_px. */
function closest(from: RowList, i: number, pool: RowList, tol: MatchTolerance, used?: Uint8Array): number {
  let best = -1;
  let bestD = Infinity;
  for (let j = 0; j < rows(pool); j++) {
    if (used?.[j]) continue;
    if (!(Math.abs(from.scores[i] - pool.scores[j]) <= tol.score_tol)) continue;
    if (from.labels && pool.labels && from.labels[i] !== pool.labels[j]) continue;
    const d = boxDiff(from.boxes, i, pool.boxes, j);
    if (d < bestD) {
      bestD = d;
      best = j;
    }
  }
  return best >= 0 && bestD <= tol.box_tol_px ? best : -1;
}

/** README section 8: stored rows in decreasing score take the closest unused
 *  implementation row; every row left on either side must match a fragile row. */
export function matchRows(ref: RowList, impl: RowList, fragile: RowList, tol: MatchTolerance): MatchResult {
  const order = Array.from({ length: rows(ref) }, (_, i) => i).sort((a, b) => ref.scores[b] - ref.scores[a] || a - b);
  const used = new Uint8Array(rows(impl));
  const refToImpl = new Int32Array(rows(ref)).fill(-1);
  for (const i of order) {
    const j = closest(ref, i, impl, tol, used);
    if (j >= 0) {
      used[j] = 1;
      refToImpl[i] = j;
    }
  }
  const refFragile = Int32Array.from(refToImpl, (j, i) => (j >= 0 ? -1 : closest(ref, i, fragile, tol)));
  const implLeft: { row: number; fragile: number }[] = [];
  for (let j = 0; j < rows(impl); j++) if (!used[j]) implLeft.push({ row: j, fragile: closest(impl, j, fragile, tol) });
  return { refToImpl, refFragile, implLeft };
}

/** Checks of one matched list: boxes (abs, box_tol_px) and scores (abs, score_tol) of every
 *  stored row against its match (or the fragile row covering it; NaN when uncovered),
 *  labels exactly, and the count of implementation rows nothing covers (must be 0). */
export function matchChecks(
  names: { boxes: string; scores: string; labels?: string }, ref: RowList, impl: RowList, fragile: RowList, tol: MatchTolerance,
): { checks: ParityCheck[]; summary: string } {
  const m = matchRows(ref, impl, fragile, tol);
  const R = rows(ref);
  const boxes = new Float64Array(R * 4).fill(NaN);
  const scores = new Float64Array(R).fill(NaN);
  const labels = new Float64Array(R).fill(NaN);
  let covered = 0;
  for (let i = 0; i < R; i++) {
    const [src, j] = m.refToImpl[i] >= 0 ? [impl, m.refToImpl[i]] : [fragile, m.refFragile[i]];
    if (j < 0) continue;
    if (src === fragile) covered++;
    for (let k = 0; k < 4; k++) boxes[i * 4 + k] = src.boxes[j * 4 + k];
    scores[i] = src.scores[j];
    if (src.labels) labels[i] = src.labels[j];
  }
  const uncoveredImpl = m.implLeft.filter((l) => l.fragile < 0).length;
  const checks: ParityCheck[] = [
    { name: names.boxes, actual: boxes, expected: ref.boxes, metric: 'abs', tol: tol.box_tol_px },
    { name: names.scores, actual: scores, expected: ref.scores, metric: 'abs', tol: tol.score_tol },
    { name: `${names.boxes} (implementation rows matching no stored or fragile row)`, actual: [uncoveredImpl], expected: [0], metric: 'exact', tol: 0 },
  ];
  if (names.labels && ref.labels) checks.push({ name: names.labels, actual: labels, expected: ref.labels, metric: 'exact', tol: 0 });
  const unmatched = m.refToImpl.filter((j) => j < 0).length;
  const summary = `${R} stored / ${rows(impl)} computed rows: ${R - unmatched} matched, ${covered} stored and ${m.implLeft.length - uncoveredImpl} computed covered by the fragile list, `
    + `${unmatched - covered} stored and ${uncoveredImpl} computed uncovered`;
  return { checks, summary };
}
