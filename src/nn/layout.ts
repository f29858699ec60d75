// Data movement: concat, slice, copyInto (concat without allocation, and the backward of
// slice) and materialised permutes, plus the helper that splits work on tensors past the
// binding limit into aligned runs (used here by the box copies, which run over the dims
// before the copy axis, and by resize and embedding). Permutes must fit the limit. These ops are their own adjoints' building blocks:
// the backward of concat is slice, of slice is copyInto into zeros, of permute is the
// inverse permute, so none has a separate backward kernel. Kernel: shaders/layout.wgsl.
import { LimitError, ShapeError } from '../gpu/errors.js';
import type { BufferBinding } from '../gpu/recorder.js';
import type { Runtime } from '../gpu/runtime.js';
import { BYTES, Tensor } from '../tensor/tensor.js';

const WG = 256;
const MAX_PERMUTE_RANK = 6;
/** Each transpose thread moves 16 elements. */
const TRANSPOSE_WG = 64;

/** The variant a load/store kernel runs: f16 moves 2-byte elements; f32, i32 and u32 are
 *  all moved by the f32 variant (a plain load and store keeps the bits). */
export function moveDtype(t: Tensor): 'f32' | 'f16' {
  return t.dtype === 'f16' ? 'f16' : 'f32';
}

function normAxis(axis: number, rank: number, what: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new ShapeError(`${what}: axis ${axis} is out of range for rank ${rank}`);
  return a;
}

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

export interface Run {
  start: number;
  count: number;
}

/** Splits `count` units (NCHW planes, table rows) into runs, one dispatch each, such that
 *  every tensor's byte range for a run fits maxStorageBufferBindingSize and starts at a
 *  multiple of minStorageBufferOffsetAlignment. unitBytes[i]: bytes of one unit in tensor i. */
export function bindingRuns(rt: Runtime, count: number, unitBytes: number[], what: string): Run[] {
  const maxBind = rt.limits.maxStorageBufferBindingSize;
  const align = rt.limits.minStorageBufferOffsetAlignment;
  const fit = Math.min(...unitBytes.map((b) => Math.floor(maxBind / b)));
  if (count <= fit) return [{ start: 0, count }];
  // A run start s is aligned in tensor i when s * unitBytes[i] is a multiple of align.
  let step = 1;
  for (const b of unitBytes) {
    const need = align / gcd(b, align);
    step = (step * need) / gcd(step, need);
  }
  const per = Math.floor(fit / step) * step;
  if (per === 0) {
    throw new LimitError(
      `${what}: ${step} units of ${Math.max(...unitBytes)} bytes (the smallest aligned run) exceed maxStorageBufferBindingSize ${maxBind}; split the tensor along another axis`,
    );
  }
  const runs: Run[] = [];
  for (let start = 0; start < count; start += per) runs.push({ start, count: Math.min(per, count - start) });
  return runs;
}

/** The binding of one run of units of `unitElems` elements each (size rounded up to 4 bytes,
 *  which stays inside the tensor's storage). */
export function runBinding(t: Tensor, run: Run, unitElems: number): BufferBinding {
  const unitBytes = unitElems * BYTES[t.dtype];
  return t.range(run.start * unitBytes, Math.max(4, Math.ceil((run.count * unitBytes) / 4) * 4));
}

/** Records dst[o, dstStart + m, i] = src[o, srcStart + m, i] for m < len over the
 *  [outer, *, inner] views of both tensors; tensors past the binding limit are copied in
 *  runs of the outer index. */
function copyBox(
  src: Tensor, dst: Tensor, outer: number, len: number, inner: number,
  srcMid: number, srcStart: number, dstMid: number, dstStart: number, label: string,
): void {
  if (outer * len * inner === 0) return;
  const vec4 = inner % 4 === 0;
  const v = vec4 ? 4 : 1;
  const bytes = BYTES[src.dtype];
  for (const run of bindingRuns(src.rt, outer, [srcMid * inner * bytes, dstMid * inner * bytes], label)) {
    const n = (run.count * len * inner) / v;
    src.rt.dispatch(
      { family: 'layout', entry: vec4 ? 'layout_copy_forward_vec4' : 'layout_copy_forward', dtype: moveDtype(src), overrides: { WG } },
      {
        params: [n, len, inner / v, srcMid, srcStart, dstMid, dstStart],
        bindings: [runBinding(src, run, srcMid * inner), runBinding(dst, run, dstMid * inner)],
        workgroups: Math.ceil(n / WG),
        label,
      },
    );
  }
}

/** Writes src into dst[..., start:start+src.shape[axis], ...]; every other dim must match.
 *  Concat without allocation, and the backward of slice (into a zeroed dst). */
export function copyInto(dst: Tensor, src: Tensor, axis: number, start: number): void {
  const rank = dst.shape.length;
  const a = normAxis(axis, rank, 'copyInto');
  if (src.dtype !== dst.dtype) throw new ShapeError(`copyInto: src is ${src.dtype}, dst is ${dst.dtype}`);
  const len = src.shape[a];
  const fits = src.shape.length === rank && src.shape.every((d, i) => i === a || d === dst.shape[i]);
  if (!fits || !Number.isInteger(start) || start < 0 || start + len > dst.shape[a]) {
    throw new ShapeError(
      `copyInto: src [${src.shape}] at ${start} along axis ${a} does not fit dst [${dst.shape}] (other dims must match, start + ${len} <= ${dst.shape[a]})`,
    );
  }
  const outer = prod(dst.shape.slice(0, a));
  const inner = prod(dst.shape.slice(a + 1));
  copyBox(src, dst, outer, len, inner, len, 0, dst.shape[a], start, `copy_into[axis=${a}]`);
}

/** Concatenation along `axis` (negative counts from the end); every other dim must match. */
export function concat(xs: Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new ShapeError('concat: needs at least one tensor');
  const first = xs[0];
  const a = normAxis(axis, first.shape.length, 'concat');
  for (const x of xs) {
    const ok = x.dtype === first.dtype && x.shape.length === first.shape.length && x.shape.every((d, i) => i === a || d === first.shape[i]);
    if (!ok) {
      throw new ShapeError(
        `concat: ${x.toString()} does not match ${first.toString()} outside axis ${a}; all inputs need one dtype and equal other dims`,
      );
    }
  }
  const shape = [...first.shape];
  shape[a] = xs.reduce((s, x) => s + x.shape[a], 0);
  const y = Tensor.empty(first.rt, shape, first.dtype, 'concat');
  let at = 0;
  for (const x of xs) {
    copyInto(y, x, a, at);
    at += x.shape[a];
  }
  return y;
}

/** x[..., start:end, ...] along `axis` (negative axis or bounds count from the end), copied. */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const a = normAxis(axis, x.shape.length, 'slice');
  const dim = x.shape[a];
  const s = start < 0 ? start + dim : start;
  const e = end < 0 ? end + dim : end;
  if (!Number.isInteger(s) || !Number.isInteger(e) || s < 0 || e > dim || s > e) {
    throw new ShapeError(`slice: [${start}, ${end}) is not a range inside 0..${dim} of axis ${a} of [${x.shape}]`);
  }
  const shape = [...x.shape];
  shape[a] = e - s;
  const y = Tensor.empty(x.rt, shape, x.dtype, 'slice');
  const outer = prod(x.shape.slice(0, a));
  const inner = prod(x.shape.slice(a + 1));
  copyBox(x, y, outer, e - s, inner, dim, s, e - s, 0, `slice[axis=${a}]`);
  return y;
}

/** Merged output dims [B?, P, Q] with input strides [P*Q, 1, P] (out[b] = in[b]^T) and
 *  P, Q multiples of 4: moved as 4 x 4 register blocks. */
function isBatchedTranspose(dims: number[], strides: number[]): boolean {
  const r = dims.length;
  if (r < 2 || r > 3) return false;
  const [p, q] = dims.slice(-2);
  if (p % 4 !== 0 || q % 4 !== 0) return false;
  return strides[r - 2] === 1 && strides[r - 1] === p && (r === 2 || strides[0] === p * q);
}

/** y = x.permute(perm), materialised; rank <= 6. The inverse permute is its backward. */
export function permute(x: Tensor, perm: number[]): Tensor {
  const rank = x.shape.length;
  const isPerm = perm.length === rank && perm.every((p, i) => Number.isInteger(p) && p >= 0 && p < rank && perm.indexOf(p) === i);
  if (!isPerm) throw new ShapeError(`permute: [${perm}] is not a permutation of the ${rank} dims of [${x.shape}]`);
  if (rank > MAX_PERMUTE_RANK) throw new ShapeError(`permute: rank ${rank} exceeds ${MAX_PERMUTE_RANK}; reshape to merge dims first`);
  const outShape = perm.map((p) => x.shape[p]);
  const y = Tensor.empty(x.rt, outShape, x.dtype, 'permute');
  if (y.size === 0) return y;
  const inStrides = x.shape.map((_, i) => prod(x.shape.slice(i + 1)));
  // Drop size-1 dims, then merge output neighbours that are also neighbours in the input.
  const dims: number[] = [];
  const strides: number[] = [];
  for (const p of perm) {
    const size = x.shape[p];
    if (size === 1) continue;
    const k = dims.length - 1;
    if (k >= 0 && strides[k] === inStrides[p] * size) {
      dims[k] *= size;
      strides[k] = inStrides[p];
    } else {
      dims.push(size);
      strides.push(inStrides[p]);
    }
  }
  if (dims.length === 0) {
    dims.push(1);
    strides.push(1);
  }
  if (isBatchedTranspose(dims, strides)) {
    const [p, q] = dims.slice(-2);
    const blocks = y.size / 16;
    x.rt.dispatch(
      { family: 'layout', entry: 'layout_transpose_forward', dtype: moveDtype(x), overrides: { WG: TRANSPOSE_WG } },
      { params: [p, q, blocks], bindings: [x.binding, y.binding], workgroups: Math.ceil(blocks / TRANSPOSE_WG), label: `permute[${perm}]` },
    );
    return y;
  }
  // vec4 when the innermost output run is contiguous in the input and a multiple of 4.
  const last = dims.length - 1;
  const vec4 = strides[last] === 1 && dims[last] % 4 === 0;
  if (vec4) {
    dims[last] /= 4;
    for (let i = 0; i < last; i++) strides[i] /= 4;
  }
  while (dims.length < MAX_PERMUTE_RANK) {
    dims.unshift(1);
    strides.unshift(0);
  }
  const n = vec4 ? y.size / 4 : y.size;
  x.rt.dispatch(
    { family: 'layout', entry: vec4 ? 'layout_permute_forward_vec4' : 'layout_permute_forward', dtype: moveDtype(x), overrides: { WG } },
    {
      params: [n, 0, 0, 0, ...dims, 1, 1, ...strides, 0, 0],
      bindings: [x.binding, y.binding],
      workgroups: Math.ceil(n / WG),
      label: `permute[${perm}]`,
    },
  );
  return y;
}
