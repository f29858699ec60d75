// The grounding module (Segmodule) as the training loop sees it: a TrainableModel with
// its memory estimate, torch.optim.Adam/AdamW as a TrainOptimizer, the tiny test config,
// and trainGrounding, which builds module, data and optimiser from options and trains.
import { resolve } from 'node:path';
import { InputError, WeightError } from '../../gpu/errors.js';
import type { Runtime } from '../../gpu/runtime.js';
import { SampleFolder, type TrainingSample } from '../../io/samples.js';
import { groundingBackward } from '../../models/grounding/backward.js';
import { featureDims, SD1_GROUNDING_CONFIG, type GroundingConfig } from '../../models/grounding/config.js';
import { groundingForward, type GroundingForward } from '../../models/grounding/forward.js';
import { Segmodule } from '../../models/grounding/segmodule.js';
import { namedParams } from '../../nn/module.js';
import { Adam, AdamW, type AdamOptions } from '../../nn/optim.js';
import type { Tensor } from '../../tensor/tensor.js';
import { SyntheticTask } from '../synthetic.js';
import { train } from './loop.js';
import { checkTrainOptions } from './options.js';
import type { ActivationBytes, GroundingInputs, SampleSource, TrainableModel, TrainOptimizer, TrainOptions, TrainResult } from './types.js';

/** A narrow module with the official structure (the B_small fixture's widths, 32x32
 *  masks) for tests and smoke runs: trains in seconds on a software adapter. */
export const TINY_GROUNDING_CONFIG: GroundingConfig = {
  feature_channels: { low: [32, 32, 32, 32, 32, 32], mid: [16, 32, 32, 32, 32, 32], high: [8, 16, 16, 32, 16, 16], highest: [8, 8, 8, 16, 8, 8, 8] },
  feature_res: { low: 2, mid: 4, high: 8, highest: 16 },
  low_feature_size: 4, mid_feature_size: 8, high_feature_size: 16,
  proj_channels: { low: 4, mid: 4, high: 8, highest: 8 },
  out_size: 32, patch_size: 4,
  embedding_dim: 32, num_heads: 4, num_layers: 2, hidden_dim: 64, context_dim: 24, mlp_layers: 3,
  bn_eps: 1e-4, bn_momentum: 0.1, sn_eps: 1e-4, sn_num_itrs: 1,
};

/** Bytes one image costs the module in a training step, from the forward's structure
 *  (models/grounding/forward.ts): what the tape keeps until the backward, and the
 *  temporaries of one image's forward or backward (feature copies resized to their
 *  group's size, batch-norm outputs, and gradients as large as the tape). */
export function segmoduleActivationBytes(c: GroundingConfig, s: TrainingSample): ActivationBytes {
  const n = s.classes.length;
  const sizes = { low: c.low_feature_size, mid: c.mid_feature_size, high: c.high_feature_size, highest: c.high_feature_size };
  let resized = 0;
  let largest = 0;
  for (const g of ['low', 'mid', 'high', 'highest'] as const) {
    for (const f of s.features[g]) {
      const [, C, H, W] = f.shape;
      if (H !== sizes[g] || W !== sizes[g]) resized += C * sizes[g] ** 2;
      largest = Math.max(largest, C * sizes[g] ** 2);
    }
  }
  const d = featureDims(c);
  const sm = c.mid_feature_size ** 2;
  const sh = c.high_feature_size ** 2;
  // Each SegBlock keeps x, relu(bn1(x)), conv1 and relu(bn2(.)), all at the block's width.
  const blocks = d.mid * sm + d.high * sh + d.highest * sh;
  const E = c.embedding_dim;
  const L = sh / c.patch_size ** 2;
  const layer = 11 * n * E + 2 * L * E + n * c.hidden_dim;
  const kept = 4 * blocks + 2 * d.highest * sh + L * E + c.num_layers * layer + c.mlp_layers * n * Math.max(E, d.highest) + n * sh;
  const proj = c.proj_channels.low * c.low_feature_size ** 2 + c.proj_channels.mid * sm + (c.proj_channels.high + c.proj_channels.highest) * sh;
  const forwardTemps = resized + proj + 3 * blocks;
  // The backward's gradients mirror the tape, and the projections' weight gradients
  // resize the features again.
  const backwardTemps = kept + resized;
  return { kept: kept * 4, transient: Math.max(forwardTemps, backwardTemps) * 4, largest: Math.max(largest, d.highest * sh) * 4 };
}

/** The grounding module as the loop trains it (train mode, tapes kept for backward). */
export function segmoduleTrainable(m: Segmodule): TrainableModel & { forwardFn: (b: GroundingInputs[], o: { training: boolean; outSize?: number }) => { logits: Tensor[] } } {
  return {
    params: () => namedParams(m),
    forward: (batch) => groundingForward(m, batch, { training: true, keepForBackward: true }),
    backward: (fwd, dlogits, into) => {
      groundingBackward(m, fwd as GroundingForward, dlogits, { into });
    },
    activationBytes: (s) => segmoduleActivationBytes(m.config, s),
    forwardFn: (batch, o) => groundingForward(m, batch, o),
  };
}

/** torch.optim.Adam / AdamW over the model's trained parameters; state as m.<name>, v.<name>. */
export function adamOptimizer(model: TrainableModel, kind: 'adam' | 'adamw', opts: AdamOptions): TrainOptimizer {
  const tensors = new Map<string, Tensor>();
  for (const [name, p] of model.params()) if (p.kind === 'param') tensors.set(name, p.t);
  const adam = kind === 'adamw' ? new AdamW(tensors, opts) : new Adam(tensors, opts);
  return {
    step: (_params, grads) => adam.update(grads),
    exportState: () => {
      const st = adam.state();
      const out = new Map<string, Tensor>();
      for (const [k, t] of st.expAvg) out.set(`m.${k}`, t);
      for (const [k, t] of st.expAvgSq) out.set(`v.${k}`, t);
      return { step: st.step, tensors: out };
    },
    importState: (st) => {
      // Adam creates both moments of every parameter at its first update, so a state
      // past step 0 has all of them and a state at step 0 has none.
      const expected = st.step === 0 ? [] : [...tensors.keys()].flatMap((k) => [`m.${k}`, `v.${k}`]);
      const missing = expected.filter((k) => !st.tensors.has(k));
      const unexpected = [...st.tensors.keys()].filter((k) => !expected.includes(k));
      if (missing.length || unexpected.length) {
        const show = (a: string[]) => (a.length > 4 ? `${a.slice(0, 4).join(', ')} (+${a.length - 4} more)` : a.join(', '));
        throw new WeightError(`optimiser state at step ${st.step} should hold m.<name> and v.<name> for all ${tensors.size} trained parameters: `
          + `${missing.length} missing${missing.length ? ` (${show(missing)})` : ''}, ${unexpected.length} unexpected${unexpected.length ? ` (${show(unexpected)})` : ''}`);
      }
      for (const [k, t] of st.tensors) {
        const p = tensors.get(k.slice(2)) as Tensor;
        if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
          throw new WeightError(`optimiser state '${k}' is [${t.shape}], its parameter is [${p.shape}]`);
        }
      }
      const pick = (prefix: string) => new Map([...st.tensors].filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t]));
      adam.loadState({ step: st.step, expAvg: pick('m.'), expAvgSq: pick('v.') });
    },
  };
}

export type ConfigName = 'tiny' | 'sd1';

export interface GroundingTrainOptions extends Omit<TrainOptions, 'runInfo'> {
  config: ConfigName;
  /** A folder of sample files, or null to train on the synthetic task. */
  data: string | null;
  /** Module init and data order; the generators keep a 32-bit state, so 0 .. 2^32-1. */
  seed: number;
  optimizer?: 'adam' | 'adamw';
  /** In [0, 1]: AdamW scales the weights by 1 - lr * weightDecay each step. */
  weightDecay?: number;
}

/** Builds the module (seeded init), the data source and the optimiser, then trains. */
export async function trainGrounding(rt: Runtime, o: GroundingTrainOptions): Promise<TrainResult & { module: Segmodule }> {
  checkTrainOptions(o);
  if (o.config !== 'tiny' && o.config !== 'sd1') throw new InputError(`train: config (--config) must be 'tiny' or 'sd1', got '${o.config}'`);
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff) {
    throw new InputError(`train: seed (--seed) must be an integer in [0, 2^32-1], got ${o.seed}; the generators keep a 32-bit state, so larger seeds would repeat smaller ones`);
  }
  const wd = o.weightDecay;
  if (wd !== undefined && (!Number.isFinite(wd) || wd < 0 || wd > 1)) {
    throw new InputError(`train: weight decay (--weight-decay) must be in [0, 1], got ${wd}; decay multiplies the weights by 1 - lr * decay each step`);
  }
  const optimizer = o.optimizer ?? 'adam';
  if (optimizer !== 'adam' && optimizer !== 'adamw') throw new InputError(`train: optimizer (--optimizer) must be 'adam' or 'adamw', got '${optimizer}'`);
  const config = o.config === 'sd1' ? SD1_GROUNDING_CONFIG : TINY_GROUNDING_CONFIG;
  let data: SampleSource;
  if (o.data === null) {
    const task = new SyntheticTask(config, { seed: o.seed, absentProb: o.strategy === 'no-zero-masks' ? 0.2 : 0 });
    data = { at: (k) => task.sample('seen', k) };
  } else {
    data = await SampleFolder.open(o.data, o.seed, config);
  }
  const seg = new Segmodule(config);
  seg.initRandom(rt, o.seed);
  const model = segmoduleTrainable(seg);
  const opt = adamOptimizer(model, optimizer, { lr: o.lr, weightDecay: wd });
  // The settings that change the result beyond the loop's own (batch, accum, strategy,
  // dice, lr); the data folder by absolute path, so a resume from elsewhere matches.
  const runInfo = {
    config: o.config, data: o.data === null ? 'synthetic' : resolve(o.data), seed: o.seed, optimizer,
    weightDecay: wd ?? (optimizer === 'adamw' ? 0.01 : 0),
  };
  const res = await train(rt, model, opt, data, { ...o, runInfo });
  return { ...res, module: seg };
}
