// `grounded-sd detect IMAGE... --model CKPT [--arch v1|v2] [--score 0.05] [--out DIR]`:
// torchvision's Mask R-CNN (v1 maskrcnn_resnet50_fpn or v2 maskrcnn_resnet50_fpn_v2, from
// a .pth state dict or safetensors) on each PNG or JPEG image, one at a time. Per image it writes
// an overlay PNG (masks > 0.5 of the detections with score >= --score, labelled with
// category and score), and after each image it rewrites DIR/results.json (COCO results:
// image_id, category_id, bbox [x, y, w, h], score, segmentation as compressed RLE) and
// DIR/images.json (the image ids with their files and sizes, and the categories), so an
// interrupted batch leaves the finished images' results. Progress goes to stderr, the
// written paths to stdout.
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { InputError, UsageError } from '../gpu/errors.js';
import { Runtime } from '../gpu/runtime.js';
import { writeFileAtomic } from '../io/atomic.js';
import { readImageFile } from '../io/image_file.js';
import { writePng } from '../io/png.js';
import { renderOverlay } from '../io/render/overlay.js';
import { uniqueFileNames } from '../io/render/names.js';
import { checkWritable } from '../io/writable.js';
import { COCO_CATEGORIES, isRealCategory } from '../models/detector/categories.js';
import { loadMaskRCNN } from '../models/detector/load.js';
import type { DetectionResult, PastedMask } from '../models/detector/maskrcnn.js';
import { encodeRle } from '../pipeline/annotate/rle_encode.js';
import { choiceOption, joinNegativeValues, numberOption } from './args.js';
import type { Command } from './main.js';

const USAGE = 'grounded-sd detect IMAGE... --model CKPT [--arch v1|v2] [--score 0.05] [--out DIR] [--min-size 800] [--max-size 1333]';

export interface DetectOptions {
  images: string[];
  model: string;
  arch?: 'v1' | 'v2';
  /** Detections below this score are left out of the results and the overlays. */
  score: number;
  out: string;
  /** The transform's resize bounds (torchvision: 800 and 1333). */
  minSize?: number;
  maxSize?: number;
  log?: (msg: string) => void;
}

/** One entry of a COCO results file. */
export interface CocoResult {
  image_id: number;
  category_id: number;
  category_name: string;
  bbox: [number, number, number, number];
  score: number;
  segmentation: { size: [number, number]; counts: string };
}

/** RGB in [0, 1], [3, H, W], as torchvision's to_tensor (alpha dropped). */
function rgbPlanes(rgba: Uint8Array, width: number, height: number): Float32Array {
  const n = width * height;
  const out = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[c * n + i] = rgba[4 * i + c] / 255;
  return out;
}

/** A pasted mask thresholded (> threshold) into a full row-major image mask. */
export function fullMask(m: PastedMask, width: number, height: number, threshold: number): Uint8Array {
  const out = new Uint8Array(width * height);
  for (let y = 0; y < m.height; y++) {
    for (let x = 0; x < m.width; x++) if (m.data[y * m.width + x] > threshold) out[(m.y0 + y) * width + m.x0 + x] = 1;
  }
  return out;
}

const round = (v: number, d: number) => Math.round(v * 10 ** d) / 10 ** d;

/** A label's name: COCO's for the 91-class models, `class <label>` for others. */
export function categoryName(label: number, numClasses: number): string {
  if (numClasses !== COCO_CATEGORIES.length) return `class ${label}`;
  return isRealCategory(label) ? COCO_CATEGORIES[label] : `N/A (${label})`;
}

/** COCO results of one image: detections with score >= minScore, masks at > 0.5. */
export function cocoResults(imageId: number, det: DetectionResult, minScore: number, numClasses: number): { results: CocoResult[]; masks: Uint8Array[] } {
  const results: CocoResult[] = [];
  const masks: Uint8Array[] = [];
  for (let k = 0; k < det.scores.length; k++) {
    if (!(det.scores[k] >= minScore)) continue;
    const [x1, y1, x2, y2] = det.boxes.subarray(4 * k, 4 * k + 4);
    const mask = fullMask(det.masks[k], det.width, det.height, 0.5);
    const label = det.labels[k];
    results.push({
      image_id: imageId,
      category_id: label,
      category_name: categoryName(label, numClasses),
      bbox: [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
      score: round(det.scores[k], 6),
      segmentation: encodeRle(mask, det.height, det.width) as { size: [number, number]; counts: string },
    });
    masks.push(mask);
  }
  return { results, masks };
}

const seconds = (s: number) => `${s.toFixed(1)}s`;

/** Runs the detector over `opts.images`; returns the written paths. */
export async function detectImages(opts: DetectOptions): Promise<string[]> {
  const log = opts.log ?? (() => {});
  if (opts.images.length === 0) throw new UsageError('give at least one PNG or JPEG image to detect objects in');
  if (!(opts.score >= 0 && opts.score <= 1)) throw new UsageError(`--score must be in [0, 1], got ${opts.score}`);
  const overlayNames = uniqueFileNames(opts.images.map((p) => basename(p).replace(/\.[^.]*$/, '')), '.png', 'image');
  const resultsPath = join(opts.out, 'results.json');
  const imagesPath = join(opts.out, 'images.json');
  checkWritable([resultsPath, imagesPath, ...overlayNames.map((n) => join(opts.out, n))], '--out');
  // Every input is checked before the model loads: a bad file fails in the first second.
  for (const p of opts.images) await readImageFile(p);
  const rt = await Runtime.create();
  try {
    const t0 = performance.now();
    const config = { ...(opts.minSize ? { min_size: opts.minSize } : {}), ...(opts.maxSize ? { max_size: opts.maxSize } : {}) };
    const model = await loadMaskRCNN(rt, opts.model, { arch: opts.arch, config });
    log(`detect: ${model.cfg.arch === 'v1' ? 'maskrcnn_resnet50_fpn' : 'maskrcnn_resnet50_fpn_v2'} from ${opts.model} ready in ${seconds((performance.now() - t0) / 1000)}`);
    const results: CocoResult[] = [];
    const images: { id: number; file_name: string; width: number; height: number; overlay: string }[] = [];
    const written: string[] = [];
    try {
      for (const [i, path] of opts.images.entries()) {
        const start = performance.now();
        const { width, height, rgba } = await readImageFile(path);
        const [det] = await model.detect(rt, [{ width, height, rgb: rgbPlanes(rgba, width, height) }]);
        const id = i + 1;
        const r = cocoResults(id, det, opts.score, model.cfg.num_classes);
        const overlayPath = join(opts.out, overlayNames[i]);
        const overlay = renderOverlay(rgba, width, height, r.results.map((res, k) => ({ name: `${res.category_name} ${res.score.toFixed(2)}`, mask: r.masks[k] })));
        await writePng(overlayPath, overlay.image.data, overlay.image.width, overlay.image.height);
        results.push(...r.results);
        images.push({ id, file_name: path, width, height, overlay: overlayNames[i] });
        await writeFileAtomic(resultsPath, `${JSON.stringify(results)}\n`);
        const categories = Array.from({ length: model.cfg.num_classes - 1 }, (_, k) => ({ id: k + 1, name: categoryName(k + 1, model.cfg.num_classes) }))
          .filter((c) => model.cfg.num_classes !== COCO_CATEGORIES.length || isRealCategory(c.id));
        await writeFileAtomic(imagesPath, `${JSON.stringify({ images, categories }, null, 1)}\n`);
        written.push(overlayPath);
        const top = r.results.slice(0, 3).map((x) => `${x.category_name} ${x.score.toFixed(2)}`).join(', ');
        log(`[${i + 1}/${opts.images.length}] ${path} (${width}x${height}): ${r.results.length} detection${r.results.length === 1 ? '' : 's'} with score >= ${opts.score}${top ? ` (${top}${r.results.length > 3 ? ', ...' : ''})` : ''} in ${seconds((performance.now() - start) / 1000)}`);
      }
    } finally {
      model.dispose();
    }
    return [resultsPath, imagesPath, ...written];
  } finally {
    rt.destroy();
  }
}

export const detectCommand: Command = {
  summary: 'detect and segment objects in PNG or JPEG images with torchvision Mask R-CNN (v1/v2): COCO results JSON and overlays',
  usage:
    `${USAGE}\n\n` +
    '--model  a torchvision Mask R-CNN state dict: .pth (read without Python) or .safetensors\n' +
    '--arch   v1 (maskrcnn_resnet50_fpn) or v2 (maskrcnn_resnet50_fpn_v2); default: from the checkpoint\n' +
    '--score  keep detections with score >= this (0..1, default 0.05)\n' +
    '--out    output folder (default detections/): results.json (COCO results, RLE masks),\n' +
    '         images.json (image ids, files, categories) and one overlay PNG per image\n' +
    '--min-size, --max-size  the resize bounds of the model\'s transform (torchvision: 800, 1333)',
  async run(argv) {
    const { positionals, values } = parseArgs({
      args: joinNegativeValues(argv, ['score', 'min-size', 'max-size']),
      allowPositionals: true,
      options: {
        model: { type: 'string' }, arch: { type: 'string' }, score: { type: 'string' }, out: { type: 'string', default: 'detections' },
        'min-size': { type: 'string' }, 'max-size': { type: 'string' },
      },
    });
    if (values.model === undefined) throw new UsageError('--model CKPT is required (a torchvision Mask R-CNN .pth or .safetensors state dict)');
    const score = numberOption('score', values.score, 0.05, { min: 0, max: 1, why: 'a detection score is a probability' });
    const arch = choiceOption('arch', values.arch, ['v1', 'v2'] as const);
    const size = { integer: true, min: 1, max: 1 << 14, why: 'pixels' };
    const minSize = numberOption('min-size', values['min-size'], 800, size);
    const maxSize = numberOption('max-size', values['max-size'], 1333, size);
    const written = await detectImages({
      images: positionals, model: values.model, arch, score, out: values.out as string, minSize, maxSize, log: (m) => process.stderr.write(`${m}\n`),
    });
    for (const p of written) console.log(p);
    return 0;
  },
};
