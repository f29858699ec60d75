// Parity for the detector's operation fixtures (component `detector`, `fixture: "ops"`,
// e.g. ../shared/golden/detector/ops): every unit case of the manifest's `cases` runs
// through the engine's ops (src/nn/{roi_align,nms,boxes,mask_paste,anchors,rcnn_transform})
// on the stored inputs. Names, sizes, thresholds and constants come from the manifest.
// Float outputs: max |a - e| / max |e| <= tolerance.per_tensor[name] ?? tolerance.default;
// I64 outputs (keep lists, levels, sizes, paste boxes) exactly.
// The `detector` component also has model fixtures (maskrcnn_v1/v2); isDetectorOpsManifest
// tells the two apart.
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { Runtime } from '../../gpu/runtime.js';
import { SafetensorsFile } from '../../io/safetensors.js';
import { gridAnchors } from '../../nn/anchors.js';
import { clipBoxesToImage, decodeBoxes, removeSmallBoxes, resizeBoxes, type BoxCoderWeights } from '../../nn/boxes.js';
import { pasteMasksInImage } from '../../nn/mask_paste.js';
import { batchedNms } from '../../nn/nms.js';
import { rcnnTransform } from '../../nn/rcnn_transform.js';
import { multiScaleRoiAlign, roiAlign } from '../../nn/roi_align.js';
import { Tensor } from '../../tensor/tensor.js';
import type { ParityCheck } from './types.js';

type Json = Record<string, unknown>;
type Log = (msg: string) => void;

/** True for an ops fixture (unit cases), false for a model fixture of the same component. */
export function isDetectorOpsManifest(manifest: Json): boolean {
  return manifest.fixture === 'ops' || (Array.isArray(manifest.cases) && manifest.model === undefined && manifest.weights === undefined);
}

interface TensorSpec {
  shape: number[];
  dtype: string;
  kind?: string;
  definition?: string;
}

/** Everything a case handler needs: the stored tensors, the checks and the tolerances. */
class Ctx {
  readonly checks: ParityCheck[] = [];
  constructor(
    readonly rt: Runtime, readonly io: SafetensorsFile, readonly specs: Record<string, TensorSpec>,
    readonly constants: Json, private readonly tolerance: { default?: number; per_tensor?: Record<string, number> }, readonly where: string,
  ) {}

  has(name: string): boolean {
    return Object.hasOwn(this.specs, name) && this.io.tensors.has(name);
  }

  spec(name: string): TensorSpec {
    if (!this.has(name)) throw new InputError(`${this.where}: tensor '${name}' is not in the manifest's io.tensors and io.safetensors`);
    return this.specs[name];
  }

  f32(name: string): Promise<Float32Array> {
    this.spec(name);
    return this.io.readF32(name);
  }

  async ints(name: string): Promise<number[]> {
    this.spec(name);
    return Array.from(await this.io.readI64(name), Number);
  }

  async tensor(name: string): Promise<Tensor> {
    const s = this.spec(name);
    return Tensor.from(this.rt, await this.io.readF32(name), s.shape, 'f32', name);
  }

  /** Compares `actual` with stored `name`: exactly for integer dtypes, else within tolerance. */
  async compare(name: string, actual: ArrayLike<number>): Promise<void> {
    const s = this.spec(name);
    if (s.dtype.startsWith('I') || s.dtype.startsWith('U')) {
      this.checks.push({ name, actual: Array.from(actual), expected: await this.ints(name), metric: 'exact', tol: 0 });
    } else {
      const tol = this.tolerance.per_tensor?.[name] ?? this.tolerance.default ?? 1e-4;
      this.checks.push({ name, actual: Array.from(actual), expected: Array.from(await this.io.readF32(name)), metric: 'rel_max', tol });
    }
  }

  /** Names of stored tensors matching `re`, in manifest order. */
  names(re: RegExp): string[] {
    return Object.keys(this.specs).filter((n) => re.test(n));
  }
}

const num = (v: unknown, what: string): number => {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new InputError(`detector ops manifest: ${what} must be a number, got ${JSON.stringify(v)}`);
  return v;
};
const pair = (v: unknown, what: string): [number, number] => {
  if (!Array.isArray(v) || v.length !== 2) throw new InputError(`detector ops manifest: ${what} must be [h, w], got ${JSON.stringify(v)}`);
  return [num(v[0], what), num(v[1], what)];
};
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

async function roiAlignCase(x: Ctx, c: Json, log: Log): Promise<void> {
  const [inputName, roisName] = c.inputs as string[];
  const input = await x.tensor(inputName);
  const rois = await x.f32(roisName);
  for (const v of c.variants as Json[]) {
    log(`detector ops: roi_align ${String(v.name)}`);
    const out = roiAlign(input, rois, {
      outputSize: pair(v.output_size, 'roi_align output_size'), spatialScale: num(v.spatial_scale, 'spatial_scale'),
      samplingRatio: num(v.sampling_ratio, 'sampling_ratio'), aligned: v.aligned === true,
    });
    await x.compare(String(v.output), await out.toArray());
    out.dispose();
  }
  input.dispose();
}

async function multiScaleCase(x: Ctx, c: Json, log: Log): Promise<void> {
  const ra = x.constants.roi_align as Json;
  const lm = (x.constants.level_mapper ?? {}) as Json;
  const names = (ra.featmap_names as string[]).map(String);
  const inputs = c.inputs as string[];
  // Feature maps in the caller's order, those MultiScaleRoIAlign pools from (others such
  // as 'pool' are passed and ignored, as torchvision's _filter_input does).
  const featNames = inputs.filter((n) => names.some((f) => n.endsWith(`.feature.${f}`)));
  const boxNames = inputs.filter((n) => /\.boxes\.\d+$/.test(n)).sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop()));
  const shapesName = inputs.find((n) => n.endsWith('image_shapes'));
  if (featNames.length !== names.length || !shapesName) throw new InputError(`${x.where}: multiscale_roi_align inputs ${inputs.join(', ')} lack feature maps ${names.join(', ')} or image_shapes`);
  const features = await Promise.all(featNames.map((n) => x.tensor(n)));
  const boxes = await Promise.all(boxNames.map((n) => x.f32(n)));
  const hw = await x.ints(shapesName);
  const imageSizes = Array.from({ length: hw.length / 2 }, (_, i): [number, number] => [hw[2 * i], hw[2 * i + 1]]);
  const mapper = {
    canonicalScale: num(lm.canonical_scale ?? 224, 'canonical_scale'), canonicalLevel: num(lm.canonical_level ?? 4, 'canonical_level'), eps: num(lm.eps ?? 1e-6, 'eps'),
  };
  let levelsDone = false;
  for (const outName of c.outputs as string[]) {
    const m = /\.out(\d+)\.output$/.exec(outName);
    if (!m) continue;
    log(`detector ops: multiscale_roi_align ${m[1]}x${m[1]}`);
    const r = multiScaleRoiAlign(features, boxes, imageSizes, { outputSize: Number(m[1]), samplingRatio: num(ra.sampling_ratio, 'sampling_ratio'), ...mapper });
    await x.compare(outName, await r.output.toArray());
    r.output.dispose();
    if (!levelsDone) {
      for (const n of (c.outputs as string[]).filter((o) => o.endsWith('.levels'))) await x.compare(n, r.levels);
      for (const n of (c.outputs as string[]).filter((o) => o.endsWith('.scales'))) await x.compare(n, r.scales);
      levelsDone = true;
    }
  }
  for (const f of features) f.dispose();
}

async function nmsCase(x: Ctx, c: Json, log: Log): Promise<void> {
  for (const [key, sub] of Object.entries(c)) {
    if (typeof sub !== 'object' || sub === null || !('inputs' in sub) || !('outputs' in sub)) continue;
    const s = sub as { inputs: string[]; outputs: Record<string, string> };
    const find = (suffix: string) => {
      const n = s.inputs.find((i) => i.endsWith(suffix));
      if (!n) throw new InputError(`${x.where}: batched_nms case ${key} has no ${suffix} input`);
      return n;
    };
    const boxes = await x.f32(find('.boxes'));
    const scores = await x.f32(find('.scores'));
    const idxs = await x.ints(find('.idxs'));
    for (const [thr, outName] of Object.entries(s.outputs)) {
      log(`detector ops: batched_nms ${key} at ${thr}`);
      await x.compare(outName, batchedNms(boxes, scores, idxs, num(Number(thr), `threshold ${thr}`)));
    }
  }
}

/** 'a.{b,c}.d' -> ['a.b.d', 'a.c.d']. */
function expandBraces(s: string): string[] {
  const m = /\{([^}]*)\}/.exec(s);
  if (!m) return [s];
  return m[1].split(',').flatMap((alt) => expandBraces(s.slice(0, m.index) + alt.trim() + s.slice(m.index + m[0].length)));
}

async function boxDecodeCase(x: Ctx, c: Json, log: Log): Promise<void> {
  const outputs = (c.outputs as string[]).flatMap(expandBraces);
  const decoded = outputs.filter((n) => n.endsWith('.decoded'));
  const prefix = decoded[0]?.split('.').slice(0, -2).join('.') ?? 'ops.box_decode';
  const reference = await x.f32(`${prefix}.reference_boxes`);
  const codes = await x.f32(`${prefix}.rel_codes`);
  const hw = pair(c.image_hw, 'box_decode image_hw');
  const clip = num(c.bbox_xform_clip ?? x.constants.bbox_xform_clip, 'bbox_xform_clip');
  for (const dec of decoded) {
    const coder = dec.split('.').slice(-2, -1)[0];
    // The weights: from the tensor's definition "BoxCoder(weights=(...))", else the constants.
    const fromDef = /weights=\(([^)]*)\)/.exec(x.spec(dec).definition ?? '');
    const weights = (fromDef ? fromDef[1].split(',').map(Number) : (x.constants[coder === 'rpn' ? 'rpn_box_coder_weights' : 'roi_box_coder_weights'] as number[])) as unknown as BoxCoderWeights;
    log(`detector ops: box_decode ${coder} weights (${weights.join(', ')})`);
    const boxes = decodeBoxes(codes, reference, weights, clip);
    await x.compare(dec, boxes);
    const base = dec.slice(0, -'.decoded'.length);
    const clipped = clipBoxesToImage(boxes, hw);
    if (outputs.includes(`${base}.clipped`)) await x.compare(`${base}.clipped`, clipped);
    for (const k of outputs.filter((n) => n.startsWith(`${base}.keep_min`))) {
      await x.compare(k, removeSmallBoxes(clipped, num(Number(k.slice(`${base}.keep_min`.length)), `min size of ${k}`)));
    }
  }
}

async function pasteCase(x: Ctx, c: Json, log: Log): Promise<void> {
  const hw = pair(c.image_hw, 'paste image_hw');
  const padding = num(c.padding ?? (x.constants.mask_paste as Json | undefined)?.padding ?? 1, 'padding');
  for (const [name, list] of Object.entries(c.variants as Record<string, string[]>)) {
    log(`detector ops: paste_masks_in_image ${name}`);
    const find = (suffix: string) => list.find((n) => n.endsWith(suffix)) ?? '';
    const masks = await x.tensor(find('.masks'));
    const boxes = await x.f32(find('.boxes'));
    const r = pasteMasksInImage(masks, boxes, hw, padding);
    const out = find('.output');
    await x.compare(out, await r.masks.toArray());
    const pb = `${out.slice(0, -'.output'.length)}.paste_boxes`;
    if (x.has(pb)) await x.compare(pb, r.pasteBoxes);
    masks.dispose();
    r.masks.dispose();
  }
}

async function transformCase(x: Ctx, c: Json, log: Log): Promise<void> {
  const k = x.constants;
  const images = await Promise.all((c.images as string[]).map((n) => x.tensor(n)));
  for (const v of c.variants as Json[]) {
    log(`detector ops: transform min_size ${String(v.min_size)} max_size ${String(v.max_size)}`);
    const r = rcnnTransform(images, {
      minSize: num(v.min_size, 'min_size'), maxSize: num(v.max_size, 'max_size'),
      imageMean: k.image_mean as [number, number, number], imageStd: k.image_std as [number, number, number], sizeDivisible: num(k.size_divisible, 'size_divisible'),
    });
    const batch = String(v.batch);
    await x.compare(batch, await r.batch.toArray());
    r.batch.dispose();
    const sizesName = batch.replace(/\.batch$/, '.image_sizes');
    if (x.has(sizesName)) await x.compare(sizesName, r.imageSizes.flat());
  }
  for (const im of images) im.dispose();
  const rb = c.resize_boxes as Json | undefined;
  if (rb) {
    log('detector ops: resize_boxes');
    const boxes = await x.f32(String(rb.inputs));
    await x.compare(String(rb.output), resizeBoxes(boxes, pair(rb.from_hw, 'from_hw'), pair(rb.to_hw, 'to_hw')));
  }
}

async function anchorsCase(x: Ctx, c: Json, log: Log): Promise<void> {
  log('detector ops: anchors');
  const feats = (c.feature_hw as unknown[]).map((f, i) => pair(f, `feature_hw[${i}]`));
  const g = gridAnchors(pair(c.padded_hw, 'padded_hw'), feats, x.constants.anchor_sizes as number[][], x.constants.anchor_aspect_ratios as number[][]);
  const out = String(c.output);
  await x.compare(out, g.anchors);
  const prefix = out.replace(/\.output$/, '.cell_anchors.');
  for (const n of x.names(new RegExp(`^${escape(prefix)}\\d+$`))) await x.compare(n, g.cells[Number(n.slice(prefix.length))]);
}

const CASES: Record<string, (x: Ctx, c: Json, log: Log) => Promise<void>> = {
  roi_align: roiAlignCase,
  multiscale_roi_align: multiScaleCase,
  batched_nms: nmsCase,
  box_decode: boxDecodeCase,
  paste_masks_in_image: pasteCase,
  transform: transformCase,
  anchors: anchorsCase,
};

/** Runs every unit case of a detector ops fixture in `dir`; returns one check per output. */
export async function runDetectorOpsParity(dir: string, manifest: Json, log: Log): Promise<ParityCheck[]> {
  const where = join(dir, 'manifest.json');
  const cases = manifest.cases;
  if (!Array.isArray(cases) || cases.length === 0) throw new InputError(`${where}: has no 'cases' list (not a detector ops fixture)`);
  const io = manifest.io as { file?: string; tensors?: Record<string, TensorSpec> } | undefined;
  if (!io?.tensors) throw new InputError(`${where}: has no io.tensors`);
  const file = await SafetensorsFile.open(join(dir, io.file ?? 'io.safetensors'));
  const rt = await Runtime.create();
  try {
    const x = new Ctx(rt, file, io.tensors, (manifest.constants ?? {}) as Json, (manifest.tolerance ?? {}) as { default?: number }, where);
    for (const c of cases as Json[]) {
      const run = CASES[String(c.case)];
      if (!run) {
        x.checks.push({ name: `case ${String(c.case)} (no handler in this version)`, actual: [NaN], expected: [0], metric: 'exact', tol: 0 });
        continue;
      }
      await run(x, c, log);
    }
    return x.checks;
  } finally {
    rt.destroy();
    await file.close();
  }
}
