// conv2d benchmark rows (production path: nn/conv2d.ts). The rows cover SD's convs:
//   3x3 s1   ResnetBlock2D conv1/conv2 (padding 1)
//   1x1 s1   proj_in/proj_out and conv_shortcut (the matmul reads x in place)
//   3x3 s2   Downsample2D
// Kernel variants (gpu/variants.ts conv2d): the production rows run the adapter's
// choice ('auto': im2col + the production matmul where the maps are large, the
// implicit GEMM on small maps, the direct kernel only with an outputScale). Rows of
// op conv2d:<variant> force one (rt.variants.with), including the UNet's 8x8 and 4x4
// maps at batch 2 where the variants differ most. Only production rows are judged
// against the targets.
// Run: grounded-sd bench kernels (listed in kernels/index.ts).
// Peer: tf.conv2d on tfjs-backend-webgpu (NHWC; inputs transposed once at setup).
import type * as tfjs from '@tensorflow/tfjs-core';
import { conv2d } from '../../nn/conv2d.js';
import { Tensor } from '../../tensor/tensor.js';
import type { Runtime } from '../../gpu/runtime.js';
import type { VariantName } from '../../gpu/variants.js';
import { conv2dRef, convOut, type ConvDims } from '../../ref/conv2d.js';
import type { BenchCase, BenchInstance, PeerInstance } from './types.js';
import { randomArray, relL2 } from '../data.js';

interface Spec {
  shape: string;
  d: ConvDims;
  /** Forced kernel variant (else the adapter's choice). */
  variant?: VariantName<'conv2d'>;
}

const sd = (Cin: number, Cout: number, HW: number, K: number, stride: number): ConvDims =>
  ({ N: 1, Cin, Cout, H: HW, W: HW, KH: K, KW: K, stride, padding: K === 3 ? 1 : 0 });

const SPECS: Spec[] = [
  { shape: '3x3 320->320 32x32', d: sd(320, 320, 32, 3, 1) },
  { shape: '1x1 320->320 64x64', d: sd(320, 320, 64, 1, 1) },
  { shape: '3x3 640->640 16x16', d: sd(640, 640, 16, 3, 1) },
  { shape: '3x3 s2 320->320 64x64', d: sd(320, 320, 64, 3, 2) },
  { shape: '3x3 320->320 32x32 forced', d: sd(320, 320, 32, 3, 1), variant: 'direct' },
  { shape: '3x3 320->320 32x32 forced', d: sd(320, 320, 32, 3, 1), variant: 'igemm' },
  { shape: '3x3 320->320 32x32 forced', d: sd(320, 320, 32, 3, 1), variant: 'gemm' },
  { shape: '3x3 1280->1280 8x8 N2 forced', d: { ...sd(1280, 1280, 8, 3, 1), N: 2 }, variant: 'direct' },
  { shape: '3x3 1280->1280 8x8 N2 forced', d: { ...sd(1280, 1280, 8, 3, 1), N: 2 }, variant: 'igemm' },
  { shape: '3x3 2560->1280 4x4 N2 forced', d: { ...sd(2560, 1280, 4, 3, 1), N: 2 }, variant: 'direct' },
  { shape: '3x3 2560->1280 4x4 N2 forced', d: { ...sd(2560, 1280, 4, 3, 1), N: 2 }, variant: 'igemm' },
];

function inputs(d: ConvDims) {
  const s = 1 / Math.sqrt(d.Cin * d.KH * d.KW);
  return {
    x: randomArray(d.N * d.Cin * d.H * d.W, 1),
    w: randomArray(d.Cout * d.Cin * d.KH * d.KW, 2, -s, s),
    b: randomArray(d.Cout, 3),
  };
}

/** NCHW -> NHWC and [Cout, Cin, KH, KW] -> [KH, KW, Cin, Cout] for tfjs. */
function toTf(d: ConvDims, data: ReturnType<typeof inputs>) {
  const x = new Float32Array(data.x.length);
  for (let c = 0; c < d.Cin; c++) {
    for (let p = 0; p < d.H * d.W; p++) x[p * d.Cin + c] = data.x[c * d.H * d.W + p];
  }
  const taps = d.KH * d.KW;
  const w = new Float32Array(data.w.length);
  for (let co = 0; co < d.Cout; co++) {
    for (let ci = 0; ci < d.Cin; ci++) {
      for (let t = 0; t < taps; t++) w[(t * d.Cin + ci) * d.Cout + co] = data.w[(co * d.Cin + ci) * taps + t];
    }
  }
  return { x, w };
}

/** The same op at a size the float64 reference computes quickly (channels / 8). */
const small = (d: ConvDims): ConvDims => ({ ...d, Cin: d.Cin / 8, Cout: d.Cout / 8 + 3 });

function makeCase({ shape, d, variant }: Spec): BenchCase {
  const { Ho, Wo } = convOut(d);
  const outSize = d.N * d.Cout * Ho * Wo;
  const opts = { stride: d.stride, padding: d.padding };
  return {
    op: variant ? `conv2d:${variant}` : 'conv2d',
    shape,
    flops: 2 * outSize * d.Cin * d.KH * d.KW,
    bytes: 4 * (d.N * d.Cin * d.H * d.W + d.Cout * d.Cin * d.KH * d.KW + d.Cout + outSize),
    setup(rt: Runtime): BenchInstance {
      const data = inputs(d);
      const x = Tensor.from(rt, data.x, [d.N, d.Cin, d.H, d.W]);
      const w = Tensor.from(rt, data.w, [d.Cout, d.Cin, d.KH, d.KW]);
      const b = Tensor.from(rt, data.b, [d.Cout]);
      const forced = <R>(fn: () => R): R => (variant ? rt.variants.with({ conv2d: variant }, fn) : fn());
      return {
        run: () => forced(() => conv2d(x, w, b, opts)),
        async validate() {
          const ds = small(d);
          const v = inputs(ds);
          const xs = Tensor.from(rt, v.x, [ds.N, ds.Cin, ds.H, ds.W]);
          const ws = Tensor.from(rt, v.w, [ds.Cout, ds.Cin, ds.KH, ds.KW]);
          const bs = Tensor.from(rt, v.b, [ds.Cout]);
          const y = forced(() => conv2d(xs, ws, bs, opts));
          const err = relL2(await y.toArray(), conv2dRef(v.x, v.w, ds, { bias: v.b }));
          for (const t of [xs, ws, bs, y]) t.dispose();
          return err;
        },
        dispose() {
          x.dispose();
          w.dispose();
          b.dispose();
        },
      };
    },
    peer(tf: typeof tfjs): PeerInstance {
      const data = inputs(d);
      const t = toTf(d, data);
      const x = tf.tensor4d(t.x, [d.N, d.H, d.W, d.Cin]);
      const w = tf.tensor4d(t.w, [d.KH, d.KW, d.Cin, d.Cout]);
      const bias = tf.tensor1d(data.b);
      // tfjs pads 'same' asymmetrically for stride 2; explicit padding matches PyTorch's.
      const pad: [[number, number], [number, number], [number, number], [number, number]] =
        [[0, 0], [d.padding, d.padding], [d.padding, d.padding], [0, 0]];
      return {
        run: () => tf.fused.conv2d({ x, filter: w, strides: d.stride, pad, bias }),
        dispose() {
          x.dispose();
          w.dispose();
          bias.dispose();
        },
      };
    },
  };
}

export const cases: BenchCase[] = SPECS.map(makeCase);
