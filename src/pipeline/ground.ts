// Inference with the grounding module: one binary mask per named class at a chosen size
// (mask = sigmoid(logit) > threshold), plus the IoU bookkeeping the evaluation needs.
// BatchNorm runs in eval mode (stored statistics) by default. The official test.py
// never calls .eval(), so its masks come from batch statistics and every call advances
// the spectral-norm vectors u0 and the running statistics; `officialTrainMode: true`
// reproduces that (it mutates the module's buffers, like the official code).
// benchGrounding times the module per layer (forward and backward) and per training step.
import { InputError } from '../gpu/errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { FEATURE_GROUPS, Rng, type FeatureGroup, type HostArray, type TrainingSample } from '../io/samples.js';
import { SD1_GROUNDING_CONFIG } from '../models/grounding/config.js';
import { Segmodule } from '../models/grounding/segmodule.js';
import { Param } from '../nn/module.js';
import { Tensor } from '../tensor/tensor.js';
import { scopeAsync } from '../tensor/scope.js';
import { adamOptimizer, microBatch, segmoduleTrainable, TINY_GROUNDING_CONFIG, uploadSample, type GroundingInputs } from './train.js';

/** A grounding module's forward (groundingForward bound to a module). */
export type GroundingForwardFn = (batch: GroundingInputs[], opts: { training: boolean; outSize?: number }) => { logits: Tensor[] };

export interface GroundOptions {
  /** Mask size (default: the module's out_size, 512 for SD v1). */
  outSize?: number;
  /** Probability threshold (default 0.5, as the official code). */
  threshold?: number;
  /** Batch statistics and buffer updates as in the official test.py (default false). */
  officialTrainMode?: boolean;
}

export interface GroundResult {
  size: number;
  /** Per class, size*size bytes, 1 inside the mask. */
  masks: Uint8Array[];
  /** Per class, the mask logits (size*size). */
  logits: Float32Array[];
}

/** Masks for every image of `batch` (each image: its classes in text-embedding row order). */
export async function groundBatch(forward: GroundingForwardFn, batch: GroundingInputs[], opts: GroundOptions = {}): Promise<GroundResult[]> {
  const threshold = opts.threshold ?? 0.5;
  if (!(threshold > 0 && threshold < 1)) throw new InputError(`threshold must be in (0, 1), got ${threshold}`);
  // sigmoid(x) > t  <=>  x > log(t / (1 - t)); comparing logits avoids exp overflow.
  const cut = Math.log(threshold / (1 - threshold));
  return scopeAsync(async () => {
    const fwd = forward(batch, { training: opts.officialTrainMode ?? false, outSize: opts.outSize });
    const out: GroundResult[] = [];
    for (const logits of fwd.logits) {
      const [n, S] = logits.shape;
      const all = await logits.toArray();
      const res: GroundResult = { size: S, masks: [], logits: [] };
      for (let c = 0; c < n; c++) {
        const l = all.slice(c * S * S, (c + 1) * S * S);
        res.logits.push(l);
        res.masks.push(Uint8Array.from(l, (x: number) => (x > cut ? 1 : 0)));
      }
      out.push(res);
    }
    return out;
  });
}

/** Intersection and union counts per class name, accumulated over images. */
export class IoUMeter {
  readonly counts = new Map<string, { inter: number; union: number }>();

  /** Adds one mask against its target (values > 0.5 count as inside). */
  add(name: string, mask: Uint8Array, target: ArrayLike<number>): void {
    if (mask.length !== target.length) throw new InputError(`IoU of ${name}: mask has ${mask.length} pixels, target ${target.length}; resize one first`);
    let inter = 0;
    let union = 0;
    for (let i = 0; i < mask.length; i++) {
      const t = target[i] > 0.5;
      const p = mask[i] === 1;
      if (p && t) inter++;
      if (p || t) union++;
    }
    const c = this.counts.get(name) ?? { inter: 0, union: 0 };
    c.inter += inter;
    c.union += union;
    this.counts.set(name, c);
  }

  /** Category-wise IoU (a class never predicted nor present counts as 1). */
  perClass(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [k, c] of this.counts) out.set(k, c.union === 0 ? 1 : c.inter / c.union);
    return out;
  }

  /** Mean over classes of the category-wise IoU. */
  mean(): number {
    const v = [...this.perClass().values()];
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : 0;
  }
}

/** mIoU of `m` on host samples (their own classes and targets), one image at a time. */
export async function evaluateMIoU(rt: Runtime, forward: GroundingForwardFn, samples: TrainingSample[], opts: GroundOptions = {}): Promise<number> {
  const meter = new IoUMeter();
  for (const s of samples) {
    const S = s.target.shape[1];
    const [res] = await scopeAsync(() => groundBatch(forward, [uploadSample(rt, s)], { ...opts, outSize: opts.outSize ?? S }));
    if (res.size !== S) throw new InputError(`evaluation: masks are ${res.size}x${res.size} but targets are ${S}x${S}; pass outSize ${S}`);
    s.classes.forEach((name, c) => meter.add(name, res.masks[c], s.target.data.subarray(c * S * S, (c + 1) * S * S)));
  }
  return meter.mean();
}

export interface GroundingBenchRow { layer: string; forwardMs: number; backwardMs: number; dispatches: number }

export interface GroundingBenchReport {
  device: string;
  config: 'sd1' | 'tiny';
  classes: number;
  outSize: number;
  /** Whether per-layer GPU times come from timestamp queries (else rows are empty). */
  timestamps: boolean;
  layers: GroundingBenchRow[];
  forwardMs: number;
  backwardMs: number;
  /** Median wall time of one training step (upload, forward, BCE, backward, Adam, sync). */
  stepMs: number;
  reps: number;
}

/** The layer a parameter belongs to: its state-dict name without the last field. */
const layerOf = (name: string) => name.slice(0, name.lastIndexOf('.'));

function randomSample(cfg: typeof SD1_GROUNDING_CONFIG, classes: number, seed: number): TrainingSample {
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

/**
 * Per-layer GPU time of one forward and backward (training mode, batch 1) and the wall
 * time of full training steps. Dispatches are attributed to the layer whose parameter
 * was read last: each Param's `t` getter is wrapped for the run and every dispatch label
 * is prefixed with the phase and that layer (both restored afterwards).
 */
export async function benchGrounding(
  rt: Runtime, o: { config: 'sd1' | 'tiny'; classes: number; reps: number; log?: (msg: string) => void },
): Promise<GroundingBenchReport> {
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
  o.log?.('warm-up step (pipeline compilation)');
  await step();

  let phase = 'forward';
  let layer = '(input)';
  const rows = new Map<string, GroundingBenchRow>();
  for (const name of model.params().keys()) {
    const l = layerOf(name);
    if (!rows.has(l)) rows.set(l, { layer: l, forwardMs: 0, backwardMs: 0, dispatches: 0 });
  }
  let forwardMs = 0;
  let backwardMs = 0;
  if (rt.profiler) {
    const getter = Object.getOwnPropertyDescriptor(Param.prototype, 't')!.get!;
    const params = [...model.params()];
    for (const [name, p] of params) {
      Object.defineProperty(p, 't', { configurable: true, get: () => ((layer = layerOf(name)), getter.call(p)) });
    }
    const dispatch = rt.dispatch;
    rt.dispatch = (spec, args) => dispatch.call(rt, spec, { ...args, label: `${phase}|${layer}|${args.label ?? spec.entry}` });
    try {
      for (const g of grads.values()) g.zero();
      await rt.sync();
      rt.profiler.enabled = true;
      const wrapped = {
        ...model,
        backward: (fwd: { logits: Tensor[] }, d: Tensor[], into: Map<string, Tensor>) => {
          phase = 'backward';
          layer = '(output)';
          model.backward(fwd, d, into);
        },
      };
      const { loss } = microBatch(rt, wrapped, [sample], grads, { strategy: 'normal', dice: 0, scale: 1 });
      loss.dispose();
      await rt.sync();
      rt.profiler.enabled = false;
      for (const t of await rt.profiler.collect()) {
        const [ph, l] = t.label.split('|');
        if (l === undefined) continue;
        const row = rows.get(l) ?? { layer: l, forwardMs: 0, backwardMs: 0, dispatches: 0 };
        if (ph === 'forward') row.forwardMs += t.totalMs;
        else row.backwardMs += t.totalMs;
        row.dispatches += t.calls;
        rows.set(l, row);
        if (ph === 'forward') forwardMs += t.totalMs;
        else backwardMs += t.totalMs;
      }
    } finally {
      rt.profiler.enabled = false;
      delete (rt as { dispatch?: unknown }).dispatch;
      for (const [, p] of params) delete (p as { t?: unknown }).t;
    }
  }
  const times: number[] = [];
  for (let r = 0; r < o.reps; r++) {
    const t0 = performance.now();
    await step();
    times.push(performance.now() - t0);
    o.log?.(`training step ${r + 1}/${o.reps}: ${times[r].toFixed(1)} ms`);
  }
  for (const g of grads.values()) g.dispose();
  times.sort((a, b) => a - b);
  return {
    device: rt.adapterName, config: o.config, classes: o.classes, outSize: cfg.out_size, timestamps: rt.profiler !== null,
    layers: [...rows.values()].filter((r) => r.dispatches > 0), forwardMs, backwardMs,
    stepMs: times[Math.floor(times.length / 2)], reps: o.reps,
  };
}
