// `grounded-sd bench layers --model detector`: the built-in Mask R-CNN (models/detector)
// on one S x S image (the transform's bounds set so that it is not resized), one profiled
// pass split into the stages as profiler models (the scopes models/detector opens):
//   det_transform    normalise, resize, pad (GPU)
//   det_backbone     ResNet-50 body (modules conv1, layer<l>.<block>)
//   det_fpn          FPN (inner_blocks.i, layer_blocks.i, pool)
//   det_rpn          RPN head on each level (head.level_<name>)
//   det_box_head     MultiScaleRoIAlign 7x7 + box head + predictor on the proposals
//   det_mask_head    MultiScaleRoIAlign 14x14 + mask head + predictor on the detections
//   det_postprocess  mask pasting (GPU)
// and the host side timed by wall clock: read-backs (which wait for the GPU), anchors +
// proposal filtering + NMS, postprocess_detections (decode, per-class NMS), mask
// selection and crop copies. Then `images` unprofiled detect() calls give images/s.
// Weights: a checkpoint file, or 'random' (deterministic, no file; see randomDetectorSource).
import { GpuError, InputError } from '../gpu/errors.js';
import { withScope, type Profiler } from '../gpu/profiler.js';
import type { Runtime } from '../gpu/runtime.js';
import { sha256File } from '../io/file_hash.js';
import type { DetectorArch } from '../models/detector/config.js';
import { generateTensor } from '../models/detector/generated_weights.js';
import { detectorArchOf, loadMaskRCNN } from '../models/detector/load.js';
import { MaskRCNN, type DetectorImage } from '../models/detector/maskrcnn.js';
import { pasteMaskCrops } from '../models/detector/paste.js';
import { postprocessDetections, type Detections } from '../models/detector/roi_heads.js';
import { resizeBoxes } from '../nn/boxes.js';
import { namedParams, type WeightSource } from '../nn/module.js';
import { scopeAsync } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';
import { cases as matmulCases } from './kernels/matmul.js';
import { MATMUL_CASE } from './layers.js';
import {
  attribute, buildRows, modelSummaries, opTotals, splitSegments, type DetectorBenchSummary, type LayerDispatch, type LayersReport,
} from './layers_report.js';
import { runBench } from './run.js';

/** The profiler models of a detector pass, in order. */
export const DETECTOR_STAGES = ['det_transform', 'det_backbone', 'det_fpn', 'det_rpn', 'det_box_head', 'det_mask_head', 'det_postprocess'] as const;

export interface DetectorLayersOptions {
  /** A torchvision Mask R-CNN checkpoint, or 'random'. */
  detector: string;
  /** Default: from the checkpoint's names; v1 for 'random'. */
  arch?: DetectorArch;
  /** Image side in pixels (>= 32). */
  size: number;
  /** Unprofiled passes before the profiled one. */
  warmup: number;
  /** Timed unprofiled detect() calls for images per second (>= 1). */
  images: number;
  /** box_detections_per_img (torchvision: 100): the mask head's work is proportional. */
  maxDetections?: number;
  log?: (msg: string) => void;
}

/** Deterministic weights for every tensor of `model` (no file): conv/linear weights
 *  uniform with variance 1/fan_in, norms near identity (weight ~1, running_var ~1), biases
 *  near 0; the box classifier's weights 4x wider so that some proposals pass the score
 *  threshold and the mask head has detections to work on. */
export function randomDetectorSource(model: MaskRCNN, seed = 0): WeightSource {
  const params = namedParams(model);
  const spec = (name: string) => {
    const p = params.get(name);
    if (!p) throw new InputError(`random detector weights: no tensor '${name}'`);
    const shape = [...p.shape];
    const last = name.slice(name.lastIndexOf('.') + 1);
    let center = 0;
    let halfwidth = 0.01;
    if (last === 'running_var') [center, halfwidth] = [1, 0.1];
    else if (last === 'running_mean') [center, halfwidth] = [0, 0.1];
    else if (last === 'weight' && shape.length === 1) [center, halfwidth] = [1, 0.1];
    else if (last === 'weight') {
      const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
      halfwidth = Math.sqrt(3 / fanIn) * (name === 'roi_heads.box_predictor.cls_score.weight' ? 4 : 1);
    }
    return { shape, dtype: 'F32', center, halfwidth };
  };
  return {
    description: `random Mask R-CNN ${model.cfg.arch} weights (seed ${seed})`,
    names: () => [...params.keys()],
    shape: (name) => spec(name).shape,
    load: async (rt: Runtime, name: string, dtype: 'f32' | 'f16') => Tensor.from(rt, generateTensor(name, spec(name), seed, 'random detector'), spec(name).shape, dtype, name),
  };
}

/** A smooth deterministic RGB image in [0, 1], [3, S, S]. */
export function benchImage(size: number): DetectorImage {
  const n = size * size;
  const rgb = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < n; i++) {
      const x = i % size;
      const y = Math.floor(i / size);
      rgb[c * n + i] = 0.5 + 0.4 * Math.sin((x + 7 * c) / (5 + 3 * c) + y / 9) * Math.cos((y - 3 * c) / 13);
    }
  }
  return { width: size, height: size, rgb };
}

export function checkDetectorLayersOptions(o: DetectorLayersOptions): void {
  if (!Number.isInteger(o.size) || o.size < 32 || o.size > 4096) throw new InputError(`bench layers --model detector: --size must be an integer in 32..4096, got ${o.size}`);
  if (!Number.isInteger(o.warmup) || o.warmup < 0) throw new InputError(`bench layers --warmup needs an integer >= 0, got ${o.warmup}`);
  if (!Number.isInteger(o.images) || o.images < 1) throw new InputError(`bench layers --images needs an integer >= 1, got ${o.images}`);
  if (o.arch !== undefined && o.arch !== 'v1' && o.arch !== 'v2') throw new InputError(`bench layers --detector-arch must be v1 or v2, got '${String(o.arch)}'`);
  if (o.maxDetections !== undefined && (!Number.isInteger(o.maxDetections) || o.maxDetections < 1)) throw new InputError(`bench layers --max-detections needs an integer >= 1, got ${o.maxDetections}`);
  if (!o.detector) throw new InputError('bench layers --model detector needs --detector CKPT or --detector random');
}

async function loadDetector(rt: Runtime, o: DetectorLayersOptions): Promise<{ model: MaskRCNN; sha256: string | null }> {
  // Transform bounds: an S x S image stays S x S.
  const config = { min_size: o.size, max_size: Math.max(o.size, 1333), ...(o.maxDetections !== undefined ? { box_detections_per_img: o.maxDetections } : {}) };
  if (o.detector === 'random') {
    const model = new MaskRCNN({ ...config, arch: o.arch ?? 'v1' });
    try {
      await model.load(rt, randomDetectorSource(model));
    } catch (e) {
      model.dispose();
      throw e;
    }
    return { model, sha256: null };
  }
  const digest = await sha256File(o.detector);
  return { model: await loadMaskRCNN(rt, o.detector, { arch: o.arch, config }), sha256: digest.sha256 };
}

const now = () => performance.now();

/** One detect() pass stage by stage (the GPU stages in the model's scopes), timing the host parts. */
async function stagedPass(rt: Runtime, model: MaskRCNN, image: DetectorImage): Promise<{ host: DetectorBenchSummary['host_ms']; proposals: number; detections: number }> {
  const host = { readback: 0, proposals: 0, postprocess_detections: 0, mask_select_and_crops: 0 };
  return scopeAsync(async () => {
    const { batch, imageSizes } = model.transform(rt, [image]);
    const { body, fpn } = model.backbone.forward(batch);
    for (const t of body) t.dispose();
    const head = model.rpnHead(fpn);
    let t0 = now();
    const rpnHost = await Promise.all(head.map(async (h) => ({ objectness: await h.objectness.toArray(), deltas: await h.deltas.toArray(), shape: h.objectness.shape })));
    host.readback += now() - t0;
    for (const h of head) {
      h.objectness.dispose();
      h.deltas.dispose();
    }
    t0 = now();
    const { anchors, numAnchorsPerLevel } = model.anchors([batch.shape[2], batch.shape[3]], fpn.map((f) => [f.shape[2], f.shape[3]] as [number, number]));
    const [props] = model.proposals(rpnHost, anchors, numAnchorsPerLevel, imageSizes);
    host.proposals += now() - t0;
    // The box branch as MaskRCNN.detections runs it, with postprocess_detections timed apart.
    const { classLogits, boxRegression } = withScope(rt, 'det_box_head', () => {
      const { pooled } = withScope(rt, 'box_roi_pool', () => model.roi_heads.pool(fpn, [props.boxes], imageSizes, model.cfg.roi_align.box_output_size));
      return model.roi_heads.boxBranch(pooled);
    });
    t0 = now();
    const [logits, regression] = await Promise.all([classLogits.toArray(), boxRegression.toArray()]);
    host.readback += now() - t0;
    t0 = now();
    const dets: Detections = postprocessDetections(logits, regression, props.boxes, imageSizes[0], model.cfg);
    host.postprocess_detections += now() - t0;
    // maskProbs: GPU branch, read-back and the label channel's sigmoid (host).
    t0 = now();
    const [probs] = await model.maskProbs(fpn, [dets], imageSizes);
    const maskMs = now() - t0;
    t0 = now();
    const boxes = resizeBoxes(dets.boxes, imageSizes[0], [image.height, image.width]);
    await pasteMaskCrops(rt, probs, 2 * model.cfg.roi_align.mask_output_size, boxes, [image.height, image.width], model.cfg.mask_paste_padding);
    const pasteMs = now() - t0;
    // Without timestamps the two calls above are mostly GPU waits; the host share of them
    // is reported with the read-backs (an upper bound for the host work).
    host.mask_select_and_crops += maskMs + pasteMs;
    return { host, proposals: props.boxes.length / 4, detections: dets.labels.length };
  });
}

/** Runs the detector benchmark; the profiler is switched on for one pass. */
export async function benchDetectorLayers(rt: Runtime, o: DetectorLayersOptions): Promise<LayersReport & { summary: { detector: DetectorBenchSummary } }> {
  checkDetectorLayersOptions(o);
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
  rt.pool.resetPeak();
  const prof: Profiler = rt.profiler ?? rt.useWallProfiler();
  const timing = prof.timestamps ? 'timestamp' : 'wall';

  const t0 = now();
  log(`loading the detector (${o.detector})`);
  const { model, sha256 } = await loadDetector(rt, o);
  const image = benchImage(o.size);
  let staged!: Awaited<ReturnType<typeof stagedPass>>;
  const arch = model.cfg.arch;
  let wallMs = 0;
  let all: LayerDispatch[] = [];
  let peak = 0;
  let perImage = 0;
  try {
    await rt.sync();
    log(`detector ${model.cfg.arch} ready in ${((now() - t0) / 1000).toFixed(1)} s`);
    for (let w = 0; w < o.warmup; w++) {
      log(`warm-up pass ${w + 1}/${o.warmup}`);
      await stagedPass(rt, model, image);
      await rt.sync();
    }
    await prof.collect();
    rt.pool.resetPeak();
    prof.detail = true;
    prof.enabled = true;
    const start = now();
    try {
      staged = await stagedPass(rt, model, image);
      await rt.sync();
    } finally {
      prof.enabled = false;
      prof.detail = false;
    }
    wallMs = now() - start;
    all = attribute(await prof.collectDispatches(), 'det_postprocess');
    peak = rt.memory().peakBytes;
    log(`profiled pass: ${all.length} dispatches, ${staged.proposals} proposals, ${staged.detections} detections, wall ${(wallMs / 1000).toFixed(2)} s`);
    const t1 = now();
    for (let i = 0; i < o.images; i++) {
      await model.detect(rt, [image]);
      log(`timed detect ${i + 1}/${o.images}: ${((now() - t1) / 1000 / (i + 1)).toFixed(2)} s/image so far`);
    }
    perImage = (now() - t1) / 1000 / o.images;
  } finally {
    model.dispose();
  }
  if (timing === 'wall') splitSegments(all, probe);
  const rows = buildRows(all, probe);
  const stats = new Map(DETECTOR_STAGES.map((m) => [m as string, { wallMs, peakBytes: peak }]));
  const models = modelSummaries(all, stats).sort((a, b) => DETECTOR_STAGES.indexOf(a.model as never) - DETECTOR_STAGES.indexOf(b.model as never));
  const efficiency = Object.fromEntries(models.map((m) => [m.model, m.gflops / (matmulRow.gflops as number)]));
  const totalMs = models.reduce((a, m) => a + m.gpu_ms, 0);
  const hostMs = models.reduce((a, m) => a + m.host_ms, 0);
  const dispatches = models.reduce((a, m) => a + m.dispatches, 0);
  const detector: DetectorBenchSummary = {
    weights: o.detector === 'random' ? 'random' : o.detector,
    arch,
    sha256,
    proposals: staged.proposals,
    detections: staged.detections,
    host_ms: staged.host,
    profiled_pass_ms: wallMs,
    timed_images: o.images,
    seconds_per_image: perImage,
    images_per_second: perImage > 0 ? 1 / perImage : 0,
  };
  return {
    rows,
    summary: {
      adapter: rt.adapterName,
      date: new Date().toISOString(),
      model: 'detector', size: o.size, dtype: 'f32', backward: false, warmup: o.warmup,
      timing,
      timing_note: timing === 'timestamp'
        ? 'GPU time per dispatch from timestamp queries, each dispatch in its own compute pass'
        : 'no timestamp-query on this adapter: wall time per scope (one submit per scope change, replayed one at a time and waited for), split among the scope\'s dispatches by their roofline time; includes submit latency',
      probe: { fma_gflops: probe.fmaGflops, copy_gbps: probe.copyGbps },
      matmul_case: `matmul ${MATMUL_CASE}`,
      matmul_gflops: matmulRow.gflops,
      efficiency,
      peak_bytes: peak,
      total_ms: totalMs,
      host_ms: hostMs,
      host_us_per_dispatch: dispatches > 1 ? (1000 * hostMs) / dispatches : 0,
      models,
      ops: opTotals(rows, probe),
      notes: [
        `detector: maskrcnn_resnet50_fpn${detector.arch === 'v2' ? '_v2' : ''}, ${o.detector === 'random' ? 'random weights (randomDetectorSource)' : `checkpoint ${o.detector}`}; one ${o.size}x${o.size} image (not resized), at most ${o.maxDetections ?? 100} detections; `
          + `${detector.proposals} proposals into the box head, ${detector.detections} detections into the mask head (both depend on the weights and the image)`,
        `throughput: ${detector.images_per_second.toFixed(3)} images/s (${detector.seconds_per_image.toFixed(2)} s per image, mean of ${o.images} unprofiled detect() call(s) after the profiled pass)`,
        `host side of the profiled pass (ms): read-backs incl. GPU waits ${detector.host_ms.readback.toFixed(1)}, anchors + proposal filtering + RPN NMS ${detector.host_ms.proposals.toFixed(1)}, `
          + `postprocess_detections (decode, per-class NMS) ${detector.host_ms.postprocess_detections.toFixed(1)}, mask branch + paste calls incl. waits ${detector.host_ms.mask_select_and_crops.toFixed(1)}`,
        'FLOPs and bytes are analytic per dispatch (src/bench/cost.ts); host time excludes pipeline creation and includes the profiler\'s own bookkeeping',
      ],
      detector,
    },
  };
}
