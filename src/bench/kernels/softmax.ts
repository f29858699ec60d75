// Softmax benchmark rows (production path: nn/softmax.ts). Variants (gpu/variants.ts):
//   tree      one workgroup per row, workgroup-memory tree reductions (shaders/softmax.wgsl;
//             rows of a multiple of 4 take its vec4 max/sum/write passes); the software
//             adapter's choice
//   subgroup  the same passes with subgroupMax/subgroupAdd and one workgroup-memory step
//             (shaders/softmax_subgroup.wgsl); hardware adapters with `subgroups`
// Rows: 8x1024x1024, rows of 1024 (a 32x32 latent's self-attention scores), under the
// adapter's choice (op softmax, judged by the targets), then with each variant forced
// (op softmax:<variant>):  grounded-sd bench kernels --filter softmax:subgroup
// Peer: tf.softmax on tfjs-backend-webgpu, same adapter.
// Bytes: the input read once and the output written once (4 + 4 bytes per element).
import type * as tfjs from '@tensorflow/tfjs-core';
import { softmax } from '../../nn/softmax.js';
import { Tensor } from '../../tensor/tensor.js';
import type { Runtime } from '../../gpu/runtime.js';
import type { VariantName } from '../../gpu/variants.js';
import { softmaxRef } from '../../ref/softmax.js';
import type { BenchCase, BenchInstance, PeerInstance } from './types.js';
import { randomArray, relL2 } from '../data.js';

const BATCH = 8;
const ROWS = 1024;
const N = 1024;
const SIZE = BATCH * ROWS * N;
/** Rows checked against the float64 reference. */
const CHECK_ROWS = 16;

function makeCase(variant?: VariantName<'softmax'>): BenchCase {
  return {
    op: variant ? `softmax:${variant}` : 'softmax',
    shape: `${BATCH}x${ROWS}x${N}${variant ? ' forced' : ''}`,
    // max, subtract, exp, sum, divide: about 5 operations per element.
    flops: 5 * SIZE,
    bytes: 8 * SIZE,
    setup(rt: Runtime): BenchInstance {
      const data = randomArray(SIZE, 1, -8, 8);
      const x = Tensor.from(rt, data, [BATCH, ROWS, N]);
      const run = () => (variant ? rt.variants.with({ softmax: variant }, () => softmax(x)) : softmax(x));
      return {
        run,
        async validate() {
          const y = run();
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
  };
}

export const cases: BenchCase[] = [makeCase(), makeCase('tree'), makeCase('subgroup')];
