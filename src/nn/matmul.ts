// Matrix products: batched matmul with a fused epilogue (alpha, bias, activation,
// residual, accumulate), and the linear layer (PyTorch weight layout) with its backward.
// Kernels: shaders/matmul.wgsl (variant 'rows8', the software adapter's) and
// shaders/matmul_tiled.wgsl (variant 'tiled', hardware adapters'), chosen by
// rt.variants.matmul (gpu/variants.ts); both take the same params and bindings.
//
// Shapes: a [..., M, K] (or [..., K, M] with transA), b [..., K, N] (or [..., N, K]
// with transB). Leading (batch) dims of a and b are equal, or one operand is 2-D and
// is shared by every matrix of the other.
import { InputError, ShapeError } from '../gpu/errors.js';
import { f32 } from '../gpu/params.js';
import type { Runtime } from '../gpu/runtime.js';
import { Tensor } from '../tensor/tensor.js';
import { ACT, type Activation } from './elementwise.js';

export interface MatmulOptions {
  /** a is [..., K, M] instead of [..., M, K]. */
  transA?: boolean;
  /** b is [..., N, K] instead of [..., K, N]. */
  transB?: boolean;
  /** [N], added per output column (or [M] per output row with biasRows). */
  bias?: Tensor;
  /** The bias is [M], one value per output row (conv2d's 'gemm' variant, whose rows are
   *  output channels). */
  biasRows?: boolean;
  /** Fused epilogue after alpha*AB + bias (ACT codes from nn/elementwise). */
  activation?: Activation;
  /** Scale of the product (default 1). */
  alpha?: number;
  /** Same shape as the output, added after the activation (must not be `out`). */
  residual?: Tensor;
  /** Write into this tensor instead of allocating. */
  out?: Tensor;
  /** With `out`: out += result (gradient accumulation). */
  accumulate?: boolean;
  /** @internal The dispatch label's name (default the kernel entry); the benchmark's cost
   *  table counts a 'conv2d_gemm' product as a convolution. */
  label?: string;
}

/** Rows per thread, fixed in the shader (RM). */
const ROWS = 8;
/** Columns per thread (one vec4 accumulator per row). */
const COLS = 4;
/** Threads per workgroup: a multiple of 8 (a SIMD width on CPU drivers) up to 64. */
const MAX_WG = 64;
const WG_STEP = 8;
const BIAS_WG = 64;
/** Tiled variant: 64 columns per workgroup; 64 rows (4 per thread), or 128 (8 per
 *  thread) from TALL rows on, where the extra reuse of each b load outweighs having
 *  half as many workgroups. */
const TILE_N = 64;
const TALL = 1024;

/** The widest workgroup whose last column tile wastes at most 1/8 of the N / 4 column
 *  threads more than the least wasteful width (N = 320 takes 40, not 64 with 3/8 idle). */
function workgroupSize(n: number): number {
  const threads = Math.ceil(n / COLS);
  const waste = (wg: number) => Math.ceil(threads / wg) * wg - threads;
  const widths: number[] = [];
  for (let wg = MAX_WG; wg >= WG_STEP; wg -= WG_STEP) widths.push(wg);
  const least = Math.min(...widths.map(waste));
  return widths.find((wg) => waste(wg) <= least + threads / 8) ?? WG_STEP;
}

function floatDtype(t: Tensor, what: string): 'f32' | 'f16' {
  if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new ShapeError(`${what}: needs a float tensor, got ${t.toString()}`);
  return t.dtype;
}

const sameShape = (x: readonly number[], y: readonly number[]) => x.length === y.length && x.every((d, i) => d === y[i]);
const fmt = (s: readonly number[]) => `[${s.join(',')}]`;

/** out = act(alpha * op(a) op(b) + bias) + residual, batched over leading dims. */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const dtype = floatDtype(a, 'matmul a');
  if (b.dtype !== dtype) throw new ShapeError(`matmul: a is ${a.toString()} but b is ${b.toString()}; cast one so the dtypes match`);
  if (a.shape.length < 2 || b.shape.length < 2) {
    throw new ShapeError(`matmul: a ${fmt(a.shape)} and b ${fmt(b.shape)} must both have rank >= 2 (reshape vectors to [1, K] or [K, 1])`);
  }
  const ra = a.shape.length;
  const rb = b.shape.length;
  const [M, K] = opts.transA ? [a.shape[ra - 1], a.shape[ra - 2]] : [a.shape[ra - 2], a.shape[ra - 1]];
  const [Kb, N] = opts.transB ? [b.shape[rb - 1], b.shape[rb - 2]] : [b.shape[rb - 2], b.shape[rb - 1]];
  if (K !== Kb) {
    throw new ShapeError(
      `matmul: inner dims differ: a ${fmt(a.shape)}${opts.transA ? ' (transposed)' : ''} has K=${K}, b ${fmt(b.shape)}${opts.transB ? ' (transposed)' : ''} has K=${Kb}`,
    );
  }
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  if (aBatch.length && bBatch.length && !sameShape(aBatch, bBatch)) {
    throw new ShapeError(`matmul: batch dims ${fmt(aBatch)} of a and ${fmt(bBatch)} of b differ; make them equal or pass a 2-D operand to broadcast`);
  }
  const batchShape = aBatch.length ? aBatch : bBatch;
  const batch = batchShape.reduce((x, y) => x * y, 1);
  const outShape = [...batchShape, M, N];

  const { bias, residual, out } = opts;
  const biasLen = opts.biasRows ? M : N;
  if (bias && (bias.dtype !== dtype || bias.shape.length !== 1 || bias.shape[0] !== biasLen)) {
    throw new ShapeError(`matmul: bias ${bias.toString()} must be [${biasLen}] ${dtype}${opts.biasRows ? ' (one per output row)' : ''}`);
  }
  if (residual && (residual.dtype !== dtype || !sameShape(residual.shape, outShape))) {
    throw new ShapeError(`matmul: residual ${residual.toString()} must match the output ${fmt(outShape)} ${dtype}`);
  }
  if (opts.accumulate && !out) throw new InputError('matmul: accumulate needs `out` (the tensor to add into)');
  if (out) {
    if (out.dtype !== dtype || !sameShape(out.shape, outShape)) {
      throw new ShapeError(`matmul: out ${out.toString()} must be ${fmt(outShape)} ${dtype}`);
    }
    if (residual && residual.binding.buffer === out.binding.buffer) {
      throw new InputError('matmul: residual is `out` itself; pass accumulate: true instead');
    }
  }
  const c = out ?? Tensor.empty(a.rt, outShape, dtype, 'matmul');
  if (M === 0 || N === 0 || batch === 0) return c;

  const tiled = a.rt.variants.matmul === 'tiled';
  const wg = workgroupSize(N);
  const tm = M >= TALL ? 8 : 4;
  const blocksM = tiled ? Math.ceil(M / (16 * tm)) : Math.ceil(M / ROWS);
  const blocksN = tiled ? Math.ceil(N / TILE_N) : Math.ceil(N / (COLS * wg));
  const activation = opts.activation ?? 'none';
  a.rt.dispatch(
    {
      family: tiled ? 'matmul_tiled' : 'matmul',
      entry: tiled ? 'matmul_tiled_forward' : 'matmul_forward',
      dtype,
      overrides: {
        ...(tiled ? { TM: tm } : { WG: wg }),
        TRANS_A: opts.transA ? 1 : 0,
        TRANS_B: opts.transB ? 1 : 0,
        HAS_BIAS: bias ? 1 : 0,
        ...(bias && opts.biasRows ? { BIAS_ROWS: 1 } : {}),
        HAS_RESIDUAL: residual ? 1 : 0,
        ACCUMULATE: opts.accumulate ? 1 : 0,
        A_VEC: !opts.transA && K % 4 === 0 ? 1 : opts.transA && M % 4 === 0 ? 2 : 0,
        B_VEC: !opts.transB && N % 4 === 0 ? 1 : opts.transB && K % 4 === 0 ? 2 : 0,
        ACT: ACT[activation],
      },
    },
    {
      params: [M, N, K, batch, aBatch.length ? M * K : 0, bBatch.length ? K * N : 0, blocksM, blocksN, f32(opts.alpha ?? 1)],
      // a and b go in twice (scalar and vec4 views). Absent bias/residual bind `a`
      // again (read-only aliasing is allowed); the shader never reads them then.
      bindings: [a.binding, a.binding, b.binding, b.binding, (bias ?? a).binding, (residual ?? a).binding, c.binding],
      workgroups: batch * blocksM * blocksN,
      label: `${opts.label ?? (tiled ? 'matmul_tiled_forward' : 'matmul_forward')}[${batch}x${M}x${N}x${K}${opts.transA ? ',tA' : ''}${opts.transB ? ',tB' : ''}]`,
    },
  );
  return c;
}

/** y = act(x W^T + bias): x [..., in], weight [out, in] (PyTorch layout) -> [..., out]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor, activation?: Activation): Tensor {
  const { rows, inFeatures, outFeatures } = linearDims(x, weight, 'linear');
  const x2 = x.reshape([rows, inFeatures]);
  const y2 = matmul(x2, weight, { transB: true, bias, activation });
  const y = y2.reshape([...x.shape.slice(0, -1), outFeatures]);
  x2.dispose();
  y2.dispose();
  return y;
}

/** Gradients of y = x W^T + b given dy = dL/dy. A fused activation is not
 *  differentiated here: apply its backward (unaryBackward) to dy first.
 *  dx = dy W [..., in]; dweight = dy^T x [out, in], summed over all leading dims;
 *  dbias = column sums of dy [out]. With accumulate, adds into the given dweight/dbias. */
export function linearBackward(
  x: Tensor,
  weight: Tensor,
  dy: Tensor,
  opts: { bias?: boolean; dweight?: Tensor; dbias?: Tensor; accumulate?: boolean } = {},
): { dx: Tensor; dweight: Tensor; dbias?: Tensor } {
  const { rows, inFeatures, outFeatures } = linearDims(x, weight, 'linearBackward');
  if (!sameShape(dy.shape, [...x.shape.slice(0, -1), outFeatures])) {
    throw new ShapeError(`linearBackward: dy ${fmt(dy.shape)} must be ${fmt([...x.shape.slice(0, -1), outFeatures])} (x ${fmt(x.shape)}, weight ${fmt(weight.shape)})`);
  }
  if (opts.accumulate && (!opts.dweight || ((opts.bias || opts.dbias) && !opts.dbias))) {
    throw new InputError('linearBackward: accumulate needs the dweight (and dbias) tensors to add into');
  }
  const x2 = x.reshape([rows, inFeatures]);
  const dy2 = dy.reshape([rows, outFeatures]);
  const dx2 = matmul(dy2, weight);
  const dx = dx2.reshape(x.shape);
  const dweight = matmul(dy2, x2, { transA: true, out: opts.dweight, accumulate: opts.accumulate });
  let dbias: Tensor | undefined;
  if (opts.bias || opts.dbias) dbias = columnSums(x.rt, dy2, opts.dbias, opts.accumulate ?? false);
  x2.dispose();
  dy2.dispose();
  dx2.dispose();
  return dbias ? { dx, dweight, dbias } : { dx, dweight };
}

function linearDims(x: Tensor, weight: Tensor, what: string) {
  floatDtype(x, `${what} x`);
  if (weight.shape.length !== 2 || x.shape.length < 1 || x.shape[x.shape.length - 1] !== weight.shape[1]) {
    throw new ShapeError(`${what}: x ${fmt(x.shape)} must end in weight's in_features; weight ${fmt(weight.shape)} must be [out_features, in_features]`);
  }
  const [outFeatures, inFeatures] = weight.shape;
  return { rows: x.size / inFeatures, inFeatures, outFeatures };
}

/** dbias[n] (+)= sum_r dy[r, n] for dy [R, N]. */
function columnSums(rt: Runtime, dy: Tensor, into: Tensor | undefined, accumulate: boolean): Tensor {
  const [R, N] = dy.shape;
  if (into && (into.dtype !== dy.dtype || !sameShape(into.shape, [N]))) {
    throw new ShapeError(`linearBackward: dbias ${into.toString()} must be [${N}] ${dy.dtype}`);
  }
  const dbias = into ?? Tensor.empty(rt, [N], dy.dtype, 'linear.dbias');
  rt.dispatch(
    { family: 'matmul', entry: 'matmul_backward_bias', dtype: floatDtype(dy, 'dy'), overrides: { WG: BIAS_WG, ACCUMULATE: accumulate ? 1 : 0 } },
    {
      params: [R, N, 0, 1, 0, 0, 0, 0, f32(1)],
      bindings: [dy.binding, dbias.binding],
      workgroups: Math.ceil(N / BIAS_WG),
      label: `matmul_backward_bias[${R}x${N}]`,
    },
  );
  return dbias;
}
