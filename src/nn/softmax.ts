// Softmax over the last axis (attention probabilities, DAAM maps) and its backward.
// Kernels: shaders/softmax.wgsl, one workgroup per row; the forward's 'subgroup'
// variant (rt.variants.softmax, gpu/variants.ts) is shaders/softmax_subgroup.wgsl.
import { ShapeError } from '../gpu/errors.js';
import { f32 } from '../gpu/params.js';
import { subgroupWorkgroupFloor } from '../gpu/variants.js';
import { Tensor } from '../tensor/tensor.js';

/** Threads per row: about one per 4 elements, a power of two in [32, 256], so short
 *  rows (77 tokens) do not leave most of a 256-thread workgroup idle. */
function workgroupSize(n: number): number {
  let wg = 32;
  while (wg < 256 && wg * 4 < n) wg *= 2;
  return wg;
}

/** Threads per row on the vec4 path: about one per 16 vec4s, a power of two in [8, 256]
 *  (16 threads for rows of 1024: fewer barrier rounds, which dominate on CPU drivers). */
function vec4WorkgroupSize(n: number): number {
  let wg = 8;
  while (wg < 256 && wg * 64 < n) wg *= 2;
  return wg;
}

/** Subgroup variant: about 8 elements per thread, a power of two from the adapter's
 *  floor (gpu/variants.ts) up to 256; its reductions cost two barriers at any width. */
function subgroupWorkgroupSize(n: number, floor: number): number {
  let wg = floor;
  while (wg < 256 && wg * 8 < n) wg *= 2;
  return wg;
}

function floatDtype(t: Tensor, what: string): 'f32' | 'f16' {
  if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new ShapeError(`${what}: needs a float tensor, got ${t.toString()}`);
  return t.dtype;
}

function rowsOf(x: Tensor, what: string): { rows: number; n: number } {
  if (x.shape.length === 0) throw new ShapeError(`${what}: needs at least one axis, got a scalar`);
  const n = x.shape[x.shape.length - 1];
  return { rows: n === 0 ? 0 : x.size / n, n };
}

/** y = softmax(scale * x) over the last axis. Returns y, which is all the backward needs. */
export function softmax(x: Tensor, scale = 1): Tensor {
  const dtype = floatDtype(x, 'softmax');
  const { rows, n } = rowsOf(x, 'softmax');
  const y = Tensor.empty(x.rt, x.shape, dtype, 'softmax');
  const vec4 = dtype === 'f32' && n % 4 === 0;
  const params = [rows, n, f32(scale)];
  if (x.rt.variants.softmax === 'subgroup') {
    const WG = subgroupWorkgroupSize(n, subgroupWorkgroupFloor(x.rt.gpu.report.subgroupMaxSize));
    x.rt.dispatch(
      { family: 'softmax_subgroup', entry: vec4 ? 'softmax_subgroup_forward_vec4' : 'softmax_subgroup_forward', dtype, overrides: { WG } },
      { params, bindings: [x.binding, y.binding], workgroups: rows },
    );
    return y;
  }
  const WG = vec4 ? vec4WorkgroupSize(n) : workgroupSize(n);
  x.rt.dispatch(
    { family: 'softmax', entry: vec4 ? 'softmax_forward_vec4' : 'softmax_forward', dtype, overrides: { WG } },
    { params, bindings: [x.binding, y.binding], workgroups: rows },
  );
  return y;
}

/** dx = scale * y * (dy - sum(dy * y)) per row, where y is the forward output. */
export function softmaxBackward(y: Tensor, dy: Tensor, scale = 1): Tensor {
  const dtype = floatDtype(y, 'softmaxBackward');
  if (dy.dtype !== dtype || dy.shape.length !== y.shape.length || dy.shape.some((d, i) => d !== y.shape[i])) {
    throw new ShapeError(`softmaxBackward: dy ${dy.toString()} must match y ${y.toString()}`);
  }
  const { rows, n } = rowsOf(y, 'softmaxBackward');
  const dx = Tensor.empty(y.rt, y.shape, dtype, 'softmax_backward');
  const WG = workgroupSize(n);
  y.rt.dispatch(
    { family: 'softmax', entry: 'softmax_backward_input', dtype, overrides: { WG } },
    { params: [rows, n, f32(scale)], bindings: [y.binding, dy.binding, dx.binding], workgroups: rows },
  );
  return dx;
}
