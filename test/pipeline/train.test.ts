// Training loop on the synthetic grounding task: learning (loss falls, held-out classes
// reach a clearly better mIoU than untrained), resume equals an uninterrupted run bit for
// bit, 'no-zero-masks' gives no gradient from an empty-mask class, Dice term, masks and
// IoU bookkeeping. The loop is model-agnostic (TrainableModel/TrainOptimizer); here it
// drives a small dot-product grounding model built from the nn kernels (q = W e_c,
// logits = q . bilinear(F)) and SGD with momentum, so these tests do not depend on the
// full Segmodule.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime.js';
import { linearCombination } from '../../src/nn/combine.js';
import { add } from '../../src/nn/elementwise.js';
import { matmul } from '../../src/nn/matmul.js';
import { Module, namedParams, Param } from '../../src/nn/module.js';
import { resizeBilinear } from '../../src/nn/resize.js';
import { evaluateMIoU, groundBatch, IoUMeter } from '../../src/pipeline/ground.js';
import { SyntheticTask, type SyntheticSpec } from '../../src/pipeline/synthetic.js';
import { Segmodule } from '../../src/models/grounding/segmodule.js';
import {
  adamOptimizer, segmoduleTrainable, TINY_GROUNDING_CONFIG, microBatch, rowWeights, train, uploadSample, type GroundingInputs, type TrainableModel, type TrainOptimizer,
} from '../../src/pipeline/train/index.js';
import { keep } from '../../src/tensor/scope.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { randomArray, runtime } from '../helpers.js';

const LR = Number(process.env.LR ?? 0.05);
const STEPS = Number(process.env.STEPS ?? 60);
const dir = mkdtempSync(join(tmpdir(), 'train-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SPEC: SyntheticSpec = {
  feature_channels: { low: [4], mid: [4], high: [4], highest: [12, 8] },
  feature_res: { low: 2, mid: 4, high: 8, highest: 16 },
  out_size: 24,
  context_dim: 16,
};

class DotGrounding extends Module {
  weight: Param;
  bias = new Param([1]);
  running_calls = new Param([1], 'buffer');
  constructor(readonly channels: number, readonly contextDim: number, readonly outSize: number) {
    super();
    this.weight = new Param([channels, contextDim]);
  }
}

/** logits[c] = (W e_c) . bilinear(features.highest[0])  [n, S, S]. */
function dotModel(rt: Runtime, m: DotGrounding): TrainableModel & { forwardFn: (b: GroundingInputs[]) => { logits: Tensor[] } } {
  const S = m.outSize;
  const forward = (batch: GroundingInputs[]) => {
    const fs: Tensor[] = [];
    const logits = batch.map((x) => {
      const F = resizeBilinear(x.features.highest[0], S, S).reshape([m.channels, S * S]);
      fs.push(F);
      const q = matmul(x.textEmbedding, m.weight.t, { transB: true });
      return add(matmul(q, F), m.bias.t).reshape([x.textEmbedding.shape[0], S, S]);
    });
    return { logits, F: fs, batch };
  };
  return {
    params: () => namedParams(m),
    forward,
    forwardFn: forward,
    backward(fwd, dlogits, into) {
      const f = fwd as ReturnType<typeof forward>;
      dlogits.forEach((d, b) => {
        const n = d.shape[0];
        const dq = matmul(d.reshape([n, S * S]), f.F[b], { transB: true });
        matmul(dq, f.batch[b].textEmbedding, { transA: true, out: into.get('weight'), accumulate: true });
        const ones = Tensor.from(rt, new Float32Array(n * S * S).fill(1), [n * S * S, 1]);
        matmul(d.reshape([1, n * S * S]), ones, { out: into.get('bias')!.reshape([1, 1]), accumulate: true });
      });
    },
  };
}

/** p <- p - lr * (mu * m + g), m <- mu * m + g; state m.<name>. */
function sgdMomentum(rt: Runtime, lr: number, mu: number): TrainOptimizer {
  let m = new Map<string, Tensor>();
  let count = 0;
  return {
    step(params, grads) {
      for (const [name, p] of params) {
        const prev = m.get(name) ?? Tensor.zeros(rt, p.shape, 'f32');
        const next = linearCombination([[mu, prev], [1, grads.get(name)!]]);
        p.set(linearCombination([[1, p.t], [-lr, next]]));
        prev.dispose();
        m.set(name, next);
      }
      count++;
    },
    exportState: () => ({ step: count, tensors: new Map([...m].map(([k, v]) => [`m.${k}`, v])) }),
    importState(s) {
      count = s.step;
      m = new Map([...s.tensors].map(([k, v]) => [k.slice(2), v]));
    },
  };
}

function freshModel(rt: Runtime, seed: number): DotGrounding {
  const m = new DotGrounding(12, SPEC.context_dim, SPEC.out_size);
  m.weight.set(Tensor.from(rt, randomArray(12 * SPEC.context_dim, seed, -0.05, 0.05), [12, SPEC.context_dim]));
  m.bias.set(Tensor.from(rt, [0], [1]));
  m.running_calls.set(Tensor.from(rt, [0], [1]));
  return m;
}

describe('training loop', () => {
  const task = new SyntheticTask(SPEC, { seed: 4, numClasses: 8, heldOut: 2, noise: 0.3 });
  const data = { at: (k: number) => task.sample('seen', k) };

  it('learns the synthetic task: loss falls and held-out classes beat an untrained module', async () => {
    const rt = await runtime();
    const m = freshModel(rt, 1);
    const model = dotModel(rt, m);
    const evalSet = Array.from({ length: 12 }, (_, k) => task.sample('unseen', k));
    const before = await evaluateMIoU(rt, (b) => model.forwardFn(b), evalSet);
    const res = await train(rt, model, sgdMomentum(rt, LR, 0.9), data, { out: join(dir, 'learn'), steps: STEPS, lr: LR, batch: 2, progress: false });
    const after = await evaluateMIoU(rt, (b) => model.forwardFn(b), evalSet);
    const losses = res.logs.map((l) => l.loss as number);
    const head = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const tail = losses.slice(-5).reduce((a, b) => a + b) / 5;
    console.log(`synthetic learning: loss ${head.toFixed(4)} -> ${tail.toFixed(4)}, held-out mIoU untrained ${before.toFixed(3)} -> trained ${after.toFixed(3)}`);
    expect(tail).toBeLessThan(0.7 * head);
    expect(after).toBeGreaterThan(before + 0.15);
    const log = readFileSync(join(dir, 'learn', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(log.length).toBe(STEPS);
    expect(Object.keys(log[0]).sort()).toEqual(['loss', 'lr', 'seconds', 'step']);
  });

  it('resuming from a checkpoint gives the same weights and losses as an uninterrupted run', async () => {
    const rt = await runtime();
    const opts = { lr: 0.05, batch: 2, accum: 2, dice: 0.5, checkpointEvery: 2, progress: false } as const;
    const a = freshModel(rt, 2);
    const full = await train(rt, dotModel(rt, a), sgdMomentum(rt, 0.05, 0.9), data, { ...opts, out: join(dir, 'full'), steps: 5 });
    const b = freshModel(rt, 2);
    await train(rt, dotModel(rt, b), sgdMomentum(rt, 0.05, 0.9), data, { ...opts, out: join(dir, 'part'), steps: 3 });
    // A fresh process would start from scratch objects: new model, new optimiser.
    const c = freshModel(rt, 99);
    const resumed = await train(rt, dotModel(rt, c), sgdMomentum(rt, 0.05, 0.9), data, { ...opts, out: join(dir, 'part'), steps: 5, resume: true });
    expect(resumed.logs.map((l) => l.step)).toEqual([4, 5]);
    expect(resumed.logs.map((l) => l.loss)).toEqual(full.logs.slice(3).map((l) => l.loss));
    expect(Array.from(await c.weight.t.toArray())).toEqual(Array.from(await a.weight.t.toArray()));
    const log = readFileSync(join(dir, 'part', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
    expect(log).toEqual([1, 2, 3, 4, 5]);
    expect(readFileSync(join(dir, 'part', 'latest'), 'utf8').trim()).toBe('ckpt-00000005');
  });

  it("strategy 'no-zero-masks' takes no gradient from a class with an empty mask", async () => {
    const rt = await runtime();
    const withEmpty = new SyntheticTask(SPEC, { seed: 5, absentProb: 1, twoClassProb: 0 });
    const s = withEmpty.sample('seen', 0);
    expect(s.classes.length).toBe(2);
    const S = SPEC.out_size;
    expect(s.target.data.subarray(S * S).every((v) => v === 0)).toBe(true);
    expect(Array.from(rowWeights(s.target, 'no-zero-masks', 0.5))).toEqual([0.5, 0]);
    const only = { ...s, classes: s.classes.slice(0, 1), textEmbedding: { shape: [1, SPEC.context_dim], data: s.textEmbedding.data.slice(0, SPEC.context_dim) }, target: { shape: [1, S, S], data: s.target.data.slice(0, S * S) } };
    const m = freshModel(rt, 3);
    const model = dotModel(rt, m);
    const grad = async (sample: typeof s, strategy: 'normal' | 'no-zero-masks') => {
      const g = new Map([['weight', Tensor.zeros(rt, [12, SPEC.context_dim])], ['bias', Tensor.zeros(rt, [1])]]);
      const { loss } = microBatch(rt, model, [sample], g, { strategy, dice: 0, scale: 1 });
      const out = { g: await g.get('weight')!.toArray(), loss: (await loss.toArray())[0] };
      loss.dispose();
      for (const t of g.values()) t.dispose();
      return out;
    };
    const ref = await grad(only, 'normal');
    const skip = await grad(s, 'no-zero-masks');
    const normal = await grad(s, 'normal');
    expect(Array.from(skip.g)).toEqual(Array.from(ref.g));
    expect(skip.loss).toBe(ref.loss);
    expect(normal.loss).toBeGreaterThan(ref.loss);
    expect(Array.from(normal.g)).not.toEqual(Array.from(ref.g));
    // The loss gradient the module receives is exactly zero on the empty class's row.
    let captured: Tensor | null = null;
    const spy: TrainableModel = { ...model, backward: (f, d, into) => { captured = keep(d[0]); model.backward(f, d, into); } };
    const g = new Map([['weight', Tensor.zeros(rt, [12, SPEC.context_dim])], ['bias', Tensor.zeros(rt, [1])]]);
    microBatch(rt, spy, [s], g, { strategy: 'no-zero-masks', dice: 0.5, scale: 1 }).loss.dispose();
    for (const t of g.values()) t.dispose();
    expect(captured).not.toBeNull();
    const dl = captured as unknown as Tensor;
    const rows = await dl.toArray();
    dl.dispose();
    expect(rows.subarray(S * S).every((v) => v === 0)).toBe(true);
    expect(rows.subarray(0, S * S).some((v) => v !== 0)).toBe(true);
  });

  it('adds dice * Dice to the BCE, and accumulation over micro-batches equals one larger batch', async () => {
    const rt = await runtime();
    const m = freshModel(rt, 6);
    const model = dotModel(rt, m);
    const samples = [task.sample('seen', 1), task.sample('seen', 2)];
    const lossOf = async (dice: number) => {
      const g = new Map([['weight', Tensor.zeros(rt, [12, SPEC.context_dim])], ['bias', Tensor.zeros(rt, [1])]]);
      const { loss } = microBatch(rt, model, samples, g, { strategy: 'normal', dice, scale: 0.5 });
      const v = (await loss.toArray())[0];
      loss.dispose();
      for (const t of g.values()) t.dispose();
      return v;
    };
    const bce = await lossOf(0);
    const both = await lossOf(2);
    // Dice per class on sigmoid(logits), from the host logits.
    let dice = 0;
    const fwd = model.forward(samples.map((x) => uploadSample(rt, x)));
    for (const [b, x] of samples.entries()) {
      const l = await fwd.logits[b].toArray();
      const P = SPEC.out_size ** 2;
      for (let c = 0; c < x.classes.length; c++) {
        let inter = 0;
        let ps = 0;
        let ts = 0;
        for (let i = 0; i < P; i++) {
          const p = 1 / (1 + Math.exp(-l[c * P + i]));
          const t = x.target.data[c * P + i];
          inter += p * t;
          ps += p;
          ts += t;
        }
        dice += 0.5 * (1 - (2 * inter + 1) / (ps + ts + 1));
      }
    }
    for (const t of fwd.logits) t.dispose();
    expect(Math.abs(both - (bce + 2 * dice))).toBeLessThan(1e-5 * both);
    const a = freshModel(rt, 6);
    const b = freshModel(rt, 6);
    await train(rt, dotModel(rt, a), sgdMomentum(rt, 0.05, 0.9), data, { out: join(dir, 'accum'), steps: 2, lr: 0.05, batch: 1, accum: 2, progress: false });
    await train(rt, dotModel(rt, b), sgdMomentum(rt, 0.05, 0.9), data, { out: join(dir, 'batch'), steps: 2, lr: 0.05, batch: 2, progress: false });
    const wa = await a.weight.t.toArray();
    const wb = await b.weight.t.toArray();
    let num = 0;
    let den = 0;
    wa.forEach((v, i) => ((num += (v - wb[i]) ** 2), (den += wb[i] ** 2)));
    expect(Math.sqrt(num / den)).toBeLessThan(1e-6);
  });
});

describe('grounding module, tiny config', () => {
  it('learns the synthetic task with Adam: held-out classes beat the untrained module', async () => {
    const rt = await runtime();
    rt.poison = false;
    const cfg = TINY_GROUNDING_CONFIG;
    const task = new SyntheticTask(cfg, { seed: 11, numClasses: 8, heldOut: 2, noise: 0.3 });
    const seg = new Segmodule(cfg);
    seg.initRandom(rt, 5);
    const model = segmoduleTrainable(seg);
    const forward = (b: GroundingInputs[]) => model.forwardFn(b, { training: false });
    const evalSet = Array.from({ length: 12 }, (_, k) => task.sample('unseen', k));
    const before = await evaluateMIoU(rt, forward, evalSet);
    const steps = Number(process.env.SEG_STEPS ?? 40);
    const lr = Number(process.env.SEG_LR ?? 3e-3);
    const res = await train(rt, model, adamOptimizer(model, 'adam', { lr }), { at: (k) => task.sample('seen', k) }, {
      out: join(dir, 'seg'), steps, lr, batch: 2, progress: false,
    });
    const after = await evaluateMIoU(rt, forward, evalSet);
    // Per-step losses are noisy (one or two shapes per image): compare 8-step means.
    const losses = res.logs.map((l) => l.loss as number);
    const head = losses.slice(0, 8).reduce((a, b) => a + b) / 8;
    const tail = losses.slice(-8).reduce((a, b) => a + b) / 8;
    const secs = res.logs.reduce((a, l) => a + l.seconds, 0);
    console.log(`segmodule tiny: ${steps} steps in ${secs.toFixed(1)} s, loss ${head.toFixed(4)} -> ${tail.toFixed(4)}, held-out mIoU untrained ${before.toFixed(3)} -> trained ${after.toFixed(3)}`);
    rt.poison = true;
    expect(tail).toBeLessThan(0.8 * head);
    expect(after).toBeGreaterThan(before + 0.15);
  });
});

describe('grounding module, tiny config: resume', () => {
  it('resumes with Adam state, BN running statistics and u0 exactly', async () => {
    const rt = await runtime();
    const cfg = TINY_GROUNDING_CONFIG;
    const task = new SyntheticTask(cfg, { seed: 12, absentProb: 0.3 });
    const data = { at: (k: number) => task.sample('seen', k) };
    const run = async (out: string, steps: number, resume: boolean, seed: number) => {
      const seg = new Segmodule(cfg);
      seg.initRandom(rt, seed);
      const model = segmoduleTrainable(seg);
      const res = await train(rt, model, adamOptimizer(model, 'adamw', { lr: 1e-3 }), data, {
        out: join(dir, out), steps, lr: 1e-3, batch: 2, strategy: 'no-zero-masks', dice: 0.5, checkpointEvery: 2, progress: false, resume,
      });
      return { seg, res };
    };
    const full = await run('seg-full', 4, false, 7);
    await run('seg-part', 2, false, 7);
    const resumed = await run('seg-part', 4, true, 8);
    expect(resumed.res.logs.map((l) => l.loss)).toEqual(full.res.logs.slice(2).map((l) => l.loss));
    const a = namedParams(full.seg);
    for (const [name, p] of namedParams(resumed.seg)) {
      expect(Array.from(await p.t.toArray()), name).toEqual(Array.from(await a.get(name)!.t.toArray()));
    }
  });
});

describe('masks and IoU', () => {
  it('thresholds sigmoid(logits) and counts category-wise IoU', async () => {
    const rt = await runtime();
    const logitsHost = Float32Array.from([-2, 0.1, 3, -0.1, 0.5, -4, 1, 2]);
    const forward = () => ({ logits: [Tensor.from(rt, logitsHost, [2, 2, 2])] });
    const [r05] = await groundBatch(forward, []);
    expect(Array.from(r05.masks[0])).toEqual([0, 1, 1, 0]);
    expect(Array.from(r05.masks[1])).toEqual([1, 0, 1, 1]);
    const [r08] = await groundBatch(forward, [], { threshold: 0.8 });
    expect(Array.from(r08.masks[0])).toEqual([0, 0, 1, 0]);
    const meter = new IoUMeter();
    meter.add('a', r05.masks[0], [0, 1, 0, 0]);
    meter.add('a', r05.masks[0], [0, 1, 1, 1]);
    meter.add('b', new Uint8Array(4), [0, 0, 0, 0]);
    expect(meter.perClass().get('a')).toBeCloseTo(3 / 5, 12);
    expect(meter.mean()).toBeCloseTo((3 / 5 + 1) / 2, 12);
    void uploadSample;
  });
});
