// The detector side of annotation: pycocotools-compatible compressed RLE (hand-worked
// strings from maskApi.c's rule: differences from the fourth count on, negative values,
// multi-group values; round trips through the project's independent decoder on random
// masks), the class -> COCO label mapping (VOC names, custom aliases, refusals), and the
// official rule (top-scoring instance per class, score >= 0.05, mask > 0.5) on
// hand-built detections.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/gpu/errors.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { generateTensor, generatedUniforms, type GeneratedTensorSpec } from '../../src/models/detector/generated_weights.js';
import { loadMaskRCNN } from '../../src/models/detector/load.js';
import { COCO_CATEGORIES } from '../../src/models/detector/categories.js';
import type { DetectionResult } from '../../src/models/detector/maskrcnn.js';
import { cocoLabelsFor, detectorAnnotator, officialMasks } from '../../src/pipeline/annotate/detector.js';
import { countsFromString, rleToMask } from '../../src/pipeline/annotate/rle.js';
import { countsToString, encodeRle, maskToCounts } from '../../src/pipeline/annotate/rle_encode.js';
import { goldenDir, rng, runtime } from '../helpers.js';

describe('COCO RLE encoder', () => {
  it('writes the compressed strings maskApi.c writes', () => {
    // 2x2 [[0,1],[1,1]]: column-major 0,1,1,1 -> counts [1, 3].
    expect(maskToCounts([0, 1, 1, 1], 2, 2)).toEqual([1, 3]);
    expect(countsToString([1, 3])).toBe('13');
    // From the fourth count on the difference to the count two before: 10 - 2 = 8.
    expect(countsToString([5, 2, 1, 10])).toBe('5218');
    // 1 - 2 = -1: one group 0x1f (sign bit set, no continuation) -> 'O'.
    expect(countsToString([10, 2, 3, 1])).toBe(':23O');
    // 100 = 3 * 32 + 4: group 4 with the continuation bit (36 -> 'T'), then 3.
    expect(countsToString([100])).toBe('T3');
    // 16 needs two groups (bit 4 of a last group is the sign): 16 | 0x20 = 48 -> '`', then 0.
    expect(countsToString([16])).toBe('`0');
    // A mask starting inside has an empty first 0-run.
    expect(maskToCounts([1, 0, 1, 0], 2, 2)).toEqual([0, 2, 2]);
    expect(maskToCounts([1, 1, 0, 0], 2, 2)).toEqual([0, 1, 1, 1, 1]);
  });

  it('round-trips random masks through the decoder', () => {
    const r = rng(5);
    for (const [h, w, p] of [[1, 1, 0.5], [7, 5, 0.3], [40, 33, 0.9], [64, 64, 0.02], [300, 200, 0.5]] as const) {
      const mask = Uint8Array.from({ length: h * w }, () => (r() < p ? 1 : 0));
      const rle = encodeRle(mask, h, w);
      expect(rle.size).toEqual([h, w]);
      expect(countsFromString(rle.counts as string, 'test')).toEqual(maskToCounts(mask, h, w));
      expect(Array.from(rleToMask(rle, 'test'))).toEqual(Array.from(mask));
    }
  });
});

describe('detector annotator rule', () => {
  it('maps VOC and COCO names both ways, aliases, and nothing else', () => {
    const label = (n: string) => COCO_CATEGORIES.indexOf(n);
    expect(cocoLabelsFor('aeroplane')).toEqual([label('airplane')]);
    expect(cocoLabelsFor('airplane')).toEqual([label('airplane')]);
    expect(cocoLabelsFor('tvmonitor')).toEqual([label('tv')]);
    expect(cocoLabelsFor('pottedplant')).toEqual([label('potted plant')]);
    expect(cocoLabelsFor('Dining Table')).toEqual([label('dining table')]);
    expect(cocoLabelsFor('puppy')).toEqual([]);
    expect(cocoLabelsFor('puppy', { puppy: ['dog'] })).toEqual([label('dog')]);
    expect(cocoLabelsFor('vehicle', { vehicle: ['car', 'truck', 'bus'] }).sort((a, b) => a - b)).toEqual([label('car'), label('bus'), label('truck')].sort((a, b) => a - b));
    expect(cocoLabelsFor('N/A')).toEqual([]);
  });

  it('takes the top-scoring qualifying instance per class, thresholds its mask at > 0.5', () => {
    const W = 6;
    const H = 4;
    const dog = COCO_CATEGORIES.indexOf('dog');
    const cat = COCO_CATEGORIES.indexOf('cat');
    const person = COCO_CATEGORIES.indexOf('person');
    const crop = (x0: number, y0: number, width: number, height: number, v: number[]) => ({ x0, y0, width, height, data: Float32Array.from(v) });
    const det: DetectionResult = {
      width: W, height: H,
      boxes: new Float32Array(16),
      scores: Float32Array.from([0.9, 0.6, 0.04, 0.05]),
      labels: Int32Array.from([dog, dog, cat, person]),
      masks: [
        crop(1, 1, 2, 2, [0.51, 0.5, 0.9, 0.2]),
        crop(0, 0, 6, 4, new Array(24).fill(1)),
        crop(0, 0, 1, 1, [1]),
        crop(5, 3, 1, 1, [0.7]),
      ],
    };
    const out = officialMasks(det, ['dog', 'cat', 'person', 'sofa'], (c) => cocoLabelsFor(c), 0.05, 0.5);
    const expectMask = (pixels: number[]) => Array.from({ length: W * H }, (_, i) => (pixels.includes(i) ? 1 : 0));
    expect(Array.from(out.get('dog') ?? [])).toEqual(expectMask([1 * W + 1, 2 * W + 1]));
    expect(out.get('cat')).toBeNull();
    expect(Array.from(out.get('person') ?? [])).toEqual(expectMask([3 * W + 5]));
    expect(out.get('sofa')).toBeNull();
    expect([...out.keys()]).toEqual(['dog', 'cat', 'person', 'sofa']);
  });
});

describe('detector annotator on the full v1 model', () => {
  const dir = goldenDir('detector/maskrcnn_v1');
  const tmp = mkdtempSync(join(tmpdir(), 'det-annot-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it.skipIf(!dir)('refuses unmapped classes up front; annotate applies the rule to the model\'s detections', async () => {
    const rt = await runtime();
    const m = JSON.parse(readFileSync(join(dir as string, 'manifest.json'), 'utf8')) as { weights: { seed: number; tensors: Record<string, GeneratedTensorSpec> } };
    const ckpt = join(tmp, 'v1.safetensors');
    await writeSafetensors(ckpt, Object.fromEntries(Object.entries(m.weights.tensors).map(([n, spec]) => [n, { dtype: 'F32' as const, shape: spec.shape, data: generateTensor(n, spec, m.weights.seed) }])));
    const [W, H] = [64, 48];
    // The annotator reads the 8-bit image (rgba / 255); rgb is deliberately not it.
    const u = generatedUniforms('annotator.image', 1, 3 * H * W);
    const rgba = new Uint8Array(W * H * 4);
    for (let i = 0; i < W * H; i++) for (let c = 0; c < 4; c++) rgba[4 * i + c] = c === 3 ? 255 : Math.floor(256 * u[c * W * H + i]);
    const rgb = Float32Array.from({ length: 3 * W * H }, (_, k) => rgba[4 * (k % (W * H)) + Math.floor(k / (W * H))] / 255);
    const noise = Float32Array.from(rgb, (v, k) => (k % 2 ? v : 1 - v));
    const sizes = { minSize: 96, maxSize: 128 };
    const annotator = await detectorAnnotator(rt, { checkpoint: ckpt, ...sizes });
    const model = await loadMaskRCNN(rt, ckpt, { config: { min_size: 96, max_size: 128 } });
    try {
      expect(annotator.identity).toMatchObject({ annotator: 'detector', model: 'maskrcnn_resnet50_fpn', score_threshold: 0.05, mask_threshold: 0.5 });
      expect(String(annotator.identity.sha256)).toMatch(/^[0-9a-f]{64}$/);
      await expect(annotator.prepare?.([{ id: 's0', classes: ['dog', 'puppy', 'gadget'] }])).rejects.toThrow(InputError);
      await expect(annotator.prepare?.([{ id: 's0', classes: ['dog', 'puppy'] }])).rejects.toThrow(/'puppy'/);
      await annotator.prepare?.([{ id: 's0', classes: ['aeroplane', 'tvmonitor', 'person'] }]);
      // Every class the model detected plus one it did not: the rule on the model's own output.
      const [det] = await model.detect(rt, [{ width: W, height: H, rgb }]);
      expect(det.scores.length).toBeGreaterThan(0);
      const found = [...new Set(Array.from(det.labels))].map((l) => COCO_CATEGORIES[l]).filter((c) => c !== 'N/A');
      const missing = COCO_CATEGORIES.find((c, l) => l > 0 && c !== 'N/A' && !det.labels.includes(l)) as string;
      const classes = [...found.slice(0, 3), missing];
      const got = await annotator.annotate({ id: 's0', image: { width: W, height: H, rgb: noise, rgba }, classes, prompt: '' });
      const want = officialMasks(det, classes, (c) => cocoLabelsFor(c), 0.05, 0.5);
      expect([...got.keys()]).toEqual(classes);
      expect(got.get(missing)).toBeNull();
      for (const c of classes) expect(got.get(c) && Array.from(got.get(c) as Uint8Array), c).toEqual(want.get(c) && Array.from(want.get(c) as Uint8Array));
    } finally {
      annotator.dispose();
      model.dispose();
    }
  });
});
