// Non-maximum suppression as torchvision 0.14.1 computes it on the CPU (nms_kernel.cpp,
// ops/boxes.py batched_nms), on the host: the production path. Inference only.
//
// Host or GPU: the detector's NMS runs on the host. Measured with the `nms` rows of
// src/bench/kernels/nms.ts (wall clock, end to end; lavapipe on 2 busy cores, where the
// host loop also runs several times slower than on an idle desktop):
//   RPN, 5 levels x 1000 boxes, IoU 0.7:        host  40 ms, GPU 164 ms
//   box head, 4000 candidates in 90 classes:     host 3.6 ms, GPU  45 ms
//   one group of 4000 boxes (host worst case):   host 106 ms, GPU  77 ms
// At the detector's shapes the boxes are split by level or class, which divides the
// host's pairwise work by the number of groups while the GPU mask stays N x N/32, and the
// host skips disjoint pairs for a comparison each. Only one large group favours the GPU.
// Beyond speed, NMS is a sequential greedy walk whose inputs (top-k, thresholds) and
// output (a variable-length keep list that fixes the next stage's shapes) are on the host
// anyway; the GPU path adds an upload and a readback per call, cannot give torch's
// correctly rounded division (WGSL allows 2.5 ulp), and its bitmask for the box head's
// up to 90 000 raw candidates would be far past the binding limit. The GPU contender
// (nmsGpu below) stays to be re-measured on real GPUs; sorting by (group, score) to make
// its mask block-diagonal is its obvious next step.
//
// Semantics (the fixtures' "batched_nms" case):
// - nms: order by decreasing score with a *stable* sort (equal scores keep index order);
//   walk it, keep a box unless suppressed, and suppress every later box whose float32 IoU
//   is > threshold (strict; the float32 IoU against the float64 threshold). IoU =
//   inter / ((area_i + area_j) - inter) with area = (x2-x1)*(y2-y1) (no +1), each op
//   rounded to float32. Two zero-area boxes give 0/0 = NaN, which suppresses nothing.
// - batched_nms: with boxes.numel() <= 4000 torchvision's CPU path offsets each group's
//   boxes by idx * (max coordinate + 1) in float32 and makes one nms call ("coordinate
//   trick"; the rounding of the offset boxes can move IoUs by ~1e-4 relative, reproduced
//   here); above 4000 it runs nms per group and sorts all kept indices by decreasing score.
//   torch sorts that last list non-stably; here exact score ties across groups keep index
//   order (torch's order for them is unspecified).
import { InputError, LimitError, ShapeError } from '../gpu/errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { f32 } from '../gpu/params.js';
import { Tensor } from '../tensor/tensor.js';

const fr = Math.fround;

/** torchvision's CPU batched_nms switches to the per-group loop above this many coordinates. */
export const BATCHED_NMS_TRICK_MAX_COORDS = 4000;

function count(boxes: ArrayLike<number>, scores: ArrayLike<number>, what: string): number {
  if (boxes.length % 4 !== 0) throw new ShapeError(`${what}: boxes must be [N, 4] (x1, y1, x2, y2), got ${boxes.length} values`);
  const n = boxes.length / 4;
  if (scores.length !== n) throw new ShapeError(`${what}: ${scores.length} scores for ${n} boxes`);
  return n;
}

/** Indices 0..n-1 (or `subset`) ordered by decreasing score, stably; NaN scores first, as
 *  torch's descending sort puts them. */
export function sortByScoreDesc(scores: ArrayLike<number>, subset?: ArrayLike<number>): Int32Array {
  const idx = subset ? Int32Array.from(subset) : Int32Array.from({ length: scores.length }, (_, i) => i);
  const key = (i: number) => (Number.isNaN(scores[i]) ? Infinity : scores[i]);
  return idx.sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    return ka === kb ? a - b : kb > ka ? 1 : -1;
  });
}

/** nms over `boxes` [N,4] / `scores` [N]: kept indices in decreasing score order. */
export function nms(boxes: ArrayLike<number>, scores: ArrayLike<number>, iouThreshold: number): Int32Array {
  const n = count(boxes, scores, 'nms');
  if (n === 0) return new Int32Array(0);
  return nmsOrdered(boxes, sortByScoreDesc(scores), iouThreshold);
}

/** The greedy walk over `order` (indices into boxes). */
function nmsOrdered(boxes: ArrayLike<number>, order: Int32Array, thr: number): Int32Array {
  const m = order.length;
  // Sorted copies: the inner loop then streams through memory.
  const x1 = new Float32Array(m);
  const y1 = new Float32Array(m);
  const x2 = new Float32Array(m);
  const y2 = new Float32Array(m);
  const area = new Float32Array(m);
  for (let r = 0; r < m; r++) {
    const b = 4 * order[r];
    x1[r] = boxes[b];
    y1[r] = boxes[b + 1];
    x2[r] = boxes[b + 2];
    y2[r] = boxes[b + 3];
    area[r] = fr(x2[r] - x1[r]) * fr(y2[r] - y1[r]);
  }
  const suppressed = new Uint8Array(m);
  const keep: number[] = [];
  // Disjoint boxes have IoU 0 (or 0/0 = NaN), which suppresses nothing unless the
  // threshold is negative; the sign of a float32 difference is that of the exact one, so
  // the test needs no rounding and skips most pairs cheaply.
  const skipDisjoint = thr >= 0;
  for (let r = 0; r < m; r++) {
    if (suppressed[r]) continue;
    keep.push(order[r]);
    const ix1 = x1[r];
    const iy1 = y1[r];
    const ix2 = x2[r];
    const iy2 = y2[r];
    const ia = area[r];
    for (let s = r + 1; s < m; s++) {
      if (suppressed[s]) continue;
      const dwExact = Math.min(ix2, x2[s]) - Math.max(ix1, x1[s]);
      const dhExact = Math.min(iy2, y2[s]) - Math.max(iy1, y1[s]);
      if (skipDisjoint && !(dwExact > 0 && dhExact > 0)) continue;
      // std::max(0, d) returns 0 for a NaN d, as (d > 0) ? d : 0 does.
      const dw = fr(dwExact);
      const dh = fr(dhExact);
      const inter = fr((dw > 0 ? dw : 0) * (dh > 0 ? dh : 0));
      const ovr = fr(inter / fr(fr(ia + area[s]) - inter));
      if (ovr > thr) suppressed[s] = 1;
    }
  }
  return Int32Array.from(keep);
}

/**
 * torchvision.ops.batched_nms(boxes, scores, idxs, iou_threshold) on the CPU: boxes of
 * different `idxs` (class or level) never suppress each other. Returns kept indices in
 * decreasing score order. The path follows torchvision's (see the file header).
 */
export function batchedNms(boxes: ArrayLike<number>, scores: ArrayLike<number>, idxs: ArrayLike<number>, iouThreshold: number): Int32Array {
  const n = count(boxes, scores, 'batchedNms');
  if (idxs.length !== n) throw new ShapeError(`batchedNms: ${idxs.length} group indices for ${n} boxes`);
  if (n === 0) return new Int32Array(0);
  if (4 * n <= BATCHED_NMS_TRICK_MAX_COORDS) {
    let max = -Infinity;
    for (let i = 0; i < 4 * n; i++) if (boxes[i] > max) max = boxes[i];
    const step = fr(max + 1);
    const shifted = new Float32Array(4 * n);
    for (let i = 0; i < n; i++) {
      const off = fr(fr(idxs[i]) * step);
      for (let j = 0; j < 4; j++) shifted[4 * i + j] = boxes[4 * i + j] + off;
    }
    return nms(shifted, scores, iouThreshold);
  }
  const groups = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const g = groups.get(idxs[i]);
    if (g) g.push(i);
    else groups.set(idxs[i], [i]);
  }
  const kept: number[] = [];
  for (const members of groups.values()) {
    for (const k of nmsOrdered(boxes, sortByScoreDesc(scores, members), iouThreshold)) kept.push(k);
  }
  kept.sort((a, b) => a - b);
  return sortByScoreDesc(scores, kept);
}

// ---------------------------------------------------------------------------------------
// GPU contender (benchmarked against the host path; not used by the detector).

const WG = 256;
/** Workgroup words of the sweep's removed-bitmap (16 KiB minus the shared flag word). */
const MAX_WORDS = 4064;

/** The largest float32 t <= thr: for a float32 IoU, `iou > thr` (float64) iff `iou > t`. */
export function thresholdBelow(thr: number): number {
  const t = fr(thr);
  if (t <= thr) return t;
  const b = new Float32Array([t]);
  const u = new Int32Array(b.buffer);
  u[0] += t > 0 ? -1 : 1;
  return b[0];
}

export interface NmsGpuOptions {
  /** Group index per sorted box (class or level): boxes of different groups never
   *  suppress each other (default: one group). */
  groups?: Tensor;
  /** @internal Tests: a binding limit below the adapter's, to force runs of rows. */
  maxBindingBytes?: number;
}

/**
 * Records the GPU NMS over boxes already in decreasing-score order (`sorted` [N, 4] f32):
 * an IoU bitmask [rows, ceil(N/32)] per run of rows, swept by one workgroup. Returns the
 * removed-bitmap [ceil(N/32)] u32: bit r of word r>>5 is 0 iff sorted box r is kept.
 */
export function nmsGpuRecord(sorted: Tensor, iouThreshold: number, opts: NmsGpuOptions = {}): Tensor {
  const rt = sorted.rt;
  if (sorted.dtype !== 'f32' || sorted.shape.length !== 2 || sorted.shape[1] !== 4) throw new ShapeError(`nmsGpu: boxes must be [N, 4] f32, got ${sorted.toString()}`);
  const n = sorted.shape[0];
  const words = Math.max(1, Math.ceil(n / 32));
  if (words > MAX_WORDS) throw new LimitError(`nmsGpu: ${n} boxes need ${words} bitmap words, more than the sweep's ${MAX_WORDS} (workgroup storage); use the host nms`);
  if (opts.groups && (opts.groups.dtype !== 'u32' || opts.groups.size !== n)) throw new ShapeError(`nmsGpu: groups must be [${n}] u32, got ${opts.groups.toString()}`);
  // The kernel skips empty unions, which matches torch only for thresholds >= 0.
  if (!(iouThreshold >= 0)) throw new InputError(`nmsGpu: IoU threshold ${iouThreshold} must be >= 0; use the host nms`);
  const limit = opts.maxBindingBytes ?? rt.limits.maxStorageBufferBindingSize;
  const perRun = Math.floor(limit / (words * 4) / 32) * 32;
  if (perRun < 32) throw new LimitError(`nmsGpu: 32 bitmap rows of ${words * 4} bytes exceed the binding limit ${limit}; use the host nms`);
  const removed = Tensor.zeros(rt, [words], 'u32', 'nms_removed');
  const groups = opts.groups ?? Tensor.zeros(rt, [Math.max(1, n)], 'u32', 'nms_groups');
  const maxWords = Math.min(MAX_WORDS, Math.max(64, 2 ** Math.ceil(Math.log2(words))));
  for (let r0 = 0; r0 < n; r0 += perRun) {
    const rowsRun = Math.min(perRun, n - r0);
    const mask = Tensor.empty(rt, [rowsRun, words], 'u32', 'nms_mask');
    const params = [n, words, r0, rowsRun, f32(thresholdBelow(iouThreshold)), opts.groups ? 1 : 0];
    rt.dispatch(
      { family: 'nms', entry: 'nms_mask_forward', overrides: { WG } },
      { params, bindings: [sorted.binding, groups.binding, mask.binding], workgroups: Math.ceil((rowsRun * words) / WG), label: `nms_mask_forward[n=${n}]` },
    );
    rt.dispatch(
      { family: 'nms', entry: 'nms_sweep_forward', overrides: { WG, MAX_WORDS: maxWords } },
      { params, bindings: [mask.binding, removed.binding], workgroups: 1, label: `nms_sweep_forward[n=${n}]` },
    );
    mask.dispose();
  }
  if (!opts.groups) groups.dispose();
  return removed;
}

/** GPU contender of `batchedNms` (exact per-group IoUs, no coordinate trick): sorts on
 *  the host, uploads, runs nmsGpuRecord and reads the keep list back. */
export async function nmsGpu(
  rt: Runtime, boxes: ArrayLike<number>, scores: ArrayLike<number>, iouThreshold: number,
  opts: { idxs?: ArrayLike<number>; maxBindingBytes?: number } = {},
): Promise<Int32Array> {
  const n = count(boxes, scores, 'nmsGpu');
  if (n === 0) return new Int32Array(0);
  const order = sortByScoreDesc(scores);
  const sorted = new Float32Array(4 * n);
  order.forEach((i, r) => {
    for (let j = 0; j < 4; j++) sorted[4 * r + j] = boxes[4 * i + j];
  });
  const b = Tensor.from(rt, sorted, [n, 4], 'f32', 'nms_boxes');
  const g = opts.idxs ? Tensor.from(rt, Uint32Array.from(order, (i) => opts.idxs?.[i] ?? 0), [n], 'u32', 'nms_groups') : undefined;
  const removed = nmsGpuRecord(b, iouThreshold, { groups: g, maxBindingBytes: opts.maxBindingBytes });
  const bits = new Uint32Array((await removed.toIntArray()).buffer);
  for (const t of [b, g, removed]) t?.dispose();
  const keep: number[] = [];
  for (let r = 0; r < n; r++) if (((bits[r >>> 5] >>> (r & 31)) & 1) === 0) keep.push(order[r]);
  return Int32Array.from(keep);
}
