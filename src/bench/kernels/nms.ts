// NMS and box-decoding benchmark rows: the detector's host path against the GPU contender,
// at Mask R-CNN's sizes. Every row is timed by wall clock (`host`), so host and GPU rows
// compare end to end: sort, upload, dispatches and the wait for the queue.
// Variants:
//   host       src/nn/nms.ts batchedNms: torchvision's CPU algorithm in JS (production path)
//   gpu-mask   src/nn/nms.ts nmsGpuRecord + shaders/nms.wgsl: host sort, IoU bitmask on the
//              GPU, one-workgroup sweep (the keep-bitmap readback, a few hundred bytes, is
//              not in the timed run)
//   decode     src/nn/boxes.ts decodeBoxes on the host (BoxCoder.decode_single)
// Shapes:
//   rpn 5x1000: the RPN's post-top-k candidates of one 800x1333 image, 1000 per FPN level,
//     batched by level, IoU 0.7 (rpn_pre_nms_top_n_test = 1000);
//   box head 4000/90: box-head candidates above box_score_thresh, 90 classes, IoU 0.5;
//   single 4000: one group, the host's worst case (every pair compared).
//   decode 267k: every anchor of an 800x1333 image (torchvision decodes all before top-k);
//   decode 1000x91: the box head's per-class boxes.
// Run: grounded-sd bench kernels --filter nms
// Peer: none (tfjs's NMS is a host-side loop as well). FLOPs: 0 (the work is comparisons);
// bytes: boxes and scores read once.
import { decodeBoxes } from '../../nn/boxes.js';
import { batchedNms, nmsGpuRecord, sortByScoreDesc } from '../../nn/nms.js';
import { decodeBoxesRef } from '../../ref/boxes.js';
import { batchedNmsRef } from '../../ref/nms.js';
import { Tensor } from '../../tensor/tensor.js';
import type { Runtime } from '../../gpu/runtime.js';
import type { BenchCase, BenchInstance } from './types.js';
import { randomArray, relL2 } from '../data.js';

interface NmsInput {
  boxes: Float32Array;
  scores: Float32Array;
  groups: Int32Array;
}

/** n boxes in an 800x1333 image, log-uniform sizes 16..512 px, aspect 1/2..2, distinct
 *  scores, groups uniform in [0, groups). */
function nmsInput(n: number, groups: number, seed: number): NmsInput {
  const u = randomArray(6 * n, seed, 0, 1);
  const boxes = new Float32Array(4 * n);
  const scores = new Float32Array(n);
  const g = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const size = 16 * 32 ** u[6 * i];
    const aspect = 2 ** (2 * u[6 * i + 1] - 1);
    const w = size * Math.sqrt(aspect);
    const h = size / Math.sqrt(aspect);
    const cx = 1333 * u[6 * i + 2];
    const cy = 800 * u[6 * i + 3];
    boxes.set([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 4 * i);
    scores[i] = (i + u[6 * i + 4]) / n;
    g[i] = Math.min(groups - 1, Math.floor(groups * u[6 * i + 5]));
  }
  return { boxes, scores, groups: g };
}

/** Share of the reference keep list the candidate gets wrong (0 when identical). */
function keepMismatch(keep: ArrayLike<number>, ref: number[]): number {
  if (keep.length !== ref.length) return 1;
  let bad = 0;
  for (let i = 0; i < ref.length; i++) if (keep[i] !== ref[i]) bad++;
  return bad / Math.max(ref.length, 1);
}

function nmsCases(label: string, n: number, groups: number, thr: number, seed: number): BenchCase[] {
  let cached: NmsInput | null = null;
  const data = () => (cached ??= nmsInput(n, groups, seed));
  const ref = () => batchedNmsRef(data().boxes, data().scores, data().groups, thr).keep;
  const bytes = 20 * n;
  const host: BenchCase = {
    op: 'nms host', shape: label, flops: 0, bytes, host: true,
    setup(): BenchInstance {
      const input = data();
      return {
        run: () => {
          batchedNms(input.boxes, input.scores, input.groups, thr);
          return [];
        },
        validate: async () => keepMismatch(batchedNms(input.boxes, input.scores, input.groups, thr), ref()),
        dispose: () => undefined,
      };
    },
  };
  const gpu: BenchCase = {
    op: 'nms gpu-mask', shape: label, flops: 0, bytes, host: true,
    setup(rt: Runtime): BenchInstance {
      const input = data();
      const record = () => {
        const order = sortByScoreDesc(input.scores);
        const sorted = new Float32Array(4 * n);
        order.forEach((i, r) => sorted.set(input.boxes.subarray(4 * i, 4 * i + 4), 4 * r));
        const b = Tensor.from(rt, sorted, [n, 4], 'f32', 'nms_boxes');
        const g = Tensor.from(rt, Uint32Array.from(order, (i) => input.groups[i]), [n], 'u32', 'nms_groups');
        const removed = nmsGpuRecord(b, thr, { groups: groups > 1 ? g : undefined });
        b.dispose();
        g.dispose();
        return { removed, order };
      };
      return {
        run: () => record().removed,
        async validate() {
          const { removed, order } = record();
          const bits = new Uint32Array((await removed.toIntArray()).buffer);
          removed.dispose();
          const keep = Array.from(order).filter((_, r) => ((bits[r >>> 5] >>> (r & 31)) & 1) === 0);
          return keepMismatch(keep, ref());
        },
        dispose: () => undefined,
      };
    },
  };
  return [host, gpu];
}

function decodeCase(label: string, n: number, classes: number, weights: [number, number, number, number], seed: number): BenchCase {
  return {
    op: 'decode', shape: label, flops: 0, bytes: 16 * n * (1 + 2 * classes), host: true,
    setup(): BenchInstance {
      const ref = nmsInput(n, 1, seed).boxes;
      const codes = randomArray(4 * n * classes, seed + 1, -2, 2);
      return {
        run: () => {
          decodeBoxes(codes, ref, weights);
          return [];
        },
        validate: async () => relL2(decodeBoxes(codes, ref, weights), decodeBoxesRef(codes, ref, weights, Math.log(1000 / 16))),
        dispose: () => undefined,
      };
    },
  };
}

export const cases: BenchCase[] = [
  ...nmsCases('rpn 5x1000 iou0.7', 5000, 5, 0.7, 1),
  ...nmsCases('box head 4000/90 iou0.5', 4000, 90, 0.5, 2),
  ...nmsCases('single 4000 iou0.7', 4000, 1, 0.7, 3),
  decodeCase('267k anchors x1', 267_000, 1, [1, 1, 1, 1], 4),
  decodeCase('1000 x91 classes', 1000, 91, [10, 10, 5, 5], 5),
];
