// 2-D convolution (NCHW, PyTorch weights [Cout, Cin, KH, KW]) with a fused epilogue
// (bias, activation, residual, 1/outputScale), and its backward (dx, dweight, dbias).
// Kernels: shaders/conv2d.wgsl (forward 'direct', zero-padding copy),
// shaders/conv2d_igemm.wgsl (forward 'igemm'), shaders/conv2d_backward.wgsl. The forward
// kernel is rt.variants.conv2d (gpu/variants.ts): 'direct', 'igemm' or 'gemm' (im2col
// copy, shaders/conv2d_gemm.wgsl, then nn/matmul) when forced, else 'auto' picks per shape
// (autoConv2dVariant below; the backward's dx always runs 'direct').
//
// Shapes: x [N, Cin, H, W], weight [Cout, Cin, KH, KW], bias [Cout],
// y [N, Cout, Ho, Wo] with Ho = floor((H + 2*pad - KH) / stride) + 1 (same for Wo).
// The direct kernel reads a zero-padded copy of x whose rows are a multiple of 4 wide,
// so it needs no edge tests; the copy is skipped when x already has that layout
// (padding 0, W % 4 == 0, e.g. SD's 1x1 convs). The implicit GEMM reads a zero-padded
// copy of any width (none at padding 0), or in channels-last mode a padded NHWC copy and
// a packed weight (igemmNhwc). dx is the direct forward kernel over dy
// dilated by the stride and padded by K - 1 - pad, with flipped, transposed weights.
// Tensors bigger than the storage binding limit are processed a few samples at a time,
// each chunk bound as a byte range (aligned down; the kernels take an element offset).
import { InputError, LimitError, ShapeError, formatBytes } from '../gpu/errors.js';
import { f32, i32 } from '../gpu/params.js';
import type { Runtime } from '../gpu/runtime.js';
import type { BufferBinding } from '../gpu/recorder.js';
import { BYTES, Tensor } from '../tensor/tensor.js';
import { ACT, unary, type Activation } from './elementwise.js';
import { matmul } from './matmul.js';

export interface Conv2dOptions {
  /** 1 or 2 (default 1); any stride with 3 * stride + kernel width <= 16 works. */
  stride?: number;
  /** Symmetric zero padding (default 0); SD uses 1 for 3x3, 0 for 1x1. */
  padding?: number;
  /** Fused after the bias (ACT codes from nn/elementwise). */
  activation?: Activation;
  /** Same shape as the output, added after the activation. */
  residual?: Tensor;
  /** Output multiplied by 1/outputScale at the end (diffusers output_scale_factor). */
  outputScale?: number;
  /** @internal Tests: a binding limit below the adapter's, to force the batch split. */
  maxBindingBytes?: number;
  /** @internal Tests and benchmarks: the implicit GEMM's input layout (default:
   *  channels-last when Cin % 4 == 0, else NCHW). */
  igemmLayout?: 'nchw' | 'nhwc';
}

export interface Conv2dBackwardOptions {
  stride?: number;
  padding?: number;
  /** Also return dbias. */
  bias?: boolean;
  /** Gradient tensors to write (or, with accumulate, add) into. */
  dweight?: Tensor;
  dbias?: Tensor;
  accumulate?: boolean;
  /** @internal Tests: a binding limit below the adapter's, to force the batch split. */
  maxBindingBytes?: number;
}

/** Output channels per thread (RM in the shaders). */
const RM = 4 * 2;
/** Threads per workgroup. One width for every shape: each specialisation costs seconds
 *  of shader compilation on CPU drivers, more than idle lanes cost small images. */
const WG = 64;
const PAD_WG = 256;
const BIAS_WG = 64;
/** Input values one thread holds per row (SPAN_MAX in the shaders). */
const SPAN_MAX = 16;

interface Geometry {
  N: number; Cin: number; H: number; W: number;
  Cout: number; KH: number; KW: number;
  S: number; pad: number; Ho: number; Wo: number;
  dtype: 'f32' | 'f16';
}

/** A binding of some samples of a tensor and the element offset of the first one. */
interface Slice { binding: BufferBinding; base: number }

const fmt = (s: readonly number[]) => `[${s.join(',')}]`;
const ceilTo = (v: number, m: number) => Math.ceil(v / m) * m;
const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

function geometry(x: Tensor, weight: Tensor, stride: number, padding: number, what: string): Geometry {
  if (x.dtype !== 'f32' && x.dtype !== 'f16') throw new ShapeError(`${what}: x must be a float tensor, got ${x.toString()}`);
  if (weight.dtype !== x.dtype) throw new ShapeError(`${what}: weight ${weight.toString()} must have x's dtype ${x.dtype}`);
  if (x.shape.length !== 4 || weight.shape.length !== 4 || x.shape[1] !== weight.shape[1]) {
    throw new ShapeError(`${what}: x ${fmt(x.shape)} must be [N, Cin, H, W] and weight ${fmt(weight.shape)} [Cout, Cin, KH, KW] with the same Cin`);
  }
  const [N, Cin, H, W] = x.shape;
  const [Cout, , KH, KW] = weight.shape;
  if (!Number.isInteger(stride) || stride < 1 || 3 * stride + KW > SPAN_MAX || 3 * stride + 4 > SPAN_MAX) {
    throw new InputError(`${what}: stride ${stride} with kernel width ${KW} is not supported (need an integer stride >= 1 with 3 * stride + max(KW, 4) <= ${SPAN_MAX})`);
  }
  if (!Number.isInteger(padding) || padding < 0 || padding >= KH || padding >= KW) {
    throw new InputError(`${what}: padding ${padding} must be an integer in [0, kernel size - 1] for a ${KH}x${KW} kernel`);
  }
  const Ho = Math.floor((H + 2 * padding - KH) / stride) + 1;
  const Wo = Math.floor((W + 2 * padding - KW) / stride) + 1;
  if (Ho < 1 || Wo < 1 || Cout < 1 || Cin < 1) {
    throw new ShapeError(`${what}: x ${fmt(x.shape)} with weight ${fmt(weight.shape)}, padding ${padding}, stride ${stride} gives an empty output`);
  }
  return { N, Cin, H, W, Cout, KH, KW, S: stride, pad: padding, Ho, Wo, dtype: x.dtype };
}

/** Row length of the padded input: the padded width rounded to vec4, and room for the
 *  vec4 loads of the last quad (the forward reads ceil((3S + KW) / 4) vec4 from the
 *  quad's first tap, the weight gradient ceil(KW / 4) - 1 + ceil((3S + min(KW, 4)) / 4)). */
function paddedWidth(W: number, pad: number, S: number, KW: number, Wo: number, weightGrad: boolean): number {
  const nv = weightGrad ? Math.ceil(KW / 4) - 1 + Math.ceil((3 * S + Math.min(KW, 4)) / 4) : Math.ceil((3 * S + KW) / 4);
  return Math.max(ceilTo(W + 2 * pad, 4), (Math.ceil(Wo / 4) - 1) * 4 * S + 4 * nv);
}

/** Samples per dispatch so that every per-sample binding fits `limit`; all of them
 *  when the whole tensors fit. Throws naming the tensor when one sample does not. */
function samplesPerChunk(rt: Runtime, N: number, perSample: [string, number][], limit: number, what: string): number {
  if (perSample.every(([, b]) => b * N <= limit)) return N;
  const align = rt.limits.minStorageBufferOffsetAlignment;
  const [name, worst] = perSample.reduce((a, b) => (b[1] > a[1] ? b : a));
  const n = Math.floor((limit - align) / worst);
  if (n < 1) {
    throw new LimitError(
      `${what}: one sample of ${name} takes ${formatBytes(worst)}, more than the storage binding limit ${formatBytes(limit)} on ${rt.adapterName}; use a smaller image or fewer channels`,
    );
  }
  return n;
}

/** Samples n0 .. n0+count of t (sampleElems elements each) as an aligned byte range. */
function slice(t: Tensor, n0: number, count: number, sampleElems: number): Slice {
  const el = BYTES[t.dtype];
  if (n0 === 0 && count === t.shape[0]) return { binding: t.binding, base: 0 };
  const start = n0 * sampleElems * el;
  const at = Math.floor(start / t.rt.limits.minStorageBufferOffsetAlignment) * t.rt.limits.minStorageBufferOffsetAlignment;
  const end = Math.min(ceilTo(start + count * sampleElems * el, 4), ceilTo(t.bytes, 4));
  return { binding: t.range(at, end - at), base: (start - at) / el };
}

/** dst [planes, hd, wd] = src planes placed at (top, left) with the given dilation,
 *  zeros elsewhere. */
function padInto(src: Slice, dst: Tensor, planes: number, hs: number, ws: number, hd: number, wd: number, top: number, left: number, stride: number): void {
  const total = planes * hd * wd;
  dst.rt.dispatch(
    { family: 'conv2d', entry: 'conv2d_pad_input', dtype: dst.dtype as 'f32' | 'f16', overrides: { WG: PAD_WG } },
    {
      params: [total, hs, ws, hd, wd, i32(top), i32(left), stride, src.base],
      bindings: [src.binding, dst.range(0, ceilTo(total * BYTES[dst.dtype], 4))],
      workgroups: Math.ceil(total / PAD_WG),
      label: `conv2d_pad_input[${planes}x${hs}x${ws}->${hd}x${wd},s${stride}]`,
    },
  );
}

interface ForwardArgs {
  rt: Runtime; dtype: 'f32' | 'f16'; batch: number;
  cin: number; cout: number; hp: number; wp: number; ho: number; wo: number;
  KH: number; KW: number; S: number;
  x: Slice; weight: Tensor; bias?: Tensor; residual?: Slice; y: Slice;
  activation: Activation; invScale: number;
}

/** One conv2d_forward dispatch over `batch` samples of an already padded input. */
function forwardDispatch(a: ForwardArgs): void {
  const quads = Math.ceil(a.wo / 4);
  const blocksCo = Math.ceil(a.cout / RM);
  const blocksQ = Math.ceil((a.ho * quads) / WG);
  a.rt.dispatch(
    {
      family: 'conv2d',
      entry: 'conv2d_forward',
      dtype: a.dtype,
      overrides: {
        WG, KH: a.KH, KW: a.KW, STRIDE: a.S,
        HAS_BIAS: a.bias ? 1 : 0, HAS_RESIDUAL: a.residual ? 1 : 0, ACT: ACT[a.activation],
      },
    },
    {
      params: [a.cin, a.cout, a.hp, a.wp / 4, a.ho, a.wo, quads, blocksCo, blocksQ, a.batch,
        a.x.base / 4, a.y.base, a.residual?.base ?? 0, f32(a.invScale)],
      // Absent bias/residual bind the weight again; the shader never reads them then.
      bindings: [a.x.binding, a.weight.binding, (a.bias ?? a.weight).binding, a.residual?.binding ?? a.weight.binding, a.y.binding],
      workgroups: blocksCo * blocksQ * a.batch,
      label: `conv2d_forward[${a.batch}x${a.cin}x${a.hp}x${a.wp}->${a.cout}x${a.ho}x${a.wo},k${a.KH}x${a.KW},s${a.S}]`,
    },
  );
}

/** Implicit-GEMM forward: pixels per workgroup (RP in conv2d_igemm.wgsl) and output
 *  channels per lane. */
const IG_RP = 8;
const IG_COLS = 4;
const IG_MAX_WG = 64;
const IG_WG_STEP = 8;

/** The widest igemm workgroup (a multiple of 8 lanes up to 64) whose last channel block
 *  wastes at most 1/8 of the lanes more than the least wasteful width (as matmul's). */
function igemmWorkgroup(cout: number): number {
  const lanes = Math.ceil(cout / IG_COLS);
  const waste = (wg: number) => Math.ceil(lanes / wg) * wg - lanes;
  const widths: number[] = [];
  for (let wg = IG_MAX_WG; wg >= IG_WG_STEP; wg -= IG_WG_STEP) widths.push(wg);
  const least = Math.min(...widths.map(waste));
  return widths.find((wg) => waste(wg) <= least + lanes / 8) ?? IG_WG_STEP;
}

/** Below this share of useful lanes in the direct kernel, 'auto' runs the implicit GEMM.
 *  On lavapipe the two ran within the machine's noise of each other where the direct
 *  kernel fills its lanes (32x32, 16x16, 64x64 maps), and the implicit GEMM 3-10x faster
 *  at the UNet's 8x8 and 4x4 maps (docs/PERFORMANCE.md, "Implicit-GEMM convolution"). */
const DIRECT_MIN_USE = 0.7;

/** Whether 'auto' runs the implicit GEMM for this output size: when the direct kernel
 *  would compute mostly idle lanes (its 64 lanes span the (row, 4-column quad) positions
 *  of one image, so a 4x4 output uses 16 of 256 lane-columns, an 8x8 one 64). */
export function useIgemm(g: { Ho: number; Wo: number }): boolean {
  const quads = g.Ho * Math.ceil(g.Wo / 4);
  const used = (g.Ho * g.Wo) / (Math.ceil(quads / WG) * WG * 4);
  return used < DIRECT_MIN_USE;
}

/** The implicit GEMM's input layout: channels-last (Cin % 4 == 0) once the weight is
 *  reused over enough pixels to repay packing it (on lavapipe, 2x1280x8x8 outputs ran
 *  faster channels-last, 2x1280x4x4 ones faster without the packing pass). */
function igemmLayout(g: Geometry): 'nchw' | 'nhwc' {
  return g.Cin % 4 === 0 && g.N * g.Ho * g.Wo >= 64 ? 'nhwc' : 'nchw';
}

/** One conv2d_igemm_forward dispatch over `batch` samples of an already padded input. */
function igemmDispatch(a: ForwardArgs): void {
  const pixels = a.batch * a.ho * a.wo;
  const wg = igemmWorkgroup(a.cout);
  const blocksP = Math.ceil(pixels / IG_RP);
  const blocksC = Math.ceil(a.cout / (IG_COLS * wg));
  const wVec = (a.cin * a.KH * a.KW) % 4 === 0;
  // The vec4 view needs a binding of at least one vec4 even when unused (W_VEC 0); a
  // weight smaller than that (under 4 values) binds a scratch vec4 there instead.
  const tiny = !wVec && a.weight.bytes < 4 * BYTES[a.dtype] ? Tensor.empty(a.rt, [4], a.dtype, 'conv2d.unused_vec4') : undefined;
  a.rt.dispatch(
    {
      family: 'conv2d_igemm',
      entry: 'conv2d_igemm_forward',
      dtype: a.dtype,
      overrides: {
        WG: wg, KH: a.KH, KW: a.KW, STRIDE: a.S, W_VEC: wVec ? 1 : 0,
        HAS_BIAS: a.bias ? 1 : 0, HAS_RESIDUAL: a.residual ? 1 : 0, ACT: ACT[a.activation],
      },
    },
    {
      params: [a.cin, a.cout, a.hp, a.wp, a.ho, a.wo, pixels, blocksP, blocksC, a.batch,
        a.x.base, a.y.base, a.residual?.base ?? 0, f32(a.invScale)],
      // The weight goes in twice (scalar and vec4 views). Absent bias/residual bind the
      // weight again; the shader never reads them then.
      bindings: [a.x.binding, a.weight.binding, (tiny ?? a.weight).binding, (a.bias ?? a.weight).binding, a.residual?.binding ?? a.weight.binding, a.y.binding],
      workgroups: blocksP * blocksC,
      label: `conv2d_igemm_forward[${a.batch}x${a.cin}x${a.hp}x${a.wp}->${a.cout}x${a.ho}x${a.wo},k${a.KH}x${a.KW},s${a.S}]`,
    },
  );
  tiny?.dispose();
}

/** y = (act(conv2d(x, weight) + bias) + residual) / outputScale. x [N, Cin, H, W] ->
 *  [N, Cout, Ho, Wo]. Inference and training forward (backward needs only x). */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor, opts: Conv2dOptions = {}): Tensor {
  const g = geometry(x, weight, opts.stride ?? 1, opts.padding ?? 0, 'conv2d');
  const { rt } = x;
  const { N, Cin, H, W, Cout, Ho, Wo, dtype } = g;
  const outShape = [N, Cout, Ho, Wo];
  if (bias && (bias.dtype !== dtype || !sameShape(bias.shape, [Cout]))) throw new ShapeError(`conv2d: bias ${bias.toString()} must be [${Cout}] ${dtype}`);
  const { residual } = opts;
  if (residual && (residual.dtype !== dtype || !sameShape(residual.shape, outShape))) {
    throw new ShapeError(`conv2d: residual ${residual.toString()} must match the output ${fmt(outShape)} ${dtype}`);
  }
  const limit = opts.maxBindingBytes ?? rt.limits.maxStorageBufferBindingSize;
  if (weight.bytes > limit) throw new LimitError(`conv2d: weight ${fmt(weight.shape)} (${formatBytes(weight.bytes)}) exceeds the storage binding limit ${formatBytes(limit)} on ${rt.adapterName}`);

  const el = BYTES[dtype];
  const variant = rt.variants.conv2d;
  if (variant === 'gemm' || (variant === 'auto' && autoConv2dVariant(g, opts.outputScale) === 'gemm')) return conv2dGemm(x, weight, bias, g, opts, limit);
  const igemm = variant === 'igemm' || (variant === 'auto' && useIgemm(g));
  if (igemm && (opts.igemmLayout ?? igemmLayout(g)) === 'nhwc') {
    if (Cin % 4 !== 0) throw new InputError(`conv2d: the channels-last implicit GEMM needs Cin % 4 == 0, got ${Cin}`);
    return igemmNhwc(x, weight, bias, g, opts, limit);
  }
  // The implicit GEMM reads any row length: only padding needs the copy.
  const wp = igemm ? W + 2 * g.pad : paddedWidth(W, g.pad, g.S, g.KW, Wo, false);
  const copy = igemm ? g.pad > 0 : g.pad > 0 || W % 4 !== 0 || wp > W;
  const hp = H + 2 * g.pad;
  const perSample: [string, number][] = [['x', Cin * H * W * el], ['y', Cout * Ho * Wo * el]];
  if (residual) perSample.push(['residual', Cout * Ho * Wo * el]);
  if (copy) perSample.push(['padded x', Cin * hp * wp * el]);
  const chunk = samplesPerChunk(rt, N, perSample, limit, 'conv2d');

  const y = Tensor.empty(rt, outShape, dtype, 'conv2d');
  const xp = copy ? Tensor.empty(rt, [Math.min(chunk, N), Cin, hp, wp], dtype, 'conv2d.padded_x') : undefined;
  for (let n0 = 0; n0 < N; n0 += chunk) {
    const cnt = Math.min(chunk, N - n0);
    const xs = slice(x, n0, cnt, Cin * H * W);
    if (xp) padInto(xs, xp, cnt * Cin, H, W, hp, wp, g.pad, g.pad, 1);
    (igemm ? igemmDispatch : forwardDispatch)({
      rt, dtype, batch: cnt, cin: Cin, cout: Cout, hp: copy ? hp : H, wp: copy ? wp : W, ho: Ho, wo: Wo,
      KH: g.KH, KW: g.KW, S: g.S,
      x: xp ? { binding: xp.binding, base: 0 } : xs, weight, bias,
      residual: residual ? slice(residual, n0, cnt, Cout * Ho * Wo) : undefined,
      y: slice(y, n0, cnt, Cout * Ho * Wo),
      activation: opts.activation ?? 'none', invScale: 1 / (opts.outputScale ?? 1),
    });
  }
  xp?.dispose();
  return y;
}

/** Bytes of the im2col matrix the 'gemm' variant materialises at once (a band of output
 *  rows at a time past it): large enough that SD's UNet convolutions at 512x512 run as one
 *  product, small beside the models' peak memory. */
const GEMM_COLS_BYTES = 64 * 2 ** 20;

/** What 'auto' runs for an output size: the implicit GEMM on small maps (useIgemm, where
 *  the direct kernel leaves lanes idle), else the explicit im2col + matmul ('gemm'), unless
 *  there is an outputScale (which the matmul epilogue cannot apply after the residual:
 *  then the direct kernel). On lavapipe the im2col + matmul runs SD's 3x3 convolutions at
 *  1.5-2x the direct kernel's GFLOP/s for a copy of Cin*KH*KW*Ho*Wo values
 *  (docs/PERFORMANCE.md, "Convolution as im2col + matmul"). */
export function autoConv2dVariant(g: { Ho: number; Wo: number }, outputScale = 1): 'igemm' | 'gemm' | 'direct' {
  if (useIgemm(g)) return 'igemm';
  return outputScale === 1 ? 'gemm' : 'direct';
}

/** The 'gemm' variant: y[n] = weight [Cout, Cin*KH*KW] x cols[n] [Cin*KH*KW, Ho*Wo] with
 *  the bias per row, activation and residual in the matmul's epilogue. All samples in one
 *  product when their im2col matrices fit GEMM_COLS_BYTES (a 1x1, stride-1, unpadded
 *  convolution multiplies x itself), else one sample and a band of output rows at a time
 *  (the band's output pasted into y, the residual's band cropped out for the epilogue). */
function conv2dGemm(x: Tensor, weight: Tensor, bias: Tensor | undefined, g: Geometry, opts: Conv2dOptions, limit: number): Tensor {
  const { rt } = x;
  const { N, Cin, H, W, Cout, KH, KW, S, pad, Ho, Wo, dtype } = g;
  const el = BYTES[dtype];
  const K = Cin * KH * KW;
  const P = Ho * Wo;
  const { residual } = opts;
  const activation = opts.activation ?? 'none';
  const budget = Math.min(limit, GEMM_COLS_BYTES);
  const pointwise = KH === 1 && KW === 1 && S === 1 && pad === 0;
  const y = Tensor.empty(rt, [N, Cout, Ho, Wo], dtype, 'conv2d');
  const w2 = weight.reshape([Cout, K]);
  const epilogue = { bias, biasRows: true, activation, label: 'conv2d_gemm' };
  const fits = (t: Tensor) => t.bytes <= limit;
  if ((pointwise ? fits(x) : N * K * P * el <= budget) && fits(y) && (!residual || fits(residual))) {
    const cols = pointwise ? x.reshape([N, K, P]) : im2col(x, { binding: x.binding, base: 0 }, N, g, 0, Ho);
    const yv = y.reshape([N, Cout, P]);
    const rv = residual?.reshape([N, Cout, P]);
    matmul(w2, cols, { ...epilogue, residual: rv, out: yv });
    for (const t of [cols, yv, rv]) t?.dispose();
  } else {
    const rows = Math.max(1, Math.min(Ho, Math.floor(budget / (K * Wo * el))));
    if (Cout * rows * Wo * el > limit) throw new LimitError(`conv2d: a row of the output (${Cout}x${Wo}) exceeds the storage binding limit ${formatBytes(limit)} on ${rt.adapterName}`);
    samplesPerChunk(rt, 1, [['x', Cin * H * W * el], ['y', Cout * P * el]], limit, 'conv2d');
    for (let n = 0; n < N; n++) {
      const xs = slice(x, n, 1, Cin * H * W);
      const ys = slice(y, n, 1, Cout * P);
      const rs = residual ? slice(residual, n, 1, Cout * P) : undefined;
      for (let r0 = 0; r0 < Ho; r0 += rows) {
        const nr = Math.min(rows, Ho - r0);
        const band = im2col(x, xs, 1, g, r0, nr);
        const cols = band.reshape([K, nr * Wo]);
        band.dispose(); // the view holds the buffer; it goes back with the view below
        const rb = rs ? bandMove(rs, Tensor.empty(rt, [Cout, nr * Wo], dtype, 'conv2d.residual_band'), Cout, g, r0, nr, false) : undefined;
        const yb = matmul(w2, cols, { ...epilogue, residual: rb });
        bandMove(ys, yb, Cout, g, r0, nr, true);
        for (const t of [cols, rb, yb]) t?.dispose();
      }
    }
  }
  w2.dispose();
  const scale = opts.outputScale ?? 1;
  if (scale === 1) return y;
  const scaled = unary(y, 'none', 1 / scale);
  y.dispose();
  return scaled;
}

/** cols [batch, Cin*KH*KW, rows*Wo]: the im2col matrix of output rows r0 .. r0+rows-1 of
 *  `batch` samples of x (conv2d_gemm.wgsl conv2d_im2col). */
function im2col(x: Tensor, src: Slice, batch: number, g: Geometry, r0: number, rows: number): Tensor {
  const K = g.Cin * g.KH * g.KW;
  const band = rows * g.Wo;
  const cols = Tensor.empty(x.rt, [batch, K, band], g.dtype, 'conv2d.im2col');
  // Four pixels of one output row per thread (a vec4 store) when rows have a multiple of 4.
  const vec = g.Wo % 4 === 0 ? 4 : 1;
  const total = (batch * K * band) / vec;
  x.rt.dispatch(
    { family: 'conv2d_gemm', entry: vec === 4 ? 'conv2d_im2col4' : 'conv2d_im2col', dtype: g.dtype, overrides: { WG: PAD_WG, KH: g.KH, KW: g.KW, STRIDE: g.S } },
    {
      params: [total, g.Cin, g.H, g.W, g.Wo, band, r0, g.pad, src.base],
      bindings: [src.binding, cols.binding],
      workgroups: Math.ceil(total / PAD_WG),
      label: `conv2d_im2col[${batch}x${g.Cin}x${g.H}x${g.W}->${K}x${band},k${g.KH}x${g.KW},s${g.S}]`,
    },
  );
  return cols;
}

/** Moves output rows r0 .. r0+rows-1 of one NCHW sample `t` between it and the band
 *  matrix [C, rows*Wo]: into t (toNchw) or out of it. Returns the band matrix. */
function bandMove(t: Slice, bandT: Tensor, C: number, g: Geometry, r0: number, rows: number, toNchw: boolean): Tensor {
  const band = rows * g.Wo;
  const total = C * band;
  bandT.rt.dispatch(
    { family: 'conv2d_gemm', entry: 'conv2d_gemm_band', dtype: g.dtype, overrides: { WG: PAD_WG, TO_NCHW: toNchw ? 1 : 0 } },
    {
      params: [total, band, g.Ho * g.Wo, r0 * g.Wo, t.base],
      bindings: toNchw ? [bandT.binding, t.binding] : [t.binding, bandT.binding],
      workgroups: Math.ceil(total / PAD_WG),
      label: `conv2d_gemm_band[${C}x${rows}x${g.Wo}${toNchw ? ' paste' : ' crop'}]`,
    },
  );
  return bandT;
}

/** The implicit GEMM in channels-last mode (conv2d_igemm_nhwc): x padded and transposed
 *  to [N, HP, WP, Cin] a chunk of samples at a time, the weight packed to [Cout, KH, KW,
 *  Cin] once per call. Needs Cin % 4 == 0. */
function igemmNhwc(x: Tensor, weight: Tensor, bias: Tensor | undefined, g: Geometry, opts: Conv2dOptions, limit: number): Tensor {
  const { rt } = x;
  const { N, Cin, H, W, Cout, KH, KW, S, pad, Ho, Wo, dtype } = g;
  const el = BYTES[dtype];
  const hp = H + 2 * pad;
  const wp = W + 2 * pad;
  const { residual } = opts;
  const perSample: [string, number][] = [['x', Cin * H * W * el], ['y', Cout * Ho * Wo * el], ['channels-last x', Cin * hp * wp * el]];
  if (residual) perSample.push(['residual', Cout * Ho * Wo * el]);
  const chunk = samplesPerChunk(rt, N, perSample, limit, 'conv2d');
  const taps = KH * KW;
  const y = Tensor.empty(rt, [N, Cout, Ho, Wo], dtype, 'conv2d');
  const wt = Tensor.empty(rt, [Cout, KH, KW, Cin], dtype, 'conv2d.packed_weight');
  const pack = (entry: string, src: Slice, dst: Tensor, total: number, p: number[], label: string) => rt.dispatch(
    { family: 'conv2d_igemm', entry, dtype, overrides: { WG: PAD_WG } },
    { params: [total, ...p, src.base], bindings: [src.binding, dst.range(0, ceilTo(total * el, 4))], workgroups: Math.ceil(total / PAD_WG), label },
  );
  // Four input channels per thread (channels-last mode has Cin % 4 == 0).
  rt.dispatch(
    { family: 'conv2d_igemm', entry: 'conv2d_igemm_pack_weight4', dtype, overrides: { WG: PAD_WG } },
    {
      params: [weight.size / 4, Cin, taps, 0, 0, 0, 0, 0], bindings: [weight.binding, wt.range(0, weight.size * el)],
      workgroups: Math.ceil(weight.size / 4 / PAD_WG), label: `conv2d_igemm_pack_weight[${fmt(weight.shape)}]`,
    },
  );
  const xh = Tensor.empty(rt, [Math.min(chunk, N), hp, wp, Cin], dtype, 'conv2d.channels_last_x');
  const wg = igemmWorkgroup(Cout);
  const blocksC = Math.ceil(Cout / (IG_COLS * wg));
  const activation = opts.activation ?? 'none';
  for (let n0 = 0; n0 < N; n0 += chunk) {
    const cnt = Math.min(chunk, N - n0);
    const xs = slice(x, n0, cnt, Cin * H * W);
    pack('conv2d_igemm_pad_nhwc', xs, xh, cnt * hp * wp * Cin, [Cin, H, W, hp, wp, pad], `conv2d_igemm_pad_nhwc[${cnt}x${Cin}x${H}x${W}->${hp}x${wp}]`);
    const pixels = cnt * Ho * Wo;
    const blocksP = Math.ceil(pixels / IG_RP);
    const r = residual ? slice(residual, n0, cnt, Cout * Ho * Wo) : undefined;
    const ys = slice(y, n0, cnt, Cout * Ho * Wo);
    rt.dispatch(
      {
        family: 'conv2d_igemm',
        entry: 'conv2d_igemm_nhwc',
        dtype,
        overrides: { WG: wg, KH, KW, STRIDE: S, HAS_BIAS: bias ? 1 : 0, HAS_RESIDUAL: r ? 1 : 0, ACT: ACT[activation] },
      },
      {
        params: [Cin, Cout, hp, wp, Ho, Wo, pixels, blocksP, blocksC, cnt, 0, ys.base, r?.base ?? 0, f32(1 / (opts.outputScale ?? 1))],
        bindings: [xh.range(0, cnt * hp * wp * Cin * el), wt.binding, (bias ?? wt).binding, r?.binding ?? wt.binding, ys.binding],
        workgroups: blocksP * blocksC,
        label: `conv2d_igemm_nhwc[${cnt}x${Cin}x${hp}x${wp}->${Cout}x${Ho}x${Wo},k${KH}x${KW},s${S}]`,
      },
    );
  }
  xh.dispose();
  wt.dispose();
  return y;
}

/** Gradients of conv2d given dy = dL/dy [N, Cout, Ho, Wo]. A fused activation, residual
 *  or outputScale is not differentiated here: apply their backward to dy first.
 *  dx [N, Cin, H, W] (transposed convolution); dweight [Cout, Cin, KH, KW] and dbias
 *  [Cout] summed over the batch and pixels. With accumulate, adds into the given
 *  dweight/dbias (gradient accumulation). */
export function conv2dBackward(
  x: Tensor,
  weight: Tensor,
  dy: Tensor,
  opts: Conv2dBackwardOptions = {},
): { dx: Tensor; dweight: Tensor; dbias?: Tensor } {
  const g = geometry(x, weight, opts.stride ?? 1, opts.padding ?? 0, 'conv2dBackward');
  const { rt } = x;
  const { N, Cin, H, W, Cout, KH, KW, S, pad, Ho, Wo, dtype } = g;
  if (dy.dtype !== dtype || !sameShape(dy.shape, [N, Cout, Ho, Wo])) {
    throw new ShapeError(`conv2dBackward: dy ${dy.toString()} must be ${fmt([N, Cout, Ho, Wo])} ${dtype} (x ${fmt(x.shape)}, weight ${fmt(weight.shape)}, stride ${S}, padding ${pad})`);
  }
  const wantBias = opts.bias || opts.dbias !== undefined;
  if (opts.accumulate && (!opts.dweight || (wantBias && !opts.dbias))) {
    throw new InputError('conv2dBackward: accumulate needs the dweight (and dbias) tensors to add into');
  }
  if (opts.dweight && (opts.dweight.dtype !== dtype || !sameShape(opts.dweight.shape, weight.shape))) {
    throw new ShapeError(`conv2dBackward: dweight ${opts.dweight.toString()} must be ${fmt(weight.shape)} ${dtype}`);
  }
  if (opts.dbias && (opts.dbias.dtype !== dtype || !sameShape(opts.dbias.shape, [Cout]))) {
    throw new ShapeError(`conv2dBackward: dbias ${opts.dbias.toString()} must be [${Cout}] ${dtype}`);
  }
  const limit = opts.maxBindingBytes ?? rt.limits.maxStorageBufferBindingSize;
  if (weight.bytes > limit) throw new LimitError(`conv2dBackward: weight ${fmt(weight.shape)} (${formatBytes(weight.bytes)}) exceeds the storage binding limit ${formatBytes(limit)} on ${rt.adapterName}`);

  const el = BYTES[dtype];
  // dx = stride-1 conv of dy dilated by S and padded by K-1-pad (rows hq, row length wq).
  const hq = H + KH - 1;
  const wq = Math.max(ceilTo(W + KW - 1, 4), (Math.ceil(W / 4) - 1) * 4 + 4 * Math.ceil((3 + KW) / 4));
  // Forward input, padded for the weight gradient's loads (copy skipped when x fits).
  const wp = paddedWidth(W, pad, S, KW, Wo, true);
  const copy = pad > 0 || W % 4 !== 0 || wp > W;
  const hp = H + 2 * pad;
  const perSample: [string, number][] = [
    ['x', Cin * H * W * el], ['dy', Cout * Ho * Wo * el], ['dx', Cin * H * W * el], ['dilated dy', Cout * hq * wq * el],
  ];
  if (copy) perSample.push(['padded x', Cin * hp * wp * el]);
  const chunk = samplesPerChunk(rt, N, perSample, limit, 'conv2dBackward');

  const dx = Tensor.empty(rt, [N, Cin, H, W], dtype, 'conv2d.dx');
  const dweight = opts.dweight ?? Tensor.empty(rt, weight.shape, dtype, 'conv2d.dweight');
  const dbias = wantBias ? (opts.dbias ?? Tensor.empty(rt, [Cout], dtype, 'conv2d.dbias')) : undefined;
  const flipped = Tensor.empty(rt, [Cin, Cout, KH, KW], dtype, 'conv2d.flipped_weight');
  rt.dispatch(
    { family: 'conv2d_backward', entry: 'conv2d_flip_weight', dtype, overrides: { WG: PAD_WG, KH, KW } },
    { params: [weight.size, Cout, Cin], bindings: [weight.binding, flipped.binding], workgroups: Math.ceil(weight.size / PAD_WG), label: `conv2d_flip_weight[${fmt(weight.shape)}]` },
  );
  const cnt0 = Math.min(chunk, N);
  const dyp = Tensor.empty(rt, [cnt0, Cout, hq, wq], dtype, 'conv2d.dilated_dy');
  const xp = copy ? Tensor.empty(rt, [cnt0, Cin, hp, wp], dtype, 'conv2d.padded_x') : undefined;
  for (let n0 = 0; n0 < N; n0 += chunk) {
    const cnt = Math.min(chunk, N - n0);
    const accumulate = (opts.accumulate ?? false) || n0 > 0;
    const dys = slice(dy, n0, cnt, Cout * Ho * Wo);
    padInto(dys, dyp, cnt * Cout, Ho, Wo, hq, wq, KH - 1 - pad, KW - 1 - pad, S);
    forwardDispatch({
      rt, dtype, batch: cnt, cin: Cout, cout: Cin, hp: hq, wp: wq, ho: H, wo: W, KH, KW, S: 1,
      x: { binding: dyp.binding, base: 0 }, weight: flipped, y: slice(dx, n0, cnt, Cin * H * W),
      activation: 'none', invScale: 1,
    });
    const xs = slice(x, n0, cnt, Cin * H * W);
    if (xp) padInto(xs, xp, cnt * Cin, H, W, hp, wp, pad, pad, 1);
    weightGrad(rt, g, xp ? { binding: xp.binding, base: 0 } : xs, copy ? hp : H, copy ? wp : W, dys, dweight, cnt, accumulate);
    if (dbias) biasGrad(rt, g, dys, dbias, cnt, accumulate);
  }
  flipped.dispose();
  dyp.dispose();
  xp?.dispose();
  return dbias ? { dx, dweight, dbias } : { dx, dweight };
}

function weightGrad(rt: Runtime, g: Geometry, xp: Slice, hp: number, wp: number, dy: Slice, dweight: Tensor, batch: number, accumulate: boolean): void {
  const cols = g.Cin * g.KH * Math.ceil(g.KW / 4);
  const blocksCo = Math.ceil(g.Cout / RM);
  rt.dispatch(
    { family: 'conv2d_backward', entry: 'conv2d_backward_weight', dtype: g.dtype, overrides: { WG, KH: g.KH, KW: g.KW, STRIDE: g.S, ACCUMULATE: accumulate ? 1 : 0 } },
    {
      params: [g.Cin, g.Cout, hp, wp / 4, g.Ho, g.Wo, Math.ceil(g.Wo / 4), blocksCo, cols, batch, xp.base / 4, dy.base],
      bindings: [xp.binding, dy.binding, dweight.binding],
      workgroups: blocksCo * Math.ceil(cols / WG),
      label: `conv2d_backward_weight[${batch}x${g.Cin}x${hp}x${wp}->${g.Cout}x${g.Ho}x${g.Wo},k${g.KH}x${g.KW},s${g.S}]`,
    },
  );
}

function biasGrad(rt: Runtime, g: Geometry, dy: Slice, dbias: Tensor, batch: number, accumulate: boolean): void {
  rt.dispatch(
    { family: 'conv2d_backward', entry: 'conv2d_backward_bias', dtype: g.dtype, overrides: { WG: BIAS_WG, ACCUMULATE: accumulate ? 1 : 0 } },
    {
      params: [g.Cout, g.Ho * g.Wo, batch, dy.base],
      bindings: [dy.binding, dbias.binding],
      workgroups: g.Cout,
      label: `conv2d_backward_bias[${batch}x${g.Cout}x${g.Ho}x${g.Wo}]`,
    },
  );
}
