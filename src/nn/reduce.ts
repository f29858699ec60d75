// Reductions over one axis: sum, mean and max. x is viewed as [outer, n, inner] around
// the reduced axis; keepDims keeps it as size 1. Inference only (no backward).
// Kernels: shaders/reduce.wgsl.
import { ShapeError } from '../gpu/errors.js';
import { f32 } from '../gpu/params.js';
import { Tensor } from '../tensor/tensor.js';

type ReduceOp = 'sum' | 'mean' | 'max';

/** Columns per workgroup of the strided kernel: up to 16 adjacent outputs, fewer
 *  when the inner extent is small so that more threads split the reduced axis. */
function columnsPerWorkgroup(inner: number): number {
  let tx = 1;
  while (tx < 16 && tx < inner) tx *= 2;
  return tx;
}

/** Threads per row for the contiguous kernel: a power of two in [32, 256], about one
 *  per 4 elements. */
function rowWorkgroupSize(n: number): number {
  let wg = 32;
  while (wg < 256 && wg * 4 < n) wg *= 2;
  return wg;
}

function reduce(x: Tensor, axis: number, keepDims: boolean, op: ReduceOp): Tensor {
  if (x.dtype !== 'f32' && x.dtype !== 'f16') throw new ShapeError(`${op}: needs a float tensor, got ${x.toString()}`);
  const rank = x.shape.length;
  const ax = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(ax) || ax < 0 || ax >= rank) {
    throw new ShapeError(`${op}: axis ${axis} is out of range for ${x.toString()} (expected -${rank}..${rank - 1})`);
  }
  const n = x.shape[ax];
  if (n === 0) throw new ShapeError(`${op}: cannot reduce the empty axis ${axis} of ${x.toString()}`);
  const outer = x.shape.slice(0, ax).reduce((a, b) => a * b, 1);
  const inner = x.shape.slice(ax + 1).reduce((a, b) => a * b, 1);
  const shape = keepDims ? x.shape.map((d, i) => (i === ax ? 1 : d)) : x.shape.filter((_, i) => i !== ax);
  const y = Tensor.empty(x.rt, shape, x.dtype, op);
  if (y.size === 0) return y;
  const params = [outer, n, inner, f32(op === 'mean' ? 1 / n : 1)];
  const OP = op === 'max' ? 1 : 0;
  if (inner === 1) {
    const WG = rowWorkgroupSize(n);
    x.rt.dispatch(
      { family: 'reduce', entry: 'reduce_forward', dtype: x.dtype, overrides: { OP, WG } },
      { params, bindings: [x.binding, y.binding], workgroups: outer, label: `reduce_forward[${op}]` },
    );
  } else {
    const TX = columnsPerWorkgroup(inner);
    x.rt.dispatch(
      { family: 'reduce', entry: 'reduce_forward_strided', dtype: x.dtype, overrides: { OP, WG: 256, TX } },
      { params, bindings: [x.binding, y.binding], workgroups: outer * Math.ceil(inner / TX), label: `reduce_forward_strided[${op}]` },
    );
  }
  return y;
}

/** Sum over `axis` (negative counts from the end). */
export function sum(x: Tensor, axis: number, keepDims = false): Tensor {
  return reduce(x, axis, keepDims, 'sum');
}

/** Mean over `axis`: the sum times 1/n. */
export function mean(x: Tensor, axis: number, keepDims = false): Tensor {
  return reduce(x, axis, keepDims, 'mean');
}

/** Maximum over `axis`. */
export function max(x: Tensor, axis: number, keepDims = false): Tensor {
  return reduce(x, axis, keepDims, 'max');
}
