// Elementwise ops: activations, binary ops with NumPy broadcasting and an optional fused
// activation (bias + SiLU, residual add), and activation backward.
import { f32 } from '../gpu/params.js';
import { ShapeError } from '../gpu/errors.js';
import { Tensor } from '../tensor/tensor.js';

export const ACT = {
  none: 0,
  silu: 1,
  gelu: 2,
  gelu_tanh: 3,
  quick_gelu: 4,
  relu: 5,
  sigmoid: 6,
  exp: 7,
} as const;
export type Activation = keyof typeof ACT;

const WG = 256;
/** Elements per thread (shaders/elementwise.wgsl EPT). */
const EPT = 4;
const groupsFor = (n: number) => Math.ceil(n / (WG * EPT));
const NO_DIMS = [1, 1, 1, 1, 1, 1, 1, 1];
const MAX_RANK = 8;

function elemDtype(t: Tensor): 'f32' | 'f16' {
  if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new ShapeError(`elementwise ops need float tensors, got ${t.dtype}`);
  return t.dtype;
}

/** y = act(alpha * x + beta). */
export function unary(x: Tensor, activation: Activation, alpha = 1, beta = 0): Tensor {
  const dtype = elemDtype(x);
  const y = Tensor.empty(x.rt, x.shape, dtype, `unary.${activation}`);
  x.rt.dispatch(
    { family: 'elementwise', entry: 'unary_forward', dtype, overrides: { ACT: ACT[activation], WG } },
    {
      params: [x.size, 0, f32(alpha), f32(beta), ...NO_DIMS, ...NO_DIMS, ...NO_DIMS],
      bindings: [x.binding, y.binding],
      workgroups: groupsFor(x.size),
    },
  );
  return y;
}

/** dx = dy * act'(alpha * x + beta) * alpha, where x is the forward input. */
export function unaryBackward(x: Tensor, dy: Tensor, activation: Activation, alpha = 1, beta = 0): Tensor {
  const dtype = elemDtype(x);
  if (dy.size !== x.size) throw new ShapeError(`unaryBackward: dy [${dy.shape}] does not match x [${x.shape}]`);
  const dx = Tensor.empty(x.rt, x.shape, dtype, `unary_backward.${activation}`);
  x.rt.dispatch(
    { family: 'elementwise', entry: 'unary_backward', dtype, overrides: { ACT: ACT[activation], WG } },
    {
      params: [x.size, 0, f32(alpha), f32(beta), ...NO_DIMS, ...NO_DIMS, ...NO_DIMS],
      bindings: [x.binding, dy.binding, dx.binding],
      workgroups: groupsFor(x.size),
    },
  );
  return dx;
}

export const silu = (x: Tensor): Tensor => unary(x, 'silu');
export const gelu = (x: Tensor): Tensor => unary(x, 'gelu');
export const relu = (x: Tensor): Tensor => unary(x, 'relu');
export const scale = (x: Tensor, alpha: number, beta = 0): Tensor => unary(x, 'none', alpha, beta);

/** NumPy broadcast of two shapes. */
export function broadcastShape(a: readonly number[], b: readonly number[], what: string): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new ShapeError(`${what}: shapes [${a}] and [${b}] do not broadcast`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Strides of `shape` aligned to `out` with 0 on broadcast dims, then merged runs of
 *  dims that are contiguous in the output and in both inputs (rank <= 8). */
function broadcastPlan(out: number[], a: readonly number[], b: readonly number[], what: string) {
  const stridesFor = (s: readonly number[]) => {
    const st = new Array(out.length).fill(0);
    let acc = 1;
    for (let i = out.length - 1; i >= 0; i--) {
      const d = s[s.length - out.length + i] ?? 1;
      st[i] = d === 1 ? 0 : acc;
      acc *= d;
    }
    return st;
  };
  const sa = stridesFor(a);
  const sb = stridesFor(b);
  const dims: number[] = [];
  const as: number[] = [];
  const bs: number[] = [];
  for (let i = 0; i < out.length; i++) {
    if (out[i] === 1) continue;
    const k = dims.length - 1;
    // dim i merges into the previous one when both strides continue it.
    if (k >= 0 && as[k] === sa[i] * out[i] && bs[k] === sb[i] * out[i]) {
      dims[k] *= out[i];
      as[k] = sa[i];
      bs[k] = sb[i];
    } else {
      dims.push(out[i]);
      as.push(sa[i]);
      bs.push(sb[i]);
    }
  }
  if (dims.length > MAX_RANK) throw new ShapeError(`${what}: broadcast of [${a}] and [${b}] needs ${dims.length} dims after merging (max ${MAX_RANK})`);
  const rank = Math.max(1, dims.length);
  if (dims.length === 0) {
    dims.push(1);
    as.push(0);
    bs.push(0);
  }
  while (dims.length < MAX_RANK) {
    dims.unshift(1);
    as.unshift(0);
    bs.unshift(0);
  }
  return { dims, as, bs, rank };
}

const OPS = { add: 0, sub: 1, mul: 2, div: 3 } as const;
export type BinaryOp = keyof typeof OPS;

/** c = act(a OP b) with broadcasting. */
export function binary(a: Tensor, b: Tensor, op: BinaryOp, activation: Activation = 'none'): Tensor {
  const dtype = elemDtype(a);
  if (b.dtype !== dtype) throw new ShapeError(`${op}: dtypes ${a.dtype} and ${b.dtype} differ`);
  const shape = broadcastShape(a.shape, b.shape, op);
  const { dims, as, bs, rank } = broadcastPlan(shape, a.shape, b.shape, op);
  const c = Tensor.empty(a.rt, shape, dtype, `binary.${op}`);
  a.rt.dispatch(
    { family: 'elementwise', entry: 'binary_forward', dtype, overrides: { OP: OPS[op], ACT: ACT[activation], WG } },
    {
      params: [c.size, rank, f32(1), f32(0), ...dims, ...as, ...bs],
      bindings: [a.binding, b.binding, c.binding],
      workgroups: groupsFor(c.size),
    },
  );
  return c;
}

export const add = (a: Tensor, b: Tensor, activation: Activation = 'none'): Tensor => binary(a, b, 'add', activation);
export const sub = (a: Tensor, b: Tensor): Tensor => binary(a, b, 'sub');
export const mul = (a: Tensor, b: Tensor): Tensor => binary(a, b, 'mul');
export const div = (a: Tensor, b: Tensor): Tensor => binary(a, b, 'div');
