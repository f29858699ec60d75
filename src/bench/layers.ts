// Per-layer benchmark (`grounded-sd bench layers`): one pass of each model with the
// profiler on and every dispatch kept (gpu/profiler.ts detail mode): CLIP's text encoder
// (batch 2: negative and positive prompt), one UNet step with classifier-free guidance
// (batch 2), the VAE decoder and encoder (batch 1), and the grounding module (forward; with
// `backward` also the BCE loss, its backward and one Adam step). Each pass runs in a
// profiler scope named after the model; the models open one scope per module instance
// (models/layers/module_scope.ts; grounding: one per official module), so each dispatch
// is attributed to (model, module); bench/cost.ts gives its op kind, shape, FLOPs and
// bytes. In the same run: the roofline probe and the matmul kernel's benchmark row
// (bench/kernels/matmul.ts, production path), the yardstick of the efficiency ratios.
// Adapters without timestamp-query are timed per scope by wall clock (Profiler wall mode).
import { GpuError, InputError } from '../gpu/errors.js';
import { withScope, type Profiler } from '../gpu/profiler.js';
import type { Runtime } from '../gpu/runtime.js';
import { FEATURE_GROUPS, Rng, type FeatureGroup, type HostArray, type TrainingSample } from '../io/samples.js';
import { SD1_GROUNDING_CONFIG, type GroundingConfig } from '../models/grounding/config.js';
import { Segmodule } from '../models/grounding/segmodule.js';
import { checkModelDtype } from '../models/precision.js';
import { HashTokenizer, SD15_CONFIGS, StableDiffusion, TINY_CONFIGS } from '../models/sd.js';
import { disposeParams } from '../nn/module.js';
import { adamOptimizer, microBatch, segmoduleTrainable, TINY_GROUNDING_CONFIG, uploadSample } from '../pipeline/train/index.js';
import { Tensor } from '../tensor/tensor.js';
import { cases as matmulCases } from './kernels/matmul.js';
import {
  attribute, buildRows, modelSummaries, opTotals, splitSegments, type LayerDispatch, type LayersReport,
} from './layers_report.js';
import { runBench } from './run.js';

/** The matmul benchmark row the efficiency ratios divide by. */
export const MATMUL_CASE = '1024x1024x1024';

/** Models that run in f16 with --dtype f16 (models/precision.ts). The grounding module
 *  has no f16 path and runs in f32 either way, as in generation (it reads f32 features). */
export const F16_MODELS: readonly string[] = ['text_encoder', 'unet', 'vae_decoder', 'vae_encoder'];

export interface LayersOptions {
  /** 'sd15' or 'tiny' (deterministic random weights) or a diffusers folder / single file. */
  model: string;
  /** Image side in pixels (a multiple of the VAE's factor). */
  size: number;
  backward: boolean;
  dtype: 'f32' | 'f16';
  /** Unprofiled passes before the profiled one (pipeline compilation, first touches). */
  warmup: number;
  /** Classes (text-embedding rows) of the grounding module's sample (default 2). */
  classes?: number;
  log?: (msg: string) => void;
}

/** The models of a run, in order. */
export function layerModels(backward: boolean): string[] {
  const base = ['text_encoder', 'unet', 'vae_decoder', 'vae_encoder', 'grounding'];
  return backward ? [...base, 'grounding_backward', 'grounding_optimizer'] : base;
}

/** Refuses bad options before anything runs, f16 on an adapter without shader-f16 too. */
export function checkLayersOptions(rt: Runtime, o: LayersOptions): void {
  checkModelDtype(rt, o.dtype, 'bench layers --dtype');
  if (!Number.isInteger(o.size) || o.size < 8 || o.size % 8 !== 0) throw new InputError(`bench layers --size must be a multiple of 8 (the VAE's factor), got ${o.size}`);
  if (!Number.isInteger(o.warmup) || o.warmup < 0) throw new InputError(`bench layers --warmup needs an integer >= 0, got ${o.warmup}`);
}

/** A random grounding-module sample at the config's feature shapes (seeded). */
function groundingSample(cfg: GroundingConfig, classes: number, seed: number): TrainingSample {
  const rng = new Rng(seed);
  const arr = (shape: number[], f: () => number): HostArray => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, f) });
  const features = {} as Record<FeatureGroup, HostArray[]>;
  for (const g of FEATURE_GROUPS) features[g] = cfg.feature_channels[g].map((C) => arr([1, C, cfg.feature_res[g], cfg.feature_res[g]], () => 2 * rng.next() - 1));
  return {
    features,
    textEmbedding: arr([classes, cfg.context_dim], () => rng.normal()),
    target: arr([classes, cfg.out_size, cfg.out_size], () => (rng.next() < 0.3 ? 1 : 0)),
    classes: Array.from({ length: classes }, (_, c) => `class${c}`),
    prompt: 'benchmark',
  };
}

async function loadModels(rt: Runtime, o: LayersOptions): Promise<StableDiffusion> {
  if (o.model === 'sd15' || o.model === 'tiny') return StableDiffusion.random(rt, o.model === 'sd15' ? SD15_CONFIGS : TINY_CONFIGS, 0, { dtype: o.dtype });
  // Prompts are never tokenized here (ids are made up below), so any tokenizer will do.
  return StableDiffusion.load(rt, o.model, { dtype: o.dtype, tokenizer: new HashTokenizer(SD15_CONFIGS.text_encoder.vocab_size) });
}

interface Pass {
  /** Scope name and model of dispatches outside any model scope. */
  model: string;
  /** Records the pass (inside its own model scopes); returns what to dispose after. */
  run: () => { dispose(): void }[];
  /** Unprofiled set-up before each run (zeroing gradients). */
  prepare?: () => void;
}

const disposable = (ts: Tensor[]) => ts.map((t) => ({ dispose: () => t.dispose() }));

/** Runs the benchmark; the runtime's profiler is switched on and off around each pass. */
export async function benchLayers(rt: Runtime, o: LayersOptions): Promise<LayersReport> {
  checkLayersOptions(rt, o);
  const log = o.log ?? (() => undefined);
  log(`probe and the matmul ${MATMUL_CASE} row on ${rt.adapterName}`);
  const kernel = await runBench(rt, {
    cases: matmulCases.filter((c) => c.shape === MATMUL_CASE).map((bench) => ({ family: 'matmul', bench })),
    peer: false, trials: 3, progress: (l) => log(`  ${l}`),
  });
  const matmulRow = kernel.rows[0];
  if (!matmulRow?.valid || !matmulRow.gflops) throw new GpuError(`bench layers: the matmul ${MATMUL_CASE} row failed (${matmulRow?.error ?? 'not run'}); run grounded-sd bench kernels --filter matmul`);
  const probe = kernel.probe;
  rt.pool.trim();
  rt.pool.resetPeak(); // the probe's copy buffers are not the models' memory
  const prof: Profiler = rt.profiler ?? rt.useWallProfiler();
  const timing = prof.timestamps ? 'timestamp' : 'wall';

  const t0 = performance.now();
  log(`building ${o.model} (${o.dtype})`);
  const sd = await loadModels(rt, o);
  const gcfg = o.model === 'tiny' ? TINY_GROUNDING_CONFIG : SD1_GROUNDING_CONFIG;
  const seg = new Segmodule(gcfg);
  seg.initRandom(rt, 0);
  const trainable = segmoduleTrainable(seg);
  const opt = adamOptimizer(trainable, 'adam', { lr: 1e-5 });
  const grads = new Map<string, Tensor>();
  if (o.backward) for (const [name, p] of trainable.params()) if (p.kind === 'param') grads.set(name, Tensor.zeros(rt, p.shape, 'f32', `grad.${name}`));
  const sample = groundingSample(gcfg, o.classes ?? 2, 1);
  await rt.sync();
  log(`models ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const te = sd.textEncoder;
  const L = te.config.max_position_embeddings;
  const tok = new HashTokenizer(te.config.vocab_size, L);
  const ids = [tok.encodePadded(''), tok.encodePadded('a photograph of a dog and a cat')];
  const f = sd.vae.scaleFactor;
  if (o.size % f !== 0) throw new InputError(`bench layers --size ${o.size} is not a multiple of the VAE's factor ${f}`);
  const h = o.size / f;
  const lat = sd.vae.config.latent_channels;
  const wave = (n: number, k: number, amp: number) => Float32Array.from({ length: n }, (_, i) => amp * Math.sin(i * k));
  const context = sd.encodePrompts(['', 'a photograph of a dog and a cat']);
  const latents2 = Tensor.from(rt, wave(2 * sd.unet.resolved.inChannels * h * h, 0.37, 1), [2, sd.unet.resolved.inChannels, h, h]);
  const latent1 = Tensor.from(rt, wave(lat * h * h, 0.11, 5), [1, lat, h, h]);
  const image = Tensor.from(rt, wave(sd.vae.config.in_channels * o.size * o.size, 0.013, 0.9), [1, sd.vae.config.in_channels, o.size, o.size]);
  const inputs = [context, latents2, latent1, image];

  const passes: Pass[] = [
    {
      model: 'text_encoder',
      run: () => {
        const out = withScope(rt, 'text_encoder', () => te.forward(rt, ids));
        return disposable([out.lastHiddenState, out.pooled]);
      },
    },
    { model: 'unet', run: () => disposable([withScope(rt, 'unet', () => sd.unet.forward(rt, latents2, [500], context).sample)]) },
    { model: 'vae_decoder', run: () => disposable([withScope(rt, 'vae_decoder', () => sd.vae.decode(rt, latent1))]) },
    {
      model: 'vae_encoder',
      run: () => {
        const e = withScope(rt, 'vae_encoder', () => sd.vae.encode(rt, image));
        return disposable([e.moments, e.mean, e.logvar, e.std]);
      },
    },
  ];
  if (!o.backward) {
    passes.push({ model: 'grounding', run: () => disposable(withScope(rt, 'grounding', () => trainable.forwardFn([uploadSample(rt, sample)], { training: false })).logits) });
  } else {
    // Forward and backward in their own scopes; the loss between them is recorded outside
    // both and counts with the backward (the pass's fallback model).
    const scoped = {
      params: () => trainable.params(),
      forward: (b: Parameters<typeof trainable.forward>[0]) => withScope(rt, 'grounding', () => trainable.forward(b)),
      backward: (fwd: { logits: Tensor[] }, d: Tensor[], into: Map<string, Tensor>) => withScope(rt, 'grounding_backward', () => trainable.backward(fwd, d, into)),
    };
    passes.push({
      model: 'grounding_backward',
      prepare: () => {
        for (const g of grads.values()) g.zero();
      },
      run: () => {
        const { loss } = microBatch(rt, scoped, [sample], grads, { strategy: 'normal', dice: 0, scale: 1 });
        withScope(rt, 'grounding_optimizer', () => opt.step(new Map(), grads));
        return disposable([loss]);
      },
    });
  }

  const all: LayerDispatch[] = [];
  const stats = new Map<string, { wallMs: number; peakBytes: number }>();
  let peak = rt.memory().peakBytes;
  try {
    for (const pass of passes) {
      for (let w = 0; w < o.warmup; w++) {
        log(`${pass.model}: warm-up pass ${w + 1}/${o.warmup}`);
        pass.prepare?.();
        for (const d of pass.run()) d.dispose();
        await rt.sync();
      }
      pass.prepare?.();
      await rt.sync();
      await prof.collect(); // drop anything recorded before
      rt.pool.resetPeak();
      prof.detail = true;
      prof.enabled = true;
      const start = performance.now();
      let outs: { dispose(): void }[] = [];
      try {
        outs = pass.run();
        await rt.sync();
      } finally {
        prof.enabled = false;
        prof.detail = false;
      }
      const wallMs = performance.now() - start;
      const ds = attribute(await prof.collectDispatches(), pass.model);
      for (const d of outs) d.dispose();
      const peakBytes = rt.memory().peakBytes;
      peak = Math.max(peak, peakBytes);
      for (const m of new Set(ds.map((d) => d.model))) stats.set(m, { wallMs, peakBytes });
      all.push(...ds);
      log(`${pass.model}: ${ds.length} dispatches, wall ${(wallMs / 1000).toFixed(2)} s`);
    }
  } finally {
    for (const t of inputs) t.dispose();
    for (const g of grads.values()) g.dispose();
    disposeParams(seg);
    sd.dispose();
  }
  if (timing === 'wall') splitSegments(all, probe);
  const rows = buildRows(all, probe);
  const models = modelSummaries(all, stats);
  const gflopsOf = (m: string) => models.find((s) => s.model === m)?.gflops ?? 0;
  const totalMs = models.reduce((a, m) => a + m.gpu_ms, 0);
  const hostMs = models.reduce((a, m) => a + m.host_ms, 0);
  const dispatches = models.reduce((a, m) => a + m.dispatches, 0);
  return {
    rows,
    summary: {
      adapter: rt.adapterName,
      date: new Date().toISOString(),
      model: o.model, size: o.size, dtype: o.dtype, backward: o.backward, warmup: o.warmup,
      timing,
      timing_note: timing === 'timestamp'
        ? 'GPU time per dispatch from timestamp queries, each dispatch in its own compute pass'
        : 'no timestamp-query on this adapter: wall time per scope (one submit per scope change, replayed one at a time and waited for), split among the scope\'s dispatches by their roofline time; includes submit latency',
      probe: { fma_gflops: probe.fmaGflops, copy_gbps: probe.copyGbps },
      matmul_case: `matmul ${MATMUL_CASE}`,
      matmul_gflops: matmulRow.gflops,
      efficiency: {
        text_encoder: gflopsOf('text_encoder') / matmulRow.gflops,
        unet: gflopsOf('unet') / matmulRow.gflops,
        vae_decoder: gflopsOf('vae_decoder') / matmulRow.gflops,
      },
      peak_bytes: peak,
      total_ms: totalMs,
      host_ms: hostMs,
      host_us_per_dispatch: dispatches > 1 ? (1000 * hostMs) / dispatches : 0,
      models,
      ops: opTotals(rows, probe),
      notes: [
        ...(o.dtype === 'f16' ? [`--dtype f16: ${F16_MODELS.join(', ')} store weights and activations in f16 (f32 accumulation, statistics and softmax); the grounding module runs in f32 (it has no f16 path)`] : []),
        `grounding module: ${o.model === 'tiny' ? 'tiny' : 'SD 1.x'} config at its own feature sizes (out_size ${gcfg.out_size}), ${o.classes ?? 2} classes, random weights${o.backward ? '; grounding_backward includes the BCE loss between the passes' : ''}`,
        'FLOPs and bytes are analytic per dispatch (src/bench/cost.ts); host time excludes pipeline creation and includes the profiler\'s own bookkeeping',
        'peak_bytes: the largest pooled GPU allocation total seen during the run (all three SD models resident)',
      ],
    },
  };
}
