// Training loop of the grounding module (official train.py, made deterministic and
// resumable). Per step, for each of `accum` micro-batches of `batch` images: upload the
// samples, forward in training mode, loss = sum over images and classes of the
// per-class mean BCE (+ dice * Dice) / (batch * accum), backward into the step's
// gradients (zeroed at the start of the step); then one optimiser update. With strategy
// 'no-zero-masks' a class whose target mask is empty gets row weight 0 (no loss), as
// train.py skips classes the detector missed; a step where every class is empty makes no
// update (train.py's `if len(loss)==0`). Sample k of the run is a pure function of
// (data seed, k), so the data "RNG state" is the sample position.
// Each step's loss stays on the GPU until a step that logs it or checkpoints; then all
// losses since the last read come back in one read, and a NaN or Inf among them stops
// the run naming its step, before any checkpoint could save the diverged weights.
// Checkpoints and the run folder: checkpoint.ts and run_folder.ts.
import { InputError } from '../../gpu/errors.js';
import type { Runtime } from '../../gpu/runtime.js';
import { checkSample, type TrainingSample } from '../../io/samples.js';
import { add, scale } from '../../nn/elementwise.js';
import { concat } from '../../nn/layout.js';
import { bceWithLogits, bceWithLogitsBackward, diceLoss, diceLossBackward } from '../../nn/loss.js';
import type { Param } from '../../nn/module.js';
import { keep, scope } from '../../tensor/scope.js';
import { Tensor } from '../../tensor/tensor.js';
import { readResumePoint, restoreCheckpoint, saveCheckpoint, type ResumePoint } from './checkpoint.js';
import { checkpointName } from './files.js';
import { checkMemory } from './memory.js';
import { checkTrainOptions, runSettings } from './options.js';
import {
  appendLog, checkFreshStart, dropStaleCheckpoints, readLog, readRunSettings, rewriteLog, runArtefacts, settingsChanges, startRun,
} from './run_folder.js';
import type { GroundingInputs, SampleSource, StepLog, Strategy, TrainableModel, TrainOptimizer, TrainOptions, TrainResult } from './types.js';

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
  const features = {} as GroundingInputs['features'];
  for (const g of Object.keys(s.features) as (keyof GroundingInputs['features'])[]) {
    features[g] = s.features[g].map((f, i) => Tensor.from(rt, f.data, f.shape, 'f32', `features.${g}.${i}`));
  }
  return { features, textEmbedding: Tensor.from(rt, s.textEmbedding.data, s.textEmbedding.shape, 'f32', 'text_embedding') };
}

/** How a sample is named in errors: its file when it came from one. */
function sampleName(s: TrainingSample): string {
  return s.source ?? `sample '${s.prompt}'`;
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
        throw new InputError(`${sampleName(s)}: target [${s.target.shape}] does not match the module's logits [${logits.shape}]; targets must be [classes, out_size, out_size]`);
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

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  return s >= 3600 ? `${(s / 3600).toFixed(1)}h` : s >= 60 ? `${(s / 60).toFixed(1)}m` : `${s.toFixed(0)}s`;
}

/** The losses [1] of the steps since the last read, in one read; disposes them. */
async function readLosses(pending: Tensor[]): Promise<Float32Array> {
  const all = pending.length === 1 ? pending[0] : scope(() => keep(concat(pending, 0)));
  try {
    return await all.toArray();
  } finally {
    if (all !== pending[0]) all.dispose();
    for (const t of pending) t.dispose();
    pending.length = 0;
  }
}

/** Checks the run folder and, on resume, the checkpoint and settings; returns where to start. */
async function openRun(o: TrainOptions, settings: Record<string, unknown>, samplesPerStep: number): Promise<{ point: ResumePoint | null; artefacts: string[] }> {
  const artefacts = await runArtefacts(o.out);
  if (!o.resume) {
    checkFreshStart(o.out, artefacts, o.overwrite ?? false);
    return { point: null, artefacts };
  }
  const point = await readResumePoint(o.out);
  const stored = (await readRunSettings(o.out)) ?? point.state.settings;
  const changes = settingsChanges(stored, settings);
  if (changes.length) {
    throw new InputError(`--resume: the run in ${o.out} was started with other settings (${changes.join('; ')}); `
      + 'resume with the settings it started with, or start a new run (another --out, or --overwrite)');
  }
  if (o.steps < point.state.step) throw new InputError(`--resume: the run in ${o.out} is already at step ${point.state.step}, past --steps ${o.steps}; give --steps >= ${point.state.step}`);
  if (point.state.position !== point.state.step * samplesPerStep) {
    throw new InputError(`${point.path}/state.json: position ${point.state.position} is not step x accum x batch = ${point.state.step * samplesPerStep}; the checkpoint is damaged or from other settings`);
  }
  return { point, artefacts };
}

/** Runs (or resumes) training; returns the last step and this call's step logs. */
export async function train(rt: Runtime, model: TrainableModel, opt: TrainOptimizer, data: SampleSource, o: TrainOptions): Promise<TrainResult> {
  const s = checkTrainOptions(o);
  const { batch: B, accum: K, strategy, dice } = s;
  const settings = runSettings(o, s);
  // Everything that can refuse runs before the run folder changes.
  const { point, artefacts } = await openRun(o, settings, K * B);
  let step = point?.state.step ?? 0;
  // Samples read from files were checked by readSample (against the module's shapes);
  // others (generated in memory) are checked here, so NaN inputs stop the run at once.
  const checked = (x: TrainingSample) => {
    if (x.source === undefined) checkSample(x, sampleName(x));
    return x;
  };
  const firstSample = checked(await data.at(step * K * B));
  checkMemory(rt, model, firstSample, B, s.memoryBudget, firstSample.source ?? `the sample at position ${step * K * B}`);
  if (point) {
    const lines = await readLog(o.out, step);
    await restoreCheckpoint(rt, point, model, opt);
    await rewriteLog(o.out, lines);
    await dropStaleCheckpoints(o.out, step);
  } else {
    await startRun(o.out, artefacts, settings);
  }

  const grads = new Map<string, Tensor>();
  for (const [name, p] of model.params()) if (p.kind === 'param') grads.set(name, Tensor.zeros(rt, p.shape, 'f32', `grad.${name}`));
  const logs: StepLog[] = [];
  const pending: Tensor[] = [];
  const start = performance.now();
  const first = step;
  let lastSaved = point?.name ?? null;
  try {
    while (step < o.steps) {
      const t0 = performance.now();
      for (const g of grads.values()) g.zero();
      let weight = 0;
      const lossTerms: Tensor[] = [];
      for (let a = 0; a < K; a++) {
        const samples: TrainingSample[] = [];
        for (let b = 0; b < B; b++) {
          const k = (step * K + a) * B + b;
          samples.push(k === first * K * B ? firstSample : checked(await data.at(k)));
        }
        const r = microBatch(rt, model, samples, grads, { strategy, dice, scale: 1 / (B * K) });
        weight += r.weight;
        lossTerms.push(r.loss);
      }
      const skipped = weight === 0;
      if (!skipped) opt.step(trainedParams(model), grads);
      step++;
      const total = scope(() => keep(lossTerms.reduce((x, t) => add(x, t))));
      for (const t of lossTerms) if (t !== total) t.dispose();
      pending.push(total);
      const logLoss = step % s.lossEvery === 0 || step === o.steps;
      const checkpoint = (s.checkpointEvery > 0 && step % s.checkpointEvery === 0) || step === o.steps;
      let loss: number | null = null;
      if (logLoss || checkpoint) {
        const values = await readLosses(pending);
        const bad = values.findIndex((v) => !Number.isFinite(v));
        if (bad >= 0) {
          const at = step - values.length + 1 + bad;
          throw new InputError(`training diverged: the loss of step ${at} is ${values[bad]} (lr ${o.lr}); the run stopped there, writing no checkpoint after it, `
            + `${lastSaved ? `so ${lastSaved} in ${o.out} stays the latest good checkpoint` : 'and no checkpoint had been written yet'}. Start over with a lower --lr, or check the samples`);
        }
        if (logLoss) loss = values[values.length - 1];
      } else {
        await rt.sync();
      }
      const entry: StepLog = { step, loss, lr: o.lr, seconds: (performance.now() - t0) / 1000, ...(skipped ? { skipped } : {}) };
      if (o.afterStep) Object.assign(entry, await o.afterStep(step));
      logs.push(entry);
      await appendLog(o.out, entry);
      if (o.progress ?? true) {
        const elapsed = (performance.now() - start) / 1000;
        const rate = (step - first) / elapsed;
        process.stderr.write(`step ${step}/${o.steps} loss ${loss === null ? '-' : loss.toFixed(5)} ${rate.toFixed(2)} steps/s ETA ${formatSeconds((o.steps - step) / rate)}\n`);
      }
      if (checkpoint) {
        await saveCheckpoint(o.out, model, opt, { step, position: step * K * B, optimizerStep: 0, settings });
        lastSaved = checkpointName(step);
      }
    }
  } finally {
    for (const g of grads.values()) g.dispose();
    for (const t of pending) t.dispose();
  }
  return { step, logs };
}
