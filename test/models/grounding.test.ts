// Grounding module (the golden B_small / A_real fixtures run in test/pipeline/parity.test.ts).
import { describe, expect, it } from 'vitest';
import { groundingBackward } from '../../src/models/grounding/backward.js';
import { GROUPS, SD1_GROUNDING_CONFIG, type Group, type GroundingConfig } from '../../src/models/grounding/config.js';
import { groundingForward, type GroundingSample } from '../../src/models/grounding/forward.js';
import { Segmodule } from '../../src/models/grounding/segmodule.js';
import { bceWithLogits, bceWithLogitsBackward } from '../../src/nn/loss.js';
import { countParams, namedParams } from '../../src/nn/module.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { expectClose, goldenDir, randomTensor, runtime } from '../helpers.js';

/** Small widths, ragged sizes: the high group is interpolated 4 -> 8, out_size 20. */
const TINY: GroundingConfig = {
  feature_channels: { low: [6, 5], mid: [4, 3], high: [3, 5], highest: [4, 2] },
  feature_res: { low: 2, mid: 4, high: 4, highest: 8 },
  low_feature_size: 4, mid_feature_size: 4, high_feature_size: 8,
  proj_channels: { low: 2, mid: 3, high: 3, highest: 4 },
  out_size: 20, patch_size: 4,
  embedding_dim: 16, num_heads: 2, num_layers: 2, hidden_dim: 24, context_dim: 10, mlp_layers: 3,
  bn_eps: 1e-4, bn_momentum: 0.1, sn_eps: 1e-4, sn_num_itrs: 1,
};

function sample(rt: Awaited<ReturnType<typeof runtime>>, c: GroundingConfig, n: number, seed: number): GroundingSample {
  const features = {} as Record<Group, Tensor[]>;
  let s = seed;
  for (const g of GROUPS) features[g] = c.feature_channels[g].map((ch) => randomTensor(rt, [1, ch, c.feature_res[g], c.feature_res[g]], s++, -2, 2).t);
  return { features, textEmbedding: randomTensor(rt, [n, c.context_dim], s, -2, 2).t };
}

describe('grounding module', () => {
  it('has the official parameter count and names at SD v1 widths', () => {
    const m = new Segmodule(SD1_GROUNDING_CONFIG);
    expect(countParams(m)).toBe(18_796_560);
    const names = [...namedParams(m).keys()];
    expect(names).toContain('transfromer_decoder.layers.2.multihead_attn.in_proj_weight');
    expect(names).toContain('highest_feature_mix_conv.conv1.u0');
    expect(names).toContain('low_feature_conv.0.weight');
  });

  it('a batch of two images with different class counts equals running them one at a time', async () => {
    const rt = await runtime();
    const batched = new Segmodule(TINY);
    const single = new Segmodule(TINY);
    batched.initRandom(rt, 5);
    single.initRandom(rt, 5);
    const samples = [sample(rt, TINY, 1, 100), sample(rt, TINY, 3, 200)];
    const targets = [1, 3].map((n, i) => randomTensor(rt, [n, TINY.out_size * TINY.out_size], 300 + i, 0, 1).t);
    const lossOf = (logits: Tensor, i: number) => {
      const l2 = logits.reshape([logits.shape[0], -1]);
      return { loss: bceWithLogits(l2, targets[i]), dl: bceWithLogitsBackward(l2, targets[i], 1).reshape(logits.shape) };
    };

    const fb = groundingForward(batched, samples, { training: true, keepForBackward: true });
    const bl = fb.logits.map(lossOf);
    const gb = groundingBackward(batched, fb, bl.map((x) => x.dl), { inputGrads: true });

    const into = new Map<string, Tensor>();
    for (let i = 0; i < 2; i++) {
      const fs = groundingForward(single, [samples[i]], { training: true, keepForBackward: true });
      const sl = lossOf(fs.logits[0], i);
      const gs = groundingBackward(single, fs, [sl.dl], { inputGrads: true, into });
      expect(fs.logits[0].shape).toEqual([i === 0 ? 1 : 3, TINY.out_size, TINY.out_size]);
      expectClose(await fb.logits[i].toArray(), await fs.logits[0].toArray(), { label: `logits ${i}`, relL2: 1e-6 });
      expectClose(await bl[i].loss.toArray(), await sl.loss.toArray(), { label: `loss ${i}`, relL2: 1e-6 });
      expectClose(await gb.textEmbedding![i].toArray(), await gs.textEmbedding![0].toArray(), { label: `dtext ${i}`, relL2: 1e-5 });
      for (const g of GROUPS) {
        for (let k = 0; k < TINY.feature_channels[g].length; k++) {
          expectClose(await gb.features![i][g][k].toArray(), await gs.features![0][g][k].toArray(), { label: `dfeature ${i} ${g}.${k}`, relL2: 1e-5 });
        }
      }
    }
    expect([...gb.params.keys()].sort()).toEqual([...into.keys()].sort());
    const params = namedParams(batched);
    for (const [name, p] of params) if (p.kind === 'param') expect(gb.params.has(name), name).toBe(true);
    for (const [name, g] of gb.params) {
      // The structurally zero conv-bias gradients are rounding noise on both sides.
      if (/mix_conv\.conv\d\.bias$/.test(name) && !name.startsWith('highest_feature_mix_conv.conv2')) continue;
      expectClose(await g.toArray(), await into.get(name)!.toArray(), { label: `grad ${name}`, relL2: 1e-5 });
    }
    // Running statistics and u0/sv0 advanced once per image, in order.
    const singleParams = namedParams(single);
    for (const [name, p] of params) {
      if (p.kind === 'buffer') expectClose(await p.t.toArray(), await singleParams.get(name)!.t.toArray(), { label: `buffer ${name}`, relL2: 1e-6 });
    }
  });
});
