// Elementwise benchmark rows (production path: nn/elementwise.ts, shaders/elementwise.wgsl).
// One variant: one thread per output element, broadcasting through merged strides.
//   silu      1x320x64x64           unary SiLU (the activation after SD's 64x64 group norms)
//   bias_add  2x320x64x64 + 320x1x1 broadcast add of a conv bias, NCHW
//   add_silu  2x1280x16x16 + 2x1280x1x1  temb add with SiLU fused (one kernel)
// Run: grounded-sd bench kernels --filter elementwise (listed in kernels/index.ts).
// Peer: tfjs-backend-webgpu, same adapter. tfjs has no SiLU op, so its SiLU is
// x * sigmoid(x) (two kernels) and its fused add + SiLU is add then x * sigmoid(x).
// All rows are bytes-bound: bytes = inputs read once + output written once (4 B each);
// flops count the arithmetic per element (SiLU: exp, add, divide, multiply = 4).
import type * as tfjs from '@tensorflow/tfjs-core';
import { add, silu } from '../../nn/elementwise.js';
import { Tensor } from '../../tensor/tensor.js';
import type { Runtime } from '../../gpu/runtime.js';
import { binaryRef, unaryRef } from '../../ref/elementwise.js';
import type { BenchCase, BenchInstance, PeerInstance } from './types.js';
import { randomArray, relL2 } from '../data.js';

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
const siluRef = (v: number) => v / (1 + Math.exp(-v));

function siluCase(shape: number[]): BenchCase {
  const n = numel(shape);
  return {
    op: 'silu',
    shape: shape.join('x'),
    flops: 4 * n,
    bytes: 8 * n,
    setup(rt: Runtime): BenchInstance {
      const data = randomArray(n, 1, -6, 6);
      const x = Tensor.from(rt, data, shape);
      return {
        run: () => silu(x),
        async validate() {
          const y = silu(x);
          const out = await y.toArray();
          y.dispose();
          return relL2(out, unaryRef(data, 'silu'));
        },
        dispose: () => x.dispose(),
      };
    },
    peer(tf: typeof tfjs): PeerInstance {
      const x = tf.tensor(randomArray(n, 1, -6, 6), shape);
      return { run: () => tf.tidy(() => tf.mul(x, tf.sigmoid(x))), dispose: () => x.dispose() };
    },
  };
}

/** out = a + b (b broadcast), optionally followed by SiLU. */
function addCase(op: string, aShape: number[], bShape: number[], fuseSilu: boolean): BenchCase {
  const na = numel(aShape);
  const nb = numel(bShape);
  return {
    op,
    shape: `${aShape.join('x')} + ${bShape.join('x')}`,
    flops: na * (fuseSilu ? 5 : 1),
    bytes: 4 * (2 * na + nb),
    setup(rt: Runtime): BenchInstance {
      const ad = randomArray(na, 2, -3, 3);
      const bd = randomArray(nb, 3, -3, 3);
      const a = Tensor.from(rt, ad, aShape);
      const b = Tensor.from(rt, bd, bShape);
      const run = () => add(a, b, fuseSilu ? 'silu' : 'none');
      return {
        run,
        async validate() {
          const y = run();
          const out = await y.toArray();
          y.dispose();
          const ref = binaryRef(ad, aShape, bd, bShape, (x, z) => (fuseSilu ? siluRef(x + z) : x + z)).out;
          return relL2(out, ref);
        },
        dispose() {
          a.dispose();
          b.dispose();
        },
      };
    },
    peer(tf: typeof tfjs): PeerInstance {
      const a = tf.tensor(randomArray(na, 2, -3, 3), aShape);
      const b = tf.tensor(randomArray(nb, 3, -3, 3), bShape);
      const run = () =>
        tf.tidy(() => {
          const s = tf.add(a, b);
          return fuseSilu ? tf.mul(s, tf.sigmoid(s)) : s;
        });
      return {
        run,
        dispose() {
          a.dispose();
          b.dispose();
        },
      };
    },
  };
}

export const cases: BenchCase[] = [
  siluCase([1, 320, 64, 64]),
  addCase('bias_add', [2, 320, 64, 64], [320, 1, 1], false),
  addCase('add_silu', [2, 1280, 16, 16], [2, 1280, 1, 1], true),
];
