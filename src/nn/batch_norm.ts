// Batch normalisation over (N, H, W) per channel, as PyTorch's BatchNorm2d (the
// grounding module's residual blocks use it with eps 1e-4 and no affine), with its
// backward. Kernels: shaders/batch_norm.wgsl.
import { ShapeError } from '../gpu/errors.js';
import { f32 } from '../gpu/params.js';
import { Tensor } from '../tensor/tensor.js';
import { chunking } from './group_norm.js';

export interface BatchNormOptions {
  /** true: batch statistics (biased variance) and running-stat update; false: running stats. */
  training: boolean;
  /** [C], updated in place on the GPU in training: rm = (1 - momentum) * rm + momentum * mean. */
  runningMean: Tensor;
  /** [C], rv = (1 - momentum) * rv + momentum * var_unbiased (n / (n - 1)). */
  runningVar: Tensor;
  /** Default 0.1. */
  momentum?: number;
  /** Default 1e-5 (the grounding module uses 1e-4). */
  eps?: number;
  /** Optional affine [C]. */
  weight?: Tensor;
  bias?: Tensor;
}

/** Threads of the per-channel reductions: few, with long strides, since each level of
 *  their tree costs a barrier (about as much as the loads on lavapipe). */
const STATS_WG = 64;

function dims(x: Tensor, what: string): { N: number; C: number; S: number; dtype: 'f32' | 'f16' } {
  if (x.dtype !== 'f32' && x.dtype !== 'f16') throw new ShapeError(`${what}: needs a float tensor, got ${x.toString()}`);
  if (x.shape.length < 2) throw new ShapeError(`${what}: x must be [N, C, H, W], got [${x.shape}]`);
  const [N, C] = x.shape;
  return { N, C, S: x.shape.slice(2).reduce((a, b) => a * b, 1), dtype: x.dtype };
}

function checkChannels(t: Tensor | undefined, name: string, C: number, dtype: string, what: string): void {
  if (t && (t.size !== C || t.dtype !== dtype)) throw new ShapeError(`${what}: ${name} must be [${C}] ${dtype}, got ${t.toString()}`);
}

/** Dispatch geometry of the per-(plane, chunk) kernels. */
function planeGrid(N: number, C: number, S: number) {
  const { WG, ITEMS } = chunking(S);
  const planeChunks = Math.ceil(S / (WG * ITEMS));
  return { WG, ITEMS, planeChunks, workgroups: N * C * planeChunks };
}

/**
 * y = (x - mean[c]) * rstd[c] * weight[c] + bias[c] for x [N, C, H, W]. Training uses
 * the batch statistics and updates the running ones in place; eval uses the running
 * ones. Returns y and the mean and rstd [C] (f32) it normalised with.
 */
export function batchNorm(x: Tensor, opts: BatchNormOptions): { y: Tensor; mean: Tensor; rstd: Tensor } {
  const { N, C, S, dtype } = dims(x, 'batchNorm');
  const what = 'batchNorm';
  checkChannels(opts.runningMean, 'runningMean', C, dtype, what);
  checkChannels(opts.runningVar, 'runningVar', C, dtype, what);
  checkChannels(opts.weight, 'weight', C, dtype, what);
  checkChannels(opts.bias, 'bias', C, dtype, what);
  if (!opts.weight !== !opts.bias) throw new ShapeError(`${what}: give both weight and bias (affine) or neither`);
  if (opts.training && N * S < 2) {
    throw new ShapeError(`${what}: training needs more than one value per channel, got x [${x.shape}] (as PyTorch)`);
  }
  const rt = x.rt;
  const eps = opts.eps ?? 1e-5;
  const params = [N, C, S, 0, f32(eps), f32(opts.momentum ?? 0.1)];
  const mean = Tensor.empty(rt, [C], 'f32', 'batch_norm.mean');
  const rstd = Tensor.empty(rt, [C], 'f32', 'batch_norm.rstd');
  if (opts.training) {
    rt.dispatch(
      { family: 'batch_norm', entry: 'batch_norm_stats', dtype, overrides: { WG: STATS_WG } },
      {
        params,
        bindings: [x.binding, opts.runningMean.binding, opts.runningVar.binding, mean.binding, rstd.binding],
        workgroups: C,
        label: `batch_norm_stats[C=${C}]`,
      },
    );
  } else {
    rt.dispatch(
      { family: 'batch_norm', entry: 'batch_norm_eval_stats', dtype, overrides: { WG: 64 } },
      {
        params,
        bindings: [opts.runningMean.binding, opts.runningVar.binding, mean.binding, rstd.binding],
        workgroups: Math.ceil(C / 64),
        label: `batch_norm_eval_stats[C=${C}]`,
      },
    );
  }
  const y = Tensor.empty(rt, x.shape, dtype, 'batch_norm');
  const grid = planeGrid(N, C, S);
  params[3] = grid.planeChunks;
  // Without affine the weight/bias slots hold `mean` (never read; see the kernel header).
  const affine = opts.weight && opts.bias ? [opts.weight.binding, opts.bias.binding] : [mean.binding, mean.binding];
  rt.dispatch(
    { family: 'batch_norm', entry: 'batch_norm_forward', dtype, overrides: { WG: grid.WG, ITEMS: grid.ITEMS, AFFINE: opts.weight ? 1 : 0 } },
    {
      params,
      bindings: [x.binding, mean.binding, rstd.binding, ...affine, y.binding],
      workgroups: grid.workgroups,
      label: `batch_norm_forward[C=${C}]`,
    },
  );
  return { y, mean, rstd };
}

/**
 * Backward of batchNorm given dy and the mean and rstd it returned. Training
 * differentiates through the batch statistics:
 * dx = weight * rstd * (dy - mean(dy) - xhat * mean(dy * xhat)); eval: dx = weight * rstd * dy.
 * With weight (affine), also dweight = sum dy * xhat and dbias = sum dy over (N, H, W).
 */
export function batchNormBackward(
  x: Tensor, mean: Tensor, rstd: Tensor, dy: Tensor, opts: { training: boolean; weight?: Tensor },
): { dx: Tensor; dweight?: Tensor; dbias?: Tensor } {
  const { N, C, S, dtype } = dims(x, 'batchNormBackward');
  const what = 'batchNormBackward';
  if (dy.size !== x.size || dy.dtype !== dtype) throw new ShapeError(`${what}: dy ${dy.toString()} must match x ${x.toString()}`);
  checkChannels(mean, 'mean', C, 'f32', what);
  checkChannels(rstd, 'rstd', C, 'f32', what);
  checkChannels(opts.weight, 'weight', C, dtype, what);
  const rt = x.rt;
  const grid = planeGrid(N, C, S);
  const params = [N, C, S, grid.planeChunks, f32(0), f32(0)];
  let sums: [Tensor, Tensor] | null = null;
  if (opts.training || opts.weight) {
    sums = [Tensor.empty(rt, [C], dtype, 'batch_norm.dbias'), Tensor.empty(rt, [C], dtype, 'batch_norm.dweight')];
    rt.dispatch(
      { family: 'batch_norm', entry: 'batch_norm_backward_reduce', dtype, overrides: { WG: STATS_WG } },
      {
        params,
        bindings: [x.binding, mean.binding, rstd.binding, dy.binding, sums[0].binding, sums[1].binding],
        workgroups: C,
        label: `batch_norm_backward_reduce[C=${C}]`,
      },
    );
  }
  const dx = Tensor.empty(rt, x.shape, dtype, 'batch_norm.dx');
  // Slots the kernel does not read (no affine, or eval) hold `mean`.
  const weightSlot = opts.weight ? opts.weight.binding : mean.binding;
  const sumSlots = opts.training && sums ? [sums[0].binding, sums[1].binding] : [mean.binding, mean.binding];
  rt.dispatch(
    {
      family: 'batch_norm',
      entry: 'batch_norm_backward_input',
      dtype,
      overrides: { WG: grid.WG, ITEMS: grid.ITEMS, AFFINE: opts.weight ? 1 : 0, TRAINING: opts.training ? 1 : 0 },
    },
    {
      params,
      bindings: [x.binding, mean.binding, rstd.binding, dy.binding, weightSlot, ...sumSlots, dx.binding],
      workgroups: grid.workgroups,
      label: `batch_norm_backward_input[C=${C}]`,
    },
  );
  if (!opts.weight || !sums) {
    sums?.forEach((t) => t.dispose());
    return { dx };
  }
  const [dbias, dweight] = sums;
  return { dx, dweight, dbias };
}
