// Segmentation losses of the grounding module (BCE with logits, as the official code
// trains with, and Dice) over logits / targets [R, P], with per-row weights so a class
// without a mask gets weight 0 and a 1 / batch factor can be folded in. The loss is a
// [1] tensor that stays on the GPU. Kernels: shaders/loss.wgsl.
import { ShapeError } from '../gpu/errors.js';
import { f32 } from '../gpu/params.js';
import type { BufferBinding } from '../gpu/recorder.js';
import { Tensor } from '../tensor/tensor.js';
import { chunking } from './group_norm.js';

/** Partial sums: few threads with long strides (256 elements each), since every tree
 *  level costs a barrier, which on lavapipe costs about as much as the loads. */
const REDUCE_ITEMS = 256;

interface Plan {
  R: number;
  P: number;
  dtype: 'f32' | 'f16';
  WG: number;
  ITEMS: number;
  chunks: number;
  /** Geometry of loss_partial / loss_finish (the backward kernels use WG, ITEMS, chunks). */
  reduce: { WG: number; ITEMS: number; chunks: number };
  /** The weights binding: rowWeights, or logits as a never-read stand-in. */
  weights: BufferBinding;
  weighted: boolean;
}

function plan(logits: Tensor, target: Tensor, rowWeights: Tensor | undefined, what: string): Plan {
  const dtype = logits.dtype;
  if (dtype !== 'f32' && dtype !== 'f16') throw new ShapeError(`${what}: logits must be float, got ${logits.toString()}`);
  if (logits.shape.length !== 2) throw new ShapeError(`${what}: logits must be [R, P], got [${logits.shape}]; reshape first`);
  const [R, P] = logits.shape;
  if (P === 0 || R === 0) throw new ShapeError(`${what}: logits [${logits.shape}] is empty`);
  if (target.dtype !== dtype || target.shape.length !== 2 || target.shape[0] !== R || target.shape[1] !== P) {
    throw new ShapeError(`${what}: target ${target.toString()} must match logits ${logits.toString()}`);
  }
  if (rowWeights && (rowWeights.size !== R || rowWeights.dtype !== dtype)) {
    throw new ShapeError(`${what}: rowWeights must be [${R}] ${dtype} (one per row), got ${rowWeights.toString()}`);
  }
  const { WG, ITEMS } = chunking(P);
  return {
    R, P, dtype, WG, ITEMS,
    chunks: Math.ceil(P / (WG * ITEMS)),
    reduce: { WG: P >= 2048 ? 64 : 32, ITEMS: REDUCE_ITEMS, chunks: Math.ceil(P / ((P >= 2048 ? 64 : 32) * REDUCE_ITEMS)) },
    weights: (rowWeights ?? logits).binding,
    weighted: rowWeights !== undefined,
  };
}

/** Per-chunk partial sums, then the per-row sums [R] (vec4) and the weighted loss [1]. */
function reduceLoss(logits: Tensor, target: Tensor, p: Plan, dice: boolean, smooth: number): { loss: Tensor; rowstats: Tensor } {
  const rt = logits.rt;
  const { WG, ITEMS, chunks } = p.reduce;
  const params = [p.R, p.P, chunks, f32(smooth), f32(0)];
  const kind = dice ? 'dice' : 'bce';
  const partials = Tensor.empty(rt, [p.R, chunks, 4], 'f32', `loss.${kind}.partials`);
  rt.dispatch(
    { family: 'loss', entry: 'loss_partial', dtype: p.dtype, overrides: { WG, ITEMS, DICE: dice ? 1 : 0 } },
    { params, bindings: [logits.binding, target.binding, partials.binding], workgroups: p.R * chunks, label: `loss_partial[${kind}]` },
  );
  const rowstats = Tensor.empty(rt, [p.R, 4], 'f32', `loss.${kind}.rows`);
  const loss = Tensor.empty(rt, [1], 'f32', `loss.${kind}`);
  rt.dispatch(
    { family: 'loss', entry: 'loss_finish', dtype: p.dtype, overrides: { WG: 256, DICE: dice ? 1 : 0, WEIGHTED: p.weighted ? 1 : 0 } },
    { params, bindings: [partials.binding, p.weights, rowstats.binding, loss.binding], workgroups: 1, label: `loss_finish[${kind}]` },
  );
  partials.dispose();
  return { loss, rowstats };
}

/**
 * loss = sum_r w_r * mean_p bce(x, t), bce = max(x, 0) - x t + log(1 + exp(-|x|)).
 * logits, target [R, P]; rowWeights [R] (default 1). Returns loss [1] (f32).
 */
export function bceWithLogits(logits: Tensor, target: Tensor, rowWeights?: Tensor): Tensor {
  const { loss, rowstats } = reduceLoss(logits, target, plan(logits, target, rowWeights, 'bceWithLogits'), false, 0);
  rowstats.dispose();
  return loss;
}

/** dlogits [R, P] = dloss * w_r * (sigmoid(x) - t) / P. */
export function bceWithLogitsBackward(logits: Tensor, target: Tensor, dloss: number, rowWeights?: Tensor): Tensor {
  const p = plan(logits, target, rowWeights, 'bceWithLogitsBackward');
  const dlogits = Tensor.empty(logits.rt, logits.shape, p.dtype, 'loss.bce.dlogits');
  logits.rt.dispatch(
    { family: 'loss', entry: 'loss_bce_backward', dtype: p.dtype, overrides: { WG: p.WG, ITEMS: p.ITEMS, WEIGHTED: p.weighted ? 1 : 0 } },
    {
      params: [p.R, p.P, p.chunks, f32(0), f32(dloss)],
      bindings: [logits.binding, target.binding, p.weights, dlogits.binding],
      workgroups: p.R * p.chunks,
      label: 'loss_bce_backward',
    },
  );
  return dlogits;
}

/**
 * Dice loss on p = sigmoid(logits): sum_r w_r * (1 - (2 sum(p t) + smooth) / (sum p + sum t + smooth)).
 * logits, target [R, P]; rowWeights [R] (default 1); smooth default 1. Returns loss [1] (f32).
 */
export function diceLoss(logits: Tensor, target: Tensor, smooth = 1, rowWeights?: Tensor): Tensor {
  const { loss, rowstats } = reduceLoss(logits, target, plan(logits, target, rowWeights, 'diceLoss'), true, smooth);
  rowstats.dispose();
  return loss;
}

/** dlogits [R, P] = dloss * w_r * (num - 2 t den) / den^2 * p (1 - p), with num and den
 *  the row's Dice numerator and denominator. */
export function diceLossBackward(logits: Tensor, target: Tensor, dloss: number, smooth = 1, rowWeights?: Tensor): Tensor {
  const p = plan(logits, target, rowWeights, 'diceLossBackward');
  const { loss, rowstats } = reduceLoss(logits, target, p, true, smooth);
  loss.dispose();
  const dlogits = Tensor.empty(logits.rt, logits.shape, p.dtype, 'loss.dice.dlogits');
  logits.rt.dispatch(
    { family: 'loss', entry: 'loss_dice_backward', dtype: p.dtype, overrides: { WG: p.WG, ITEMS: p.ITEMS, WEIGHTED: p.weighted ? 1 : 0 } },
    {
      params: [p.R, p.P, p.chunks, f32(smooth), f32(dloss)],
      bindings: [logits.binding, target.binding, p.weights, rowstats.binding, dlogits.binding],
      workgroups: p.R * p.chunks,
      label: 'loss_dice_backward',
    },
  );
  rowstats.dispose();
  return dlogits;
}
