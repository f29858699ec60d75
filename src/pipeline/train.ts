// Training loop of the grounding module (official train.py, made deterministic and
// resumable). Per step, for each of `accum` micro-batches of `batch` images: upload the
// samples, forward in training mode, loss = sum over images and classes of the
// per-class mean BCE (+ dice * Dice) / (batch * accum), backward into the step's
// gradients (zeroed at the start of the step); then one optimiser update. With strategy
// 'no-zero-masks' a class whose target mask is empty gets row weight 0 (no loss), as
// train.py skips classes the detector missed; a step where every class is empty makes no
// update (train.py's `if len(loss)==0`). Nothing is read back during a step except the
// loss, and only on steps that log it. Sample k of the run is a pure function of
// (data seed, k), so the data "RNG state" is the sample position.
// Checkpoints (every N steps and at the end) are folders written under a temporary
// name and renamed into place; `latest` then names the newest one (the newest two are kept):
//   ckpt-<step>/weights.safetensors    module parameters and buffers, official names, F32
//   ckpt-<step>/optimizer.safetensors  optimiser state tensors (m.<name>, v.<name>)
//   ckpt-<step>/state.json             step, sample position, optimiser step count, options
import { appendFile, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, WeightError } from '../gpu/errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { writeFileAtomic } from '../io/atomic.js';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors.js';
import type { FeatureGroup, TrainingSample } from '../io/samples.js';
import { add, scale } from '../nn/elementwise.js';
import { bceWithLogits, bceWithLogitsBackward, diceLoss, diceLossBackward } from '../nn/loss.js';
import { namedParams, type Param } from '../nn/module.js';
import { Adam, AdamW, type AdamOptions } from '../nn/optim.js';
import { groundingBackward } from '../models/grounding/backward.js';
import { SD1_GROUNDING_CONFIG, type GroundingConfig } from '../models/grounding/config.js';
import { groundingForward, type GroundingForward } from '../models/grounding/forward.js';
import { Segmodule } from '../models/grounding/segmodule.js';
import { SampleFolder } from '../io/samples.js';
import { SyntheticTask } from './synthetic.js';
import { Tensor } from '../tensor/tensor.js';
import { keep, scope } from '../tensor/scope.js';

/** One image's inputs on the GPU (the grounding module's GroundingSample). */
export interface GroundingInputs { features: Record<FeatureGroup, Tensor[]>; textEmbedding: Tensor }

/** What the loop needs from a model: its named parameters/buffers, a training forward
 *  that returns per-image logits [n_b, S, S], and a backward that adds every
 *  parameter's gradient into `into` (keyed like params()). */
export interface TrainableModel {
  params(): Map<string, Param>;
  forward(batch: GroundingInputs[]): { logits: Tensor[] };
  backward(fwd: { logits: Tensor[] }, dlogits: Tensor[], into: Map<string, Tensor>): void;
}

/** An optimiser updating the trained parameters from their gradients (in place, or by
 *  setting new tensors into the Params), with exportable state. It owns its memory:
 *  step() runs outside any scope. */
export interface TrainOptimizer {
  step(params: Map<string, Param>, grads: Map<string, Tensor>): void;
  /** State tensors by name (e.g. m.<param>, v.<param>) and the update count. */
  exportState(): { step: number; tensors: Map<string, Tensor> };
  importState(state: { step: number; tensors: Map<string, Tensor> }): void;
}

/** Where samples come from: position k of the run's sequence. */
export interface SampleSource { at(k: number): Promise<TrainingSample> | TrainingSample }

export type Strategy = 'normal' | 'no-zero-masks';

export interface TrainOptions {
  out: string;
  steps: number;
  batch?: number;
  accum?: number;
  strategy?: Strategy;
  /** Weight of the Dice loss added to BCE (default 0: BCE only, as train.py). */
  dice?: number;
  /** Learning rate, recorded in the log (the optimiser owns the value it uses). */
  lr: number;
  checkpointEvery?: number;
  /** Read the loss back every this many steps (default 1); other steps log null. */
  lossEvery?: number;
  resume?: boolean;
  /** Progress lines on stderr (default true). */
  progress?: boolean;
  /** Recorded in state.json so a resume can check it continues the same run. */
  runInfo?: Record<string, unknown>;
}

export interface StepLog { step: number; loss: number | null; lr: number; seconds: number; skipped?: boolean }

export interface TrainResult { step: number; logs: StepLog[] }

interface CheckpointState { step: number; position: number; optimizerStep: number; runInfo: Record<string, unknown> }

/** Row weights [n] for one image: `scale`, or 0 for empty masks under 'no-zero-masks'. */
export function rowWeights(target: TrainingSample['target'], strategy: Strategy, scale: number): Float32Array {
  const [n, S] = target.shape;
  const w = new Float32Array(n).fill(scale);
  if (strategy === 'no-zero-masks') {
    for (let c = 0; c < n; c++) {
      const row = target.data.subarray(c * S * S, (c + 1) * S * S);
      if (!row.some((v) => v > 0)) w[c] = 0;
    }
  }
  return w;
}

export function uploadSample(rt: Runtime, s: TrainingSample): GroundingInputs {
  const features = {} as Record<FeatureGroup, Tensor[]>;
  for (const g of Object.keys(s.features) as FeatureGroup[]) {
    features[g] = s.features[g].map((f, i) => Tensor.from(rt, f.data, f.shape, 'f32', `features.${g}.${i}`));
  }
  return { features, textEmbedding: Tensor.from(rt, s.textEmbedding.data, s.textEmbedding.shape, 'f32', 'text_embedding') };
}

/** Loss [1] of one micro-batch and its gradients into `grads`. Returns the total row weight. */
export function microBatch(
  rt: Runtime, model: TrainableModel, samples: TrainingSample[], grads: Map<string, Tensor>,
  opts: { strategy: Strategy; dice: number; scale: number },
): { loss: Tensor; weight: number } {
  return scope(() => {
    const fwd = model.forward(samples.map((s) => uploadSample(rt, s)));
    const terms: Tensor[] = [];
    const dlogits: Tensor[] = [];
    let weight = 0;
    samples.forEach((s, b) => {
      const logits = fwd.logits[b];
      const [n, S] = [logits.shape[0], logits.shape[1]];
      if (s.target.shape[0] !== n || s.target.shape[1] !== S) {
        throw new InputError(`sample '${s.prompt}': target [${s.target.shape}] does not match the module's logits [${logits.shape}]; targets must be [classes, out_size, out_size]`);
      }
      const l2 = logits.reshape([n, S * S]);
      const t2 = Tensor.from(rt, s.target.data, [n, S * S], 'f32', 'target');
      const wHost = rowWeights(s.target, opts.strategy, opts.scale);
      weight += wHost.reduce((a, v) => a + v, 0);
      const w = Tensor.from(rt, wHost, [n], 'f32', 'row_weights');
      let loss = bceWithLogits(l2, t2, w);
      let d = bceWithLogitsBackward(l2, t2, 1, w);
      if (opts.dice > 0) {
        loss = add(loss, scale(diceLoss(l2, t2, 1, w), opts.dice));
        d = add(d, diceLossBackward(l2, t2, opts.dice, 1, w));
      }
      terms.push(loss);
      dlogits.push(d.reshape(logits.shape));
    });
    model.backward(fwd, dlogits, grads);
    const loss = terms.reduce((a, t) => add(a, t));
    return { loss, weight };
  });
}


/** Trained parameters only (buffers are updated by the forward, not the optimiser). */
function trainedParams(model: TrainableModel): Map<string, Param> {
  const out = new Map<string, Param>();
  for (const [name, p] of model.params()) if (p.kind === 'param') out.set(name, p);
  return out;
}

export async function saveCheckpoint(dir: string, model: TrainableModel, opt: TrainOptimizer, state: CheckpointState): Promise<string> {
  const final = join(dir, `ckpt-${String(state.step).padStart(8, '0')}`);
  const tmp = `${final}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const host = async (ts: Map<string, Tensor>) => {
    const out: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (const [name, t] of ts) out[name] = { dtype: 'F32', shape: [...t.shape], data: await t.toArray() };
    return out;
  };
  const all = new Map<string, Tensor>();
  for (const [name, p] of model.params()) all.set(name, p.t);
  await writeSafetensors(join(tmp, 'weights.safetensors'), await host(all), { format: 'grounded-sd.segmodule' });
  const os = opt.exportState();
  await writeSafetensors(join(tmp, 'optimizer.safetensors'), await host(os.tensors), { step: String(os.step) });
  await writeFile(join(tmp, 'state.json'), JSON.stringify({ ...state, optimizerStep: os.step }, null, 2));
  await rm(final, { recursive: true, force: true });
  await rename(tmp, final);
  await writeFileAtomic(join(dir, 'latest'), `${final.slice(dir.length + 1)}\n`);
  // Keep the newest two: the latest and one before it in case the latest proves bad.
  const old = (await readdir(dir)).filter((n) => /^ckpt-\d+$/.test(n)).sort().slice(0, -2);
  for (const n of old) await rm(join(dir, n), { recursive: true, force: true });
  return final;
}

/** Restores weights, buffers and optimiser state from `dir`'s latest checkpoint. */
export async function loadCheckpoint(rt: Runtime, dir: string, model: TrainableModel, opt: TrainOptimizer): Promise<CheckpointState> {
  let name: string;
  try {
    name = (await readFile(join(dir, 'latest'), 'utf8')).trim();
  } catch {
    throw new InputError(`--resume: ${dir} has no checkpoint (no 'latest' file); start without --resume`);
  }
  const path = join(dir, name);
  const state = JSON.parse(await readFile(join(path, 'state.json'), 'utf8')) as CheckpointState;
  const readAll = async (file: string): Promise<Map<string, Tensor>> => {
    const f = await SafetensorsFile.open(file);
    try {
      const out = new Map<string, Tensor>();
      for (const n of f.tensors.keys()) out.set(n, await f.toTensor(rt, n, 'f32'));
      return out;
    } finally {
      await f.close();
    }
  };
  // Written into the live tensors, so optimisers holding them keep working.
  const wf = await SafetensorsFile.open(join(path, 'weights.safetensors'));
  try {
    const params = model.params();
    const missing = [...params.keys()].filter((n) => !wf.tensors.has(n));
    if (missing.length) throw new WeightError(`${path}: checkpoint lacks ${missing.length} module tensors (${missing.slice(0, 5).join(', ')}...); it is from another config`);
    for (const [n, p] of params) {
      const data = await wf.readF32(n);
      if (data.length !== p.shape.reduce((a, b) => a * b, 1)) throw new WeightError(`${path}: '${n}' has ${data.length} values, the module expects [${p.shape}]`);
      if (p.value) p.value.write(data);
      else p.set(Tensor.from(rt, data, p.shape, 'f32', n));
    }
  } finally {
    await wf.close();
  }
  opt.importState({ step: state.optimizerStep, tensors: await readAll(join(path, 'optimizer.safetensors')) });
  return state;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  return s >= 3600 ? `${(s / 3600).toFixed(1)}h` : s >= 60 ? `${(s / 60).toFixed(1)}m` : `${s.toFixed(0)}s`;
}

/** Runs (or resumes) training; returns the last step and this call's step logs. */
export async function train(rt: Runtime, model: TrainableModel, opt: TrainOptimizer, data: SampleSource, o: TrainOptions): Promise<TrainResult> {
  const B = o.batch ?? 1;
  const K = o.accum ?? 1;
  const strategy = o.strategy ?? 'normal';
  const dice = o.dice ?? 0;
  const every = o.checkpointEvery ?? 0;
  const lossEvery = o.lossEvery ?? 1;
  for (const [k, v] of [['steps', o.steps], ['batch', B], ['accum', K], ['lossEvery', lossEvery]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new InputError(`train: ${k} must be a positive integer, got ${v}`);
  }
  await mkdir(o.out, { recursive: true });
  const logPath = join(o.out, 'log.jsonl');
  let step = 0;
  if (o.resume) {
    const st = await loadCheckpoint(rt, o.out, model, opt);
    step = st.step;
    // Lines past the checkpoint came from the interrupted run; the resumed run redoes them.
    const old = await readFile(logPath, 'utf8').catch(() => '');
    const lines = old.split('\n').filter((l) => l && (JSON.parse(l) as StepLog).step <= step);
    await writeFileAtomic(logPath, lines.map((l) => `${l}\n`).join(''));
  } else {
    await writeFile(logPath, '');
  }
  const grads = new Map<string, Tensor>();
  for (const [name, p] of model.params()) if (p.kind === 'param') grads.set(name, Tensor.zeros(rt, p.shape, 'f32', `grad.${name}`));
  const logs: StepLog[] = [];
  const start = performance.now();
  const first = step;
  try {
    while (step < o.steps) {
      const t0 = performance.now();
      for (const g of grads.values()) g.zero();
      let weight = 0;
      const lossTerms: Tensor[] = [];
      for (let a = 0; a < K; a++) {
        const samples: TrainingSample[] = [];
        for (let b = 0; b < B; b++) samples.push(await data.at((step * K + a) * B + b));
        const r = microBatch(rt, model, samples, grads, { strategy, dice, scale: 1 / (B * K) });
        weight += r.weight;
        lossTerms.push(r.loss);
      }
      const skipped = weight === 0;
      if (!skipped) opt.step(trainedParams(model), grads);
      step++;
      let loss: number | null = null;
      if (step % lossEvery === 0 || step === o.steps) {
        const total = scope(() => keep(lossTerms.reduce((x, t) => add(x, t))));
        loss = (await total.toArray())[0];
        total.dispose();
      } else {
        await rt.sync();
      }
      for (const t of lossTerms) t.dispose();
      const entry: StepLog = { step, loss, lr: o.lr, seconds: (performance.now() - t0) / 1000, ...(skipped ? { skipped } : {}) };
      logs.push(entry);
      await appendFile(logPath, `${JSON.stringify(entry)}\n`);
      if (o.progress ?? true) {
        const elapsed = (performance.now() - start) / 1000;
        const rate = (step - first) / elapsed;
        process.stderr.write(`step ${step}/${o.steps} loss ${loss === null ? '-' : loss.toFixed(5)} ${rate.toFixed(2)} steps/s ETA ${formatSeconds((o.steps - step) / rate)}\n`);
      }
      if ((every > 0 && step % every === 0) || step === o.steps) {
        await saveCheckpoint(o.out, model, opt, { step, position: step * K * B, optimizerStep: 0, runInfo: o.runInfo ?? {} });
      }
    }
  } finally {
    for (const g of grads.values()) g.dispose();
  }
  return { step, logs };
}

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

/** The grounding module as the loop trains it (train mode, tapes kept for backward). */
export function segmoduleTrainable(m: Segmodule): TrainableModel & { forwardFn: (b: GroundingInputs[], o: { training: boolean; outSize?: number }) => { logits: Tensor[] } } {
  return {
    params: () => namedParams(m),
    forward: (batch) => groundingForward(m, batch, { training: true, keepForBackward: true }),
    backward: (fwd, dlogits, into) => {
      groundingBackward(m, fwd as GroundingForward, dlogits, { into });
    },
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
  seed: number;
  optimizer?: 'adam' | 'adamw';
  weightDecay?: number;
}

/** Builds the module (seeded init), the data source and the optimiser, then trains. */
export async function trainGrounding(rt: Runtime, o: GroundingTrainOptions): Promise<TrainResult & { module: Segmodule }> {
  const config = o.config === 'sd1' ? SD1_GROUNDING_CONFIG : TINY_GROUNDING_CONFIG;
  const seg = new Segmodule(config);
  seg.initRandom(rt, o.seed);
  const model = segmoduleTrainable(seg);
  let data: SampleSource;
  if (o.data === null) {
    const task = new SyntheticTask(config, { seed: o.seed, absentProb: o.strategy === 'no-zero-masks' ? 0.2 : 0 });
    data = { at: (k) => task.sample('seen', k) };
  } else {
    data = await SampleFolder.open(o.data, o.seed);
  }
  const opt = adamOptimizer(model, o.optimizer ?? 'adam', { lr: o.lr, weightDecay: o.weightDecay });
  const runInfo = { config: o.config, data: o.data ?? 'synthetic', seed: o.seed, batch: o.batch ?? 1, accum: o.accum ?? 1, strategy: o.strategy ?? 'normal', dice: o.dice ?? 0, optimizer: o.optimizer ?? 'adam' };
  const res = await train(rt, model, opt, data, { ...o, runInfo });
  return { ...res, module: seg };
}
