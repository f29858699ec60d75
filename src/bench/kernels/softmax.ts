// Softmax benchmark rows (production path: nn/softmax.ts, shaders/softmax.wgsl).
// One variant: `online` (one workgroup per row, online max/sum pass + normalise pass).
//   softmax  8x1024x1024: rows of 1024 (a 32x32 latent's self-attention scores)
// Run: grounded-sd bench kernels (listed in kernels/index.ts).
// Peer: tf.softmax on tfjs-backend-webgpu, same adapter.
// Bytes: the input read once and the output written once (4 + 4 bytes per element).
import type * as tfjs from '@tensorflow/tfjs-core';
import { softmax } from '../../nn/softmax.js';
import { Tensor } from '../../tensor/tensor.js';
import type { Runtime } from '../../gpu/runtime.js';
import { softmaxRef } from '../../ref/softmax.js';
import type { BenchCase, BenchInstance, PeerInstance } from './types.js';
import { randomArray, relL2 } from '../data.js';

const BATCH = 8;
const ROWS = 1024;
const N = 1024;
const SIZE = BATCH * ROWS * N;
/** Rows checked against the float64 reference. */
const CHECK_ROWS = 16;

export const cases: BenchCase[] = [
  {
    op: 'softmax',
    shape: `${BATCH}x${ROWS}x${N}`,
    // max, subtract, exp, sum, divide: about 5 operations per element.
    flops: 5 * SIZE,
    bytes: 8 * SIZE,
    setup(rt: Runtime): BenchInstance {
      const data = randomArray(SIZE, 1, -8, 8);
      const x = Tensor.from(rt, data, [BATCH, ROWS, N]);
      return {
        run: () => softmax(x),
        async validate() {
          const y = softmax(x);
          const out = await y.toArray();
          y.dispose();
          // CHECK_ROWS rows spread over the whole tensor.
          const step = Math.floor((BATCH * ROWS) / CHECK_ROWS);
          const got: number[] = [];
          const ref: number[] = [];
          for (let r = 0; r < CHECK_ROWS; r++) {
            const row = r * step;
            got.push(...out.subarray(row * N, (row + 1) * N));
            ref.push(...softmaxRef(data.subarray(row * N, (row + 1) * N), 1, N));
          }
          return relL2(got, ref);
        },
        dispose: () => x.dispose(),
      };
    },
    peer(tf: typeof tfjs): PeerInstance {
      const x = tf.tensor3d(randomArray(SIZE, 1, -8, 8), [BATCH, ROWS, N]);
      return { run: () => tf.softmax(x), dispose: () => x.dispose() };
    },
  },
];
