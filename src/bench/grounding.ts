// Grounding-module benchmark: GPU time per layer of one forward and backward (training
// mode, batch 1) from timestamp queries, and the wall time of whole training steps
// (upload, forward, BCE, backward, Adam). Dispatches are attributed by profiler scope:
// the benchmark wraps the forward and the backward in the scopes 'forward' and
// 'backward', and the model code opens one scope per official module inside them
// (models/grounding/forward.ts and backward.ts; free when profiling is off). The glue
// around a module (the interpolation and concat feeding a mix conv, its backward, the
// gradient accumulation) is counted with that module.
import { withScope, type KernelTiming } from '../gpu/profiler.js';
import type { Runtime } from '../gpu/runtime.js';
import { FEATURE_GROUPS, Rng, type FeatureGroup, type HostArray, type TrainingSample } from '../io/samples.js';
import { SD1_GROUNDING_CONFIG, type GroundingConfig } from '../models/grounding/config.js';
import { Segmodule } from '../models/grounding/segmodule.js';
import { disposeParams } from '../nn/module.js';
import { adamOptimizer, microBatch, segmoduleTrainable, TINY_GROUNDING_CONFIG, type TrainableModel } from '../pipeline/train/index.js';
import { Tensor } from '../tensor/tensor.js';

export interface GroundingBenchRow { layer: string; forwardMs: number; backwardMs: number; dispatches: number }

export interface GroundingBenchReport {
  device: string;
  config: 'sd1' | 'tiny';
  classes: number;
  outSize: number;
  /** Whether per-layer GPU times come from timestamp queries (else rows are empty). */
  timestamps: boolean;
  /** Official module names in state-dict order, then 'output' (logits from the embeddings). */
  layers: GroundingBenchRow[];
  forwardMs: number;
  backwardMs: number;
  /** The loss and its gradient dlogits (BCE, between the two passes). */
  lossMs: number;
  /** Median wall time of one training step (upload, forward, BCE, backward, Adam, sync). */
  stepMs: number;
  reps: number;
}

export interface GroundingBenchOptions {
  config: 'sd1' | 'tiny';
  classes: number;
  reps: number;
  log?: (msg: string) => void;
}

/** Dispatches inside a pass but in no module scope (none today; kept visible if any appear). */
export const UNSCOPED = '(outside any module)';

function randomSample(cfg: GroundingConfig, classes: number, seed: number): TrainingSample {
  const rng = new Rng(seed);
  const arr = (shape: number[], f: () => number): HostArray => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, f) });
  const features = {} as Record<FeatureGroup, HostArray[]>;
  for (const g of FEATURE_GROUPS) features[g] = cfg.feature_channels[g].map((C) => arr([1, C, cfg.feature_res[g], cfg.feature_res[g]], () => 2 * rng.next() - 1));
  const S = cfg.out_size;
  return {
    features,
    textEmbedding: arr([classes, cfg.context_dim], () => rng.normal()),
    target: arr([classes, S, S], () => (rng.next() < 0.3 ? 1 : 0)),
    classes: Array.from({ length: classes }, (_, c) => `class${c}`),
    prompt: 'benchmark',
  };
}

/** Per-layer rows from scoped timings: 'forward/<layer>' and 'backward/<layer>' scopes;
 *  anything outside both passes is the loss. Rows follow the order of `paramNames`. */
export function groundingRows(timings: readonly KernelTiming[], paramNames: readonly string[]): Pick<GroundingBenchReport, 'layers' | 'forwardMs' | 'backwardMs' | 'lossMs'> {
  const rows = new Map<string, GroundingBenchRow>();
  let forwardMs = 0;
  let backwardMs = 0;
  let lossMs = 0;
  for (const t of timings) {
    const [phase, ...rest] = t.scope.split('/');
    if (phase !== 'forward' && phase !== 'backward') {
      lossMs += t.totalMs;
      continue;
    }
    const layer = rest.join('/') || UNSCOPED;
    const row = rows.get(layer) ?? { layer, forwardMs: 0, backwardMs: 0, dispatches: 0 };
    if (phase === 'forward') {
      row.forwardMs += t.totalMs;
      forwardMs += t.totalMs;
    } else {
      row.backwardMs += t.totalMs;
      backwardMs += t.totalMs;
    }
    row.dispatches += t.calls;
    rows.set(layer, row);
  }
  const rank = (layer: string) => {
    const i = paramNames.findIndex((n) => n.startsWith(`${layer}.`));
    return i < 0 ? paramNames.length + (layer === UNSCOPED ? 1 : 0) : i;
  };
  const layers = [...rows.values()].sort((a, b) => rank(a.layer) - rank(b.layer));
  return { layers, forwardMs, backwardMs, lossMs };
}

/** The model with its forward and backward in the profiler scopes 'forward' and 'backward'. */
function phaseScoped(rt: Runtime, model: TrainableModel): TrainableModel {
  return {
    params: () => model.params(),
    forward: (batch) => withScope(rt, 'forward', () => model.forward(batch)),
    backward: (fwd, d, into) => withScope(rt, 'backward', () => model.backward(fwd, d, into)),
  };
}

export async function benchGrounding(rt: Runtime, o: GroundingBenchOptions): Promise<GroundingBenchReport> {
  const cfg = o.config === 'sd1' ? SD1_GROUNDING_CONFIG : TINY_GROUNDING_CONFIG;
  const seg = new Segmodule(cfg);
  seg.initRandom(rt, 0);
  const model = segmoduleTrainable(seg);
  const opt = adamOptimizer(model, 'adam', { lr: 1e-5 });
  const sample = randomSample(cfg, o.classes, 1);
  const grads = new Map<string, Tensor>();
  for (const [name, p] of model.params()) if (p.kind === 'param') grads.set(name, Tensor.zeros(rt, p.shape, 'f32', `grad.${name}`));
  const step = async () => {
    for (const g of grads.values()) g.zero();
    const { loss } = microBatch(rt, model, [sample], grads, { strategy: 'normal', dice: 0, scale: 1 });
    opt.step(new Map(), grads);
    loss.dispose();
    await rt.sync();
  };
  try {
    o.log?.('warm-up step (pipeline compilation)');
    await step();

    let timed: ReturnType<typeof groundingRows> = { layers: [], forwardMs: 0, backwardMs: 0, lossMs: 0 };
    const prof = rt.profiler;
    if (prof) {
      for (const g of grads.values()) g.zero();
      await rt.sync();
      await prof.collect(); // drop anything recorded before
      prof.enabled = true;
      try {
        const { loss } = microBatch(rt, phaseScoped(rt, model), [sample], grads, { strategy: 'normal', dice: 0, scale: 1 });
        loss.dispose();
        await rt.sync();
      } finally {
        prof.enabled = false;
      }
      timed = groundingRows(await prof.collect(), [...model.params().keys()]);
    }
    const times: number[] = [];
    for (let r = 0; r < o.reps; r++) {
      const t0 = performance.now();
      await step();
      times.push(performance.now() - t0);
      o.log?.(`training step ${r + 1}/${o.reps}: ${times[r].toFixed(1)} ms`);
    }
    times.sort((a, b) => a - b);
    return {
      device: rt.adapterName, config: o.config, classes: o.classes, outSize: cfg.out_size, timestamps: prof !== null,
      ...timed, stepMs: times[Math.floor(times.length / 2)], reps: o.reps,
    };
  } finally {
    for (const g of grads.values()) g.dispose();
    disposeParams(seg);
  }
}
