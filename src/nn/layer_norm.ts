// Layer normalisation over the last axis (CLIP, the UNet's transformer blocks, the
// grounding decoder) with its backward, as llm.c's layernorm_forward / _backward.
// Kernels: shaders/layer_norm.wgsl; the row reductions of the 'subgroup' variant
// (rt.variants.layer_norm, gpu/variants.ts) are shaders/layer_norm_subgroup.wgsl.
import { ShapeError } from '../gpu/errors.js';
import { f32 } from '../gpu/params.js';
import type { Runtime } from '../gpu/runtime.js';
import { subgroupWorkgroupFloor } from '../gpu/variants.js';
import { Tensor } from '../tensor/tensor.js';

/** Threads per row: a power of two in [32, 256], about one per 4 elements. */
function rowWorkgroupSize(d: number): number {
  let wg = 32;
  while (wg < 256 && wg * 4 < d) wg *= 2;
  return wg;
}

/** The family and workgroup size of a row kernel ('forward', 'backward_input') under
 *  the runtime's variant; the subgroup one is no narrower than the adapter's floor. */
function rowKernel(rt: Runtime, kind: 'forward' | 'backward_input', d: number): { family: string; entry: string; WG: number } {
  if (rt.variants.layer_norm === 'subgroup') {
    const WG = Math.max(rowWorkgroupSize(d), subgroupWorkgroupFloor(rt.gpu.report.subgroupMaxSize));
    return { family: 'layer_norm_subgroup', entry: `layer_norm_subgroup_${kind}`, WG };
  }
  return { family: 'layer_norm', entry: `layer_norm_${kind}`, WG: rowWorkgroupSize(d) };
}

function floatDtype(t: Tensor, what: string): 'f32' | 'f16' {
  if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new ShapeError(`${what}: needs float tensors, got ${t.toString()}`);
  return t.dtype;
}

function checkVector(t: Tensor, name: string, d: number, dtype: string, what: string): void {
  if (t.size !== d || t.dtype !== dtype) throw new ShapeError(`${what}: ${name} must be [${d}] ${dtype}, got ${t.toString()}`);
}

/**
 * y = (x - mean) * rstd * weight + bias over the last axis of x [..., D].
 * Returns y (x's shape) and, for the backward, mean and rstd [rows] (f32, rows = x.size / D).
 */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number): { y: Tensor; mean: Tensor; rstd: Tensor } {
  const dtype = floatDtype(x, 'layerNorm');
  const D = x.shape[x.shape.length - 1] ?? 0;
  if (D === 0) throw new ShapeError(`layerNorm: x [${x.shape}] needs a non-empty last axis`);
  checkVector(weight, 'weight', D, dtype, 'layerNorm');
  checkVector(bias, 'bias', D, dtype, 'layerNorm');
  const rows = x.size / D;
  const y = Tensor.empty(x.rt, x.shape, dtype, 'layer_norm');
  const mean = Tensor.empty(x.rt, [rows], 'f32', 'layer_norm.mean');
  const rstd = Tensor.empty(x.rt, [rows], 'f32', 'layer_norm.rstd');
  const k = rowKernel(x.rt, 'forward', D);
  x.rt.dispatch(
    { family: k.family, entry: k.entry, dtype, overrides: { WG: k.WG } },
    {
      params: [rows, D, f32(eps)],
      bindings: [x.binding, weight.binding, bias.binding, y.binding, mean.binding, rstd.binding],
      workgroups: rows,
      label: `${k.entry}[D=${D}]`,
    },
  );
  return { y, mean, rstd };
}

/**
 * Backward of layerNorm given dy (x's shape) and the forward's mean and rstd:
 * dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * weight,
 * dweight = sum_rows dy * xhat, dbias = sum_rows dy. dweight / dbias are written into
 * opts.dweight / opts.dbias when given (added to them with accumulate), else allocated.
 */
export function layerNormBackward(
  x: Tensor, weight: Tensor, mean: Tensor, rstd: Tensor, dy: Tensor,
  opts: { dweight?: Tensor; dbias?: Tensor; accumulate?: boolean } = {},
): { dx: Tensor; dweight: Tensor; dbias: Tensor } {
  const dtype = floatDtype(x, 'layerNormBackward');
  const D = x.shape[x.shape.length - 1] ?? 0;
  const rows = D === 0 ? 0 : x.size / D;
  checkVector(weight, 'weight', D, dtype, 'layerNormBackward');
  if (dy.size !== x.size || dy.dtype !== dtype) throw new ShapeError(`layerNormBackward: dy ${dy.toString()} must match x ${x.toString()}`);
  for (const [name, t] of [['mean', mean], ['rstd', rstd]] as const) {
    if (t.size !== rows || t.dtype !== 'f32') throw new ShapeError(`layerNormBackward: ${name} must be [${rows}] f32 from layerNorm, got ${t.toString()}`);
  }
  if (opts.accumulate && (!opts.dweight || !opts.dbias)) {
    throw new ShapeError('layerNormBackward: accumulate needs both opts.dweight and opts.dbias to add into');
  }
  const dweight = opts.dweight ?? Tensor.empty(x.rt, [D], dtype, 'layer_norm.dweight');
  const dbias = opts.dbias ?? Tensor.empty(x.rt, [D], dtype, 'layer_norm.dbias');
  checkVector(dweight, 'dweight', D, dtype, 'layerNormBackward');
  checkVector(dbias, 'dbias', D, dtype, 'layerNormBackward');
  const dx = Tensor.empty(x.rt, x.shape, dtype, 'layer_norm.dx');
  const params = [rows, D, f32(0)];
  const k = rowKernel(x.rt, 'backward_input', D);
  x.rt.dispatch(
    { family: k.family, entry: k.entry, dtype, overrides: { WG: k.WG } },
    {
      params,
      bindings: [x.binding, weight.binding, mean.binding, rstd.binding, dy.binding, dx.binding],
      workgroups: rows,
      label: `${k.entry}[D=${D}]`,
    },
  );
  const TX = 16;
  x.rt.dispatch(
    { family: 'layer_norm', entry: 'layer_norm_backward_weight', dtype, overrides: { WG: 256, TX, ACCUMULATE: opts.accumulate ? 1 : 0 } },
    {
      params,
      bindings: [x.binding, mean.binding, rstd.binding, dy.binding, dweight.binding, dbias.binding],
      workgroups: Math.ceil(D / TX),
      label: `layer_norm_backward_weight[D=${D}]`,
    },
  );
  return { dx, dweight, dbias };
}
