// Parity for the detector model fixtures (golden/detector/maskrcnn_v1, _v2 and every set
// in their format): torchvision's Mask R-CNN with weights from the fixtures' generator
// (models/detector/generated_weights.ts), run stage by stage, each stage from its stored
// inputs (README section 7), compared with the rules of README section 8:
//   weights (check.weights.*) -> transform -> backbone + FPN -> RPN head -> anchors ->
//   RPN decode -> proposals -> box branch on the stored proposals -> detections from the
//   stored logits -> mask branch on the stored detections -> paste from the stored boxes
//   and probabilities.
// Settings, constants, names, shapes, counts and tolerances all come from the manifest.
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { Runtime } from '../../gpu/runtime.js';
import { SafetensorsFile } from '../../io/safetensors.js';
import { COCO_CATEGORIES } from '../../models/detector/categories.js';
import { detectorConfig, type DetectorArch, type DetectorConfig } from '../../models/detector/config.js';
import { generateTensor, generatedWeightSource, type GeneratedWeights } from '../../models/detector/generated_weights.js';
import { MaskRCNN } from '../../models/detector/maskrcnn.js';
import { selectMaskProbs, postprocessDetections } from '../../models/detector/roi_heads.js';
import { decodeRpn, flattenRpnOutputs, preNmsTopN } from '../../models/detector/rpn.js';
import { scopeAsync } from '../../tensor/scope.js';
import { Tensor } from '../../tensor/tensor.js';
import { checkPaste } from './detector_paste.js';
import { matchChecks, summaryChecks, type MatchTolerance, type SummarySpec } from './detector_match.js';
import type { ParityCheck } from './types.js';

interface DetectorManifest {
  tolerance: { default: number; per_tensor?: Record<string, number>; proposals: MatchTolerance; detections: MatchTolerance };
  settings: Record<string, unknown> & { transform: Record<string, unknown> };
  constants: Record<string, any>;
  weights: GeneratedWeights;
  inputs: { images: string[] };
  io: { tensors: Record<string, { shape: number[]; dtype: string; kind: string }> };
  summaries: { tensors: Record<string, SummarySpec> };
  margins?: { level_mapper?: Record<string, { fragile?: unknown[] }> };
}

/** v1 or v2 from the weight names (fc6 is TwoMLPHead's, box_head.5 the v2 conv head's). */
function archOf(m: DetectorManifest, where: string): DetectorArch {
  const t = m.weights?.tensors ?? {};
  if ('roi_heads.box_head.fc6.weight' in t) return 'v1';
  if ('roi_heads.box_head.5.weight' in t) return 'v2';
  throw new InputError(`${where}: weights.tensors has neither roi_heads.box_head.fc6 (v1) nor roi_heads.box_head.5 (v2): not a Mask R-CNN fixture`);
}

export function manifestDetectorConfig(m: DetectorManifest, arch: DetectorArch): DetectorConfig {
  const s = m.settings as Record<string, any>;
  const t = s.transform;
  const c = m.constants;
  return detectorConfig({
    arch,
    num_classes: c.num_classes,
    min_size: t.min_size,
    max_size: t.max_size,
    image_mean: t.image_mean ?? c.image_mean,
    image_std: t.image_std ?? c.image_std,
    size_divisible: c.size_divisible,
    rpn_pre_nms_top_n_test: s.rpn_pre_nms_top_n_test,
    rpn_post_nms_top_n_test: s.rpn_post_nms_top_n_test,
    rpn_nms_thresh: s.rpn_nms_thresh,
    rpn_score_thresh: s.rpn_score_thresh,
    box_score_thresh: s.box_score_thresh,
    box_nms_thresh: s.box_nms_thresh,
    box_detections_per_img: s.box_detections_per_img,
    rpn_box_coder_weights: c.rpn_box_coder_weights,
    roi_box_coder_weights: c.roi_box_coder_weights,
    bbox_xform_clip: c.bbox_xform_clip,
    rpn_min_size: c.rpn_min_size,
    detection_min_size: c.detection_min_size,
    anchor_sizes: c.anchor_sizes,
    anchor_aspect_ratios: c.anchor_aspect_ratios,
    roi_align: {
      sampling_ratio: c.roi_align.sampling_ratio, aligned: c.roi_align.aligned,
      box_output_size: c.roi_align.box_output_size, mask_output_size: c.roi_align.mask_output_size,
    },
    level_mapper: { canonical_scale: c.level_mapper.canonical_scale, canonical_level: c.level_mapper.canonical_level, eps: c.level_mapper.eps },
    mask_paste_padding: c.mask_paste.padding,
  });
}

/** Reads io tensors and records checks under the manifest's tolerances. */
export class DetectorIo {
  readonly checks: ParityCheck[] = [];
  constructor(readonly io: SafetensorsFile, readonly m: DetectorManifest, readonly log: (msg: string) => void) {}

  has(name: string): boolean {
    return this.io.tensors.has(name);
  }
  f32(name: string): Promise<Float32Array> {
    return this.io.readF32(name);
  }
  async f64(name: string): Promise<Float64Array> {
    const raw = await this.io.readRaw(name);
    if (this.io.info(name).dtype !== 'F64') return Float64Array.from(await this.io.readF32(name));
    return new Float64Array(raw.buffer, raw.byteOffset, raw.byteLength / 8);
  }
  async i64(name: string): Promise<number[]> {
    return Array.from(await this.io.readI64(name), Number);
  }
  shape(name: string): number[] {
    return this.io.info(name).shape;
  }
  tol(name: string): number {
    return this.m.tolerance.per_tensor?.[name] ?? this.m.tolerance.default;
  }
  /** Per-image list names `<prefix>.<i><suffix>` for the images of the fixture. */
  perImage(prefix: string, suffix = ''): string[] {
    return this.m.inputs.images.map((_, i) => `${prefix}.${i}${suffix}`);
  }

  exact(name: string, actual: ArrayLike<number>, expected: ArrayLike<number>): void {
    this.checks.push({ name, actual: Array.from(actual), expected: Array.from(expected), metric: 'exact', tol: 0 });
  }
  /** A float tensor, in full or as its summary (whichever the manifest stores). */
  async float(name: string, actual: Float32Array | Tensor): Promise<void> {
    const values = actual instanceof Float32Array ? actual : await actual.toArray();
    const spec = this.m.summaries?.tensors?.[name];
    if (spec) {
      const [head, tail, sub, stats] = await Promise.all([this.f32(spec.parts.head), this.f32(spec.parts.tail), this.f32(spec.parts.sub), this.f64(spec.parts.stats)]);
      this.checks.push(...summaryChecks(spec, { head, tail, sub, stats }, values, this.tol(name)));
    } else {
      this.checks.push({ name, actual: values, expected: await this.f32(name), metric: 'rel_max', tol: this.tol(name) });
    }
  }
}

/** check.weights.<name>.head64 bit for bit and .sum (and every table sum_f64) within 1e-9. */
async function checkWeights(d: DetectorIo): Promise<void> {
  const { seed, tensors } = d.m.weights;
  const relErr: number[] = [];
  for (const [name, spec] of Object.entries(tensors)) {
    if (spec.dtype !== 'F32') continue;
    const head = `check.weights.${name}.head64`;
    const sumName = `check.weights.${name}.sum`;
    const listed = d.has(head) || d.has(sumName);
    if (!listed && spec.sum_f64 === undefined) continue;
    const v = generateTensor(name, spec, seed, 'manifest weights');
    let s = 0;
    for (let i = 0; i < v.length; i++) s += v[i];
    if (spec.sum_f64 !== undefined) relErr.push(Math.abs(s - spec.sum_f64) / Math.max(Math.abs(spec.sum_f64), 1e-300));
    if (d.has(head)) {
      const ref = await d.f32(head);
      d.exact(head, v.subarray(0, ref.length), ref);
    }
    if (d.has(sumName)) d.checks.push({ name: sumName, actual: [s], expected: await d.f64(sumName), metric: 'rel_max', tol: 1e-9 });
  }
  d.checks.push({ name: `weights.tensors[*].sum_f64 (${relErr.length} tensors, relative)`, actual: relErr, expected: relErr.map(() => 0), metric: 'abs', tol: 1e-9 });
}

type HW = [number, number];

export async function runDetectorModelParity(dir: string, manifest: Record<string, unknown>, log: (msg: string) => void = () => {}): Promise<ParityCheck[]> {
  const m = manifest as unknown as DetectorManifest;
  const where = join(dir, 'manifest.json');
  const arch = archOf(m, where);
  const cfg = manifestDetectorConfig(m, arch);
  const io = await SafetensorsFile.open(join(dir, 'io.safetensors'));
  const d = new DetectorIo(io, m, log);
  const rt = await Runtime.create();
  const model = new MaskRCNN(cfg);
  try {
    log(`detector ${arch}: generating and checking weights`);
    await checkWeights(d);
    const cats = (manifest as { categories?: unknown }).categories;
    if (Array.isArray(cats)) {
      // The built-in names (CLI results, annotator) against the fixture's label order.
      d.exact('categories (built-in COCO names, index = label)', cats.map((c, i) => (COCO_CATEGORIES[i] === c ? 1 : 0)), cats.map(() => 1));
    }
    await model.load(rt, generatedWeightSource(m.weights, `${where} weights`));
    await scopeAsync(() => runStages(rt, model, d));
    return d.checks;
  } finally {
    model.dispose();
    rt.destroy();
    await io.close();
  }
}

async function runStages(rt: Runtime, model: MaskRCNN, d: DetectorIo): Promise<void> {
  const cfg = model.cfg;
  const images = d.m.inputs.images;
  // Transform.
  const originals = await d.i64('transform.original_sizes');
  const inputs = await Promise.all(images.map(async (name, i) => ({ height: originals[2 * i], width: originals[2 * i + 1], rgb: await d.f32(name) })));
  const t = model.transform(rt, inputs);
  await d.float('transform.batch', t.batch);
  d.exact('transform.image_sizes', t.imageSizes.flat(), await d.i64('transform.image_sizes'));
  const imageSizes = chunk(await d.i64('transform.image_sizes'), 2) as HW[];
  // Backbone and FPN on the stored batch.
  d.log('detector: backbone and FPN');
  const batch = await upload(rt, d, 'transform.batch');
  const { body, fpn } = model.backbone.forward(batch);
  for (const [i, b] of body.entries()) await d.float(`backbone.body.${i}`, b);
  const levelNames = ['0', '1', '2', '3', 'pool'];
  for (const [i, f] of fpn.entries()) await d.float(`backbone.fpn.${levelNames[i]}`, f);
  for (const b of body) b.dispose();
  // RPN head on each level: the stored level where it is stored in full, else our own.
  d.log('detector: RPN head');
  for (const [l, f] of fpn.entries()) {
    const name = `backbone.fpn.${levelNames[l]}`;
    const input = d.has(name) ? await upload(rt, d, name) : f;
    const h = model.rpnHead([input])[0];
    await d.float(`rpn.head.objectness.${l}`, h.objectness);
    await d.float(`rpn.head.bbox_deltas.${l}`, h.deltas);
    h.objectness.dispose();
    h.deltas.dispose();
  }
  // Anchors.
  const [, , Hp, Wp] = d.shape('transform.batch');
  const { anchors, numAnchorsPerLevel } = model.anchors([Hp, Wp], fpn.map((f) => [f.shape[2], f.shape[3]] as HW));
  d.exact('rpn.anchors', anchors, await d.f32('rpn.anchors'));
  d.exact('rpn.num_anchors_per_level', numAnchorsPerLevel, await d.i64('rpn.num_anchors_per_level'));
  await checkRpn(model, d, imageSizes);
  await checkBoxBranch(model, d, fpn, imageSizes);
  await checkDetections(cfg, d, imageSizes);
  await checkMaskBranch(model, d, fpn, imageSizes);
  await checkPaste(rt, cfg, d, imageSizes, originals);
}

async function upload(rt: Runtime, d: DetectorIo, name: string): Promise<Tensor> {
  return Tensor.from(rt, await d.f32(name), d.shape(name), 'f32', name);
}

function chunk(v: number[], n: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < v.length; i += n) out.push(v.slice(i, i + n));
  return out;
}

/** RPN decode and filter from the stored head outputs and anchors. */
async function checkRpn(model: MaskRCNN, d: DetectorIo, imageSizes: HW[]): Promise<void> {
  d.log('detector: RPN decode and proposals');
  const head: { objectness: Float32Array; deltas: Float32Array; shape: number[] }[] = [];
  for (let l = 0; d.has(`rpn.head.objectness.${l}`); l++) {
    head.push({ objectness: await d.f32(`rpn.head.objectness.${l}`), deltas: await d.f32(`rpn.head.bbox_deltas.${l}`), shape: d.shape(`rpn.head.objectness.${l}`) });
  }
  const anchors = await d.f32('rpn.anchors');
  const perLevel = await d.i64('rpn.num_anchors_per_level');
  const proposals = model.proposals(head, anchors, perLevel, imageSizes);
  const flat = imageSizes.map((_, i) => flattenRpnOutputs(head, i));
  const decoded = flat.map((f) => decodeRpn(f, anchors, model.cfg));
  const allDecoded = new Float32Array(decoded.reduce((s, x) => s + x.length, 0));
  decoded.forEach((x, i) => allDecoded.set(x, i * x.length));
  await d.float('rpn.decoded', allDecoded);
  const refTop = await d.i64('rpn.pre_nms_top_n_idx');
  const perImage = refTop.length / imageSizes.length;
  const topk = flat.flatMap((f) => preNmsTopN(f.objectness, perLevel, model.cfg.rpn_pre_nms_top_n_test).idx);
  if (topk.length === refTop.length && topk.every((v, i) => v === refTop[i])) {
    d.exact('rpn.pre_nms_top_n_idx', topk, refTop);
  } else {
    await topKModuloFragile(d, topk, refTop, perImage);
  }
  for (const [i, p] of proposals.entries()) {
    const fr = `rpn.fragile.${i}`;
    const fragile = d.has(`${fr}.boxes`) ? { boxes: await d.f32(`${fr}.boxes`), scores: await d.f32(`${fr}.scores`) } : { boxes: [], scores: [] };
    const ref = { boxes: await d.f32(`rpn.proposals.${i}`), scores: await d.f32(`rpn.proposal_scores.${i}`) };
    const { checks, summary } = matchChecks({ boxes: `rpn.proposals.${i}`, scores: `rpn.proposal_scores.${i}` }, ref, p, fragile, d.m.tolerance.proposals);
    d.checks.push(...checks);
    d.log(`detector: proposals of image ${i}: ${summary}`);
  }
}

/** The top-k anchor lists differ: each image's list must hold the stored anchors except
 *  those the fragile list names (a near-tie at the top-k boundary), in any order. */
async function topKModuloFragile(d: DetectorIo, topk: number[], refTop: number[], perImage: number): Promise<void> {
  let uncovered = 0;
  for (let i = 0; i * perImage < refTop.length; i++) {
    const fragile = new Set(d.has(`rpn.fragile.${i}.anchor_idx`) ? await d.i64(`rpn.fragile.${i}.anchor_idx`) : []);
    const mine = new Set(topk.slice(i * perImage, (i + 1) * perImage));
    const ref = new Set(refTop.slice(i * perImage, (i + 1) * perImage));
    for (const a of mine) if (!ref.has(a) && !fragile.has(a)) uncovered++;
    for (const a of ref) if (!mine.has(a) && !fragile.has(a)) uncovered++;
  }
  d.log(`detector: rpn.pre_nms_top_n_idx differs in order or in fragile anchors; ${uncovered} anchors differ outside the fragile lists`);
  d.exact('rpn.pre_nms_top_n_idx', [topk.length, uncovered], [refTop.length, 0]);
}

/** Row indices a margins.level_mapper.<list>.fragile entry names. */
function fragileRows(entries: unknown[] | undefined): Set<number> {
  const out = new Set<number>();
  for (const e of entries ?? []) {
    if (typeof e === 'number') out.add(e);
    else if (Array.isArray(e) && typeof e[0] === 'number') out.add(e[0]);
    else if (e && typeof e === 'object' && typeof (e as { index?: unknown }).index === 'number') out.add((e as { index: number }).index);
  }
  return out;
}

/** Levels equal except at the level-mapper boundary cases the manifest lists. */
async function checkLevels(d: DetectorIo, name: string, levels: Int32Array, list: string): Promise<void> {
  const ref = await d.i64(name);
  const fragile = fragileRows(d.m.margins?.level_mapper?.[list]?.fragile);
  d.exact(name, Array.from(levels, (v, i) => (fragile.has(i) ? ref[i] : v)), ref);
  if (fragile.size) d.log(`detector: ${name}: rows ${[...fragile].join(', ')} are level-mapper boundary cases, not compared`);
}

async function checkBoxBranch(model: MaskRCNN, d: DetectorIo, fpn: Tensor[], imageSizes: HW[]): Promise<void> {
  d.log('detector: box branch on the stored proposals');
  const proposals = await Promise.all(d.perImage('rpn.proposals').map((n) => d.f32(n)));
  await scopeAsync(async () => {
    const { pooled, levels } = model.roi_heads.pool(fpn, proposals, imageSizes, model.cfg.roi_align.box_output_size);
    await checkLevels(d, 'roi_heads.box_roi_pool.levels', levels, 'proposals');
    await d.float('roi_heads.box_roi_pool', pooled);
    const { features, classLogits, boxRegression } = model.roi_heads.boxBranch(pooled);
    await d.float('roi_heads.box_head', features);
    await d.float('roi_heads.class_logits', classLogits);
    await d.float('roi_heads.box_regression', boxRegression);
  });
}

async function checkDetections(cfg: DetectorConfig, d: DetectorIo, imageSizes: HW[]): Promise<void> {
  d.log('detector: detections from the stored logits, regression and proposals');
  const logits = await d.f32('roi_heads.class_logits');
  const regression = await d.f32('roi_heads.box_regression');
  const K = cfg.num_classes;
  let row = 0;
  for (const [i, size] of imageSizes.entries()) {
    const proposals = await d.f32(`rpn.proposals.${i}`);
    const P = proposals.length / 4;
    const det = postprocessDetections(logits.subarray(row * K, (row + P) * K), regression.subarray(row * 4 * K, (row + P) * 4 * K), proposals, size, cfg);
    row += P;
    const fr = `detections.fragile.${i}`;
    const fragile = d.has(`${fr}.boxes`)
      ? { boxes: await d.f32(`${fr}.boxes`), scores: await d.f32(`${fr}.scores`), labels: await d.i64(`${fr}.labels`) }
      : { boxes: [], scores: [], labels: [] };
    const ref = { boxes: await d.f32(`detections.${i}.boxes`), scores: await d.f32(`detections.${i}.scores`), labels: await d.i64(`detections.${i}.labels`) };
    const names = { boxes: `detections.${i}.boxes`, scores: `detections.${i}.scores`, labels: `detections.${i}.labels` };
    const { checks, summary } = matchChecks(names, ref, det, fragile, d.m.tolerance.detections);
    d.checks.push(...checks);
    d.log(`detector: detections of image ${i}: ${summary}`);
  }
}

async function checkMaskBranch(model: MaskRCNN, d: DetectorIo, fpn: Tensor[], imageSizes: HW[]): Promise<void> {
  d.log('detector: mask branch on the stored detections');
  const cfg = model.cfg;
  const boxes = await Promise.all(d.perImage('detections', '.boxes').map((n) => d.f32(n)));
  const labels = await Promise.all(d.perImage('detections', '.labels').map((n) => d.i64(n)));
  await scopeAsync(async () => {
    const { pooled, levels } = model.roi_heads.pool(fpn, boxes, imageSizes, cfg.roi_align.mask_output_size);
    await checkLevels(d, 'roi_heads.mask_roi_pool.levels', levels, 'detections');
    await d.float('roi_heads.mask_roi_pool', pooled);
    const { features, logits } = model.roi_heads.maskBranch(pooled);
    await d.float('roi_heads.mask_head', features);
    const all = await logits.toArray();
    await d.float('roi_heads.mask_logits', all);
    const M = logits.shape[2];
    const { selected, probs } = selectMaskProbs(all, Int32Array.from(labels.flat()), cfg.num_classes, M);
    await d.float('roi_heads.mask_logits_selected', selected);
    let row = 0;
    for (const [i, l] of labels.entries()) {
      await d.float(`roi_heads.mask_probs.${i}`, probs.subarray(row * M * M, (row + l.length) * M * M));
      row += l.length;
    }
  });
}
