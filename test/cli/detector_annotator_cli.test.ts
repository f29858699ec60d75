// `--annotator detector` in `grounded-sd dataset build` and `grounded-sd eval`: bad input
// refused by name before any generation (detector options without --annotator detector,
// no --detector, a missing checkpoint, one that is not Mask R-CNN, one of the other
// architecture); then on the tiny SD model with the full v1 detector (the detector
// fixture's generated weights, transform bounds 32 px to keep lavapipe fast): the masks
// each command writes equal what detectorAnnotator gives on the saved image.png (an
// independent path: the annotator called directly on the decoded PNG), and a resumed run
// with another checkpoint is refused.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetCommand } from '../../src/cli/dataset.js';
import { evalCommand } from '../../src/cli/eval.js';
import { runCommand } from '../../src/cli/main.js';
import { decodePng } from '../../src/io/png.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { generateTensor, type GeneratedTensorSpec } from '../../src/models/detector/generated_weights.js';
import { cocoLabelsFor, detectorAnnotator } from '../../src/pipeline/annotate/detector.js';
import { vocabulary } from '../../src/pipeline/eval/testsets.js';
import type { AnnotateSample } from '../../src/pipeline/annotate/types.js';
import type { SampleRecord } from '../../src/pipeline/eval/run.js';
import { goldenDir, runtime } from '../helpers.js';
import { capture } from './capture.js';

const dir = goldenDir('detector/maskrcnn_v1');
const tmp = mkdtempSync(join(tmpdir(), 'det-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const ckpt = join(tmp, 'v1.safetensors');
const other = join(tmp, 'v1-other.safetensors');
const SIZES = ['--detector-min-size', '32', '--detector-max-size', '32'];

const dataset = (args: string[]) => capture(() => runCommand('dataset', datasetCommand, args));
const evaluate = (args: string[]) => capture(() => runCommand('eval', evalCommand, args));

/** The sample the commands annotated, rebuilt from its saved PNG. */
function savedSample(png: string, id: string, classes: string[]): AnnotateSample {
  const img = decodePng(readFileSync(png));
  return { id, image: { width: img.width, height: img.height, rgba: img.rgba, rgb: new Float32Array(3 * img.width * img.height) }, classes, prompt: '' };
}

describe.skipIf(!dir)('--annotator detector (full v1 detector, tiny SD)', () => {
  beforeAll(async () => {
    const m = JSON.parse(readFileSync(join(dir as string, 'manifest.json'), 'utf8')) as { weights: { seed: number; tensors: Record<string, GeneratedTensorSpec> } };
    const tensors = Object.fromEntries(Object.entries(m.weights.tensors).filter(([, s]) => s.dtype === 'F32')
      .map(([n, spec]) => [n, { dtype: 'F32' as const, shape: spec.shape, data: generateTensor(n, spec, m.weights.seed) }]));
    // The generated weights' detections are mostly COCO classes outside VOC: the VOC
    // classes' logits are raised so that the prompts' classes are found.
    const voc = new Set(vocabulary('voc', '1').classes.flatMap((c) => cocoLabelsFor(c)));
    const bias = tensors['roi_heads.box_predictor.cls_score.bias'];
    bias.data = Float32Array.from(bias.data, (v, i) => (voc.has(i) ? v + 6 : v));
    await writeSafetensors(ckpt, tensors);
    // Another checkpoint: one bias changed.
    bias.data = Float32Array.from(bias.data, (v, i) => (i === 1 ? v + 0.5 : v));
    await writeSafetensors(other, tensors);
    await writeSafetensors(join(tmp, 'not-rcnn.safetensors'), { 'conv.weight': { dtype: 'F32', shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) } });
  });

  it('refuses bad detector options by name, before generating anything', async () => {
    const build = ['build', '--model', 'tiny', '--vocab', 'voc', '--split', '1', '--count', '1', '--steps', '2', '--out', join(tmp, 'bad')];
    const ev = ['--model', 'tiny', '--grounding', 'tiny', '--vocab', 'voc', '--split', '1', '--count', '1', '--steps', '2', '--out', join(tmp, 'bad-eval')];
    const cases: Array<[typeof dataset, string[], number, RegExp]> = [
      [dataset, [...build, '--detector', ckpt], 2, /--detector is for --annotator detector \(the annotator is daam\)/],
      [dataset, [...build, '--annotator', 'detector'], 2, /--annotator detector needs --detector CKPT/],
      [dataset, [...build, '--annotator', 'detector', '--detector', join(tmp, 'none.pth')], 1, /--detector .*none\.pth does not exist/],
      [dataset, [...build, '--annotator', 'detector', '--detector', ckpt, '--detector-arch', 'v3'], 2, /--detector-arch must be one of v1, v2, got 'v3'/],
      [dataset, [...build, '--annotator', 'detector', '--detector', ckpt, '--detector-score', '1.5'], 2, /--detector-score must be <= 1/],
      [dataset, [...build, '--annotator', 'detector', '--detector', join(tmp, 'not-rcnn.safetensors')], 1, /is not a torchvision Mask R-CNN checkpoint/],
      [dataset, [...build, '--annotator', 'detector', '--detector', ckpt, '--detector-arch', 'v2', ...SIZES], 1, /72 missing, 16 unexpected.*unexpected \(16\): backbone\.fpn\.inner_blocks\.0\.0\.bias/s],
      [evaluate, [...ev, '--annotator', 'masks', '--gt', tmp, '--detector-arch', 'v1'], 2, /--detector-arch is for --annotator detector \(the annotator is masks\)/],
      [evaluate, [...ev, '--annotator', 'detector'], 2, /--annotator detector needs --detector CKPT/],
      [evaluate, [...ev, '--annotator', 'detector', '--detector', ckpt, '--gt', tmp], 2, /--gt is for --annotator masks/],
      [evaluate, [...ev, '--annotator', 'detector', '--detector', join(tmp, 'none.pth')], 1, /--detector .*none\.pth does not exist/],
      [evaluate, [...ev, '--annotator', 'detector', '--detector', ckpt, '--detector-arch', 'v2', ...SIZES], 1, /72 missing, 16 unexpected/],
    ];
    for (const [cmd, args, code, msg] of cases) {
      const r = await cmd(args);
      expect(r.code, args.join(' ')).toBe(code);
      expect(r.err.join('\n'), args.join(' ')).toMatch(msg);
      expect(r.progress, args.join(' ')).not.toMatch(/denoise|\[1\//);
    }
  });

  it('dataset build and eval write the masks detectorAnnotator gives on the saved images; another checkpoint is refused on resume', async () => {
    const rt = await runtime();
    const direct = await detectorAnnotator(rt, { checkpoint: ckpt, minSize: 32, maxSize: 32 });
    try {
      // dataset build: 2 samples.
      const out = join(tmp, 'ds');
      const args = ['build', '--model', 'tiny', '--vocab', 'voc', '--split', '1', '--count', '2', '--steps', '2', '--annotator', 'detector', '--detector', ckpt, ...SIZES, '--out', out];
      const r = await dataset(args);
      expect(r.code, r.err.join('\n')).toBe(0);
      const settings = JSON.parse(readFileSync(join(out, 'dataset.json'), 'utf8')) as { annotator: Record<string, unknown> };
      expect(settings.annotator).toEqual(JSON.parse(JSON.stringify(direct.identity)));
      const records = readFileSync(join(out, 'manifest.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; status: string; classes: string[] });
      expect(records.length).toBe(2);
      let found = 0;
      for (const rec of records) {
        const sdir = join(out, 'samples', rec.id);
        if (rec.status !== 'ok') {
          // Skipped: the annotator finds none of its classes in the image the build made;
          // with no image saved, nothing to recompute from.
          expect(rec.status).toBe('skipped');
          continue;
        }
        const want = await direct.annotate(savedSample(join(sdir, 'image.png'), rec.id, rec.classes));
        const f = await SafetensorsFile.open(join(sdir, 'sample.safetensors'));
        try {
          const target = await f.readRaw('target');
          const n = rec.classes.length;
          const S = Math.sqrt(target.length / n);
          expect(JSON.parse(f.metadata.found)).toEqual(rec.classes.map((c) => want.get(c) != null && (want.get(c) as Uint8Array).includes(1)));
          rec.classes.forEach((c, k) => {
            const w = want.get(c);
            const got = Array.from(target.subarray(k * S * S, (k + 1) * S * S));
            expect(got, `${rec.id} ${c}`).toEqual(w ? Array.from(w) : new Array(S * S).fill(0));
            if (w?.includes(1)) found++;
          });
        } finally {
          await f.close();
        }
      }
      // Resume with another checkpoint: refused, naming the changed hash.
      const again = await dataset(args.map((a, i) => (a === ckpt ? other : args[i - 1] === '--count' ? '3' : a)));
      expect(again.code).toBe(1);
      expect(again.err.join('\n')).toMatch(/other settings.*sha256/s);

      // eval: 5 samples (one per test set), masks saved.
      const evOut = join(tmp, 'ev');
      const evArgs = ['--model', 'tiny', '--grounding', 'tiny', '--vocab', 'voc', '--split', '1', '--count', '1', '--steps', '2',
        '--annotator', 'detector', '--detector', ckpt, ...SIZES, '--out', evOut, '--save-masks'];
      const e = await evaluate(evArgs);
      expect(e.code, e.err.join('\n')).toBe(0);
      const results = JSON.parse(readFileSync(join(evOut, 'results.json'), 'utf8')) as { settings: Record<string, unknown> };
      expect(results.settings.annotator).toBe('detector');
      expect(results.settings.annotator_identity).toEqual(JSON.parse(JSON.stringify(direct.identity)));
      expect(JSON.parse(readFileSync(join(evOut, 'run.json'), 'utf8'))).toMatchObject({ annotator: { annotator: 'detector', sha256: direct.identity.sha256 } });
      const recs = readdirSync(join(evOut, 'samples')).filter((f) => f.endsWith('.json'))
        .map((f) => JSON.parse(readFileSync(join(evOut, 'samples', f), 'utf8')) as SampleRecord);
      expect(recs.length).toBe(5);
      for (const rec of recs) {
        const files = rec.files as NonNullable<SampleRecord['files']>;
        const want = await direct.annotate(savedSample(join(evOut, 'samples', files.image), rec.id, rec.classes));
        for (const c of rec.classes) {
          const w = want.get(c);
          expect(rec.ground_truth[c].status, `${rec.id} ${c}`).toBe(w ? 'mask' : 'missed');
          const png = decodePng(readFileSync(join(evOut, 'samples', files.masks.gt[c])));
          const got = Array.from({ length: png.width * png.height }, (_, i) => (png.rgba[4 * i] > 127 ? 1 : 0));
          expect(got, `${rec.id} ${c}`).toEqual(w ? Array.from(w) : new Array(png.width * png.height).fill(0));
          if (w?.includes(1)) found++;
        }
      }
      // Some class was found somewhere, so the comparisons are not all of empty masks.
      expect(found).toBeGreaterThan(0);
      // Resume with another checkpoint: refused before any generation.
      const evAgain = await evaluate([...evArgs.slice(0, -3).map((a) => (a === ckpt ? other : a)), '--count', '2', '--out', evOut]);
      expect(evAgain.code).toBe(1);
      expect(evAgain.err.join('\n')).toMatch(/other settings.*sha256/s);
      expect(evAgain.progress).not.toMatch(/\[1\//);
    } finally {
      direct.dispose();
    }
  });
});
