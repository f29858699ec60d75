// Group norm benchmark rows (production path: nn/group_norm.ts). Variants
// (gpu/variants.ts), differing in the statistics pass:
//   tree      group_norm_stats_vec4 (shaders/group_norm.wgsl): 64-thread Welford/Chan
//             partials per 16384-element chunk of a (n, group) row, tree-merged; the
//             software adapter's choice
//   subgroup  group_norm_subgroup_stats_vec4 (shaders/group_norm_subgroup.wgsl): 256
//             threads per 4096-element chunk, merged with subgroup operations and one
//             workgroup-memory step; hardware adapters with `subgroups`
// Both then run group_norm_finalize (one thread per row merges the partials) and the
// barrier-free group_norm_forward_vec4 with SiLU fused. Ragged spatial sizes take the
// scalar entry points of the same kernels (tests cover them).
// Rows: 320ch 64x64, SD's first UNet level (N=1, 32 groups, eps 1e-5, SiLU), under the
// adapter's choice (op groupnorm, judged by the targets), then with each variant forced
// (op groupnorm:<variant>):  grounded-sd bench kernels --filter groupnorm:subgroup
// Peer: tfjs has no group norm, so reshape + tf.moments + arithmetic + x * sigmoid(x).
// Bytes: the minimum, x read once and y written once (4 + 4 bytes per element), although
// the algorithm reads x twice (statistics, then apply).
import type * as tfjs from '@tensorflow/tfjs-core';
import { groupNorm } from '../../nn/group_norm.js';
import { Tensor } from '../../tensor/tensor.js';
import type { Runtime } from '../../gpu/runtime.js';
import type { VariantName } from '../../gpu/variants.js';
import { groupNormRef } from '../../ref/group_norm.js';
import type { BenchCase, BenchInstance, PeerInstance } from './types.js';
import { randomArray, relL2 } from '../data.js';

const N = 1;
const C = 320;
const H = 64;
const W = 64;
const G = 32;
const EPS = 1e-5;
const S = H * W;
const SIZE = N * C * S;

function inputs() {
  return { x: randomArray(SIZE, 1, -2, 3), weight: randomArray(C, 2, 0.5, 1.5), bias: randomArray(C, 3) };
}

function makeCase(variant?: VariantName<'group_norm'>): BenchCase {
  return {
    op: variant ? `groupnorm:${variant}` : 'groupnorm',
    shape: `${C}ch ${H}x${W}${variant ? ' forced' : ''}`,
    // Welford (sub, div, add, sub, mul) plus apply (sub, fma) and SiLU (exp, add, div, mul).
    flops: 11 * SIZE,
    bytes: 8 * SIZE + 8 * C,
    setup(rt: Runtime): BenchInstance {
      const data = inputs();
      const x = Tensor.from(rt, data.x, [N, C, H, W]);
      const weight = Tensor.from(rt, data.weight, [C]);
      const bias = Tensor.from(rt, data.bias, [C]);
      const op = () => groupNorm(x, G, weight, bias, EPS, 'silu');
      const run = () => (variant ? rt.variants.with({ group_norm: variant }, op) : op());
      return {
        run,
        async validate() {
          const y = run();
          const out = await y.toArray();
          y.dispose();
          return relL2(out, groupNormRef(data.x, N, C, S, G, data.weight, data.bias, EPS, 'silu'));
        },
        dispose() {
          x.dispose();
          weight.dispose();
          bias.dispose();
        },
      };
    },
    peer(tf: typeof tfjs): PeerInstance {
      const data = inputs();
      const x = tf.tensor4d(data.x, [N, C, H, W]);
      const weight = tf.tensor3d(data.weight, [1, C, 1]);
      const bias = tf.tensor3d(data.bias, [1, C, 1]);
      return {
        run: () =>
          tf.tidy(() => {
            const g = tf.reshape(x, [N, G, (C / G) * S]);
            const { mean, variance } = tf.moments(g, 2, true);
            const xhat = tf.reshape(tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, EPS))), [N, C, S]);
            const y = tf.add(tf.mul(xhat, weight), bias);
            return tf.mul(y, tf.sigmoid(y));
          }),
        dispose() {
          x.dispose();
          weight.dispose();
          bias.dispose();
        },
      };
    },
  };
}

export const cases: BenchCase[] = [makeCase(), makeCase('tree'), makeCase('subgroup')];
