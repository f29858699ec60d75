// Bicubic resize benchmark rows (production path: nn/bicubic.ts, shaders/bicubic.wgsl).
// One variant: `gather16` (one thread per output pixel, 4 row passes of 4 taps each,
//   f32 weights recomputed per thread).
//   bicubic 8x77 16x16->64x64: DAAM's per-head maps of one SD 1.5 factor-4 layer
//     (8 heads, 77 tokens) resized to the 64x64 latent (castorini/daam trace.py:116)
//   bicubic 1x1 64x64->512x512: a DAAM word map resized to the image (heatmap.py:80)
// Run: grounded-sd bench kernels (listed in kernels/index.ts).
// Peer: none; tfjs has no bicubic resize (tf.image offers bilinear and nearest only).
// FLOPs: 20 multiply-adds per output pixel (4 rows x 4 taps, then 4 rows), weights not
// counted. Bytes: the input read once and the output written once (4 + 4 bytes).
import { bicubic } from '../../nn/bicubic.js';
import { Tensor } from '../../tensor/tensor.js';
import type { Runtime } from '../../gpu/runtime.js';
import { bicubicRef } from '../../ref/bicubic.js';
import type { BenchCase, BenchInstance } from './types.js';
import { randomArray, relL2 } from '../data.js';

/** Planes checked against the float64 reference (the reference is slow in JS). */
const CHECK_PLANES = 4;

function bicubicCase(n: number, c: number, h: number, w: number, oh: number, ow: number, seed: number): BenchCase {
  const inSize = n * c * h * w;
  const outSize = n * c * oh * ow;
  return {
    op: 'bicubic',
    shape: `${n}x${c} ${h}x${w}->${oh}x${ow}`,
    flops: 40 * outSize,
    bytes: 4 * (inSize + outSize),
    setup(rt: Runtime): BenchInstance {
      const data = randomArray(inSize, seed, 0, 1);
      const x = Tensor.from(rt, data, [n, c, h, w]);
      return {
        run: () => bicubic(x, { height: oh, width: ow }),
        async validate() {
          const y = bicubic(x, { height: oh, width: ow });
          const out = await y.toArray();
          y.dispose();
          const planes = Math.min(CHECK_PLANES, n * c);
          const ref = bicubicRef(data.subarray(0, planes * h * w), [1, planes, h, w], oh, ow);
          return relL2(out.subarray(0, planes * oh * ow), ref);
        },
        dispose: () => x.dispose(),
      };
    },
  };
}

export const cases: BenchCase[] = [
  bicubicCase(8, 77, 16, 16, 64, 64, 1),
  bicubicCase(1, 1, 64, 64, 512, 512, 2),
];
