// Training the grounding module from built datasets (pipeline/dataset/source.ts, train.ts)
// on the tiny model, in both storage modes: regen features (recomputed with one UNet call)
// equal the f16-stored features within f16 rounding, element by element; training runs with
// batches of 2 from either and gives the same losses within f16 tolerance; validation mIoU
// is logged every K steps, equals an independent recomputation, and leaves the training
// run unchanged; a resumed run equals an uninterrupted one; curve.png is drawn; the CLI
// trains from a dataset folder.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../src/cli/main.js';
import { trainCommand } from '../../src/cli/train.js';
import type { Runtime } from '../../src/gpu/runtime.js';
import { decodePng } from '../../src/io/png.js';
import { StableDiffusion } from '../../src/models/sd.js';
import { DaamAnnotator } from '../../src/pipeline/annotate/daam.js';
import { buildDataset, datasetVocabulary, DatasetSource, trainOnDataset, type DatasetTrainOptions } from '../../src/pipeline/dataset/index.js';
import { BUILTIN_TINY_CONFIGS } from '../../src/pipeline/grounding_module.js';
import { segmoduleTrainable, uploadSample } from '../../src/pipeline/train/index.js';
import { scope } from '../../src/tensor/scope.js';
import { capture } from '../cli/capture.js';
import { runtime } from '../helpers.js';

let tmp = '';
let rt: Runtime;
let sd: StableDiffusion;
let regen = '';
let f16 = '';
const vocab = datasetVocabulary('voc', '2');

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'gsd-dstrain-'));
  rt = await runtime();
  sd = StableDiffusion.random(rt, BUILTIN_TINY_CONFIGS, 0);
  regen = join(tmp, 'regen');
  f16 = join(tmp, 'f16');
  const common = { model: 'tiny', vocab, count: 5, steps: 4, seed: 3 };
  await buildDataset(sd, new DaamAnnotator(), { ...common, out: regen, storage: 'regen' });
  await buildDataset(sd, new DaamAnnotator(), { ...common, out: f16, storage: 'f16' });
});
afterAll(async () => {
  sd?.dispose();
  await rm(tmp, { recursive: true, force: true });
});

function trainOpts(data: string, out: string, extra: Partial<DatasetTrainOptions> = {}): DatasetTrainOptions {
  return { data, out, sd, widths: 'tiny', seed: 11, steps: 4, lr: 1e-3, batch: 2, progress: false, ...extra };
}

const losses = (logs: Array<{ loss: number | null }>) => logs.map((l) => l.loss as number);

describe('training from a built dataset', () => {
  it('regen features (recomputed on the GPU) equal the stored f16 features within f16 rounding', async () => {
    const a = await DatasetSource.open(regen, { sd });
    const b = await DatasetSource.open(f16);
    expect(a.entries.length).toBe(5);
    expect(b.entries.length).toBe(5);
    for (let k = 0; k < 5; k++) {
      const [x, y] = [await a.read(a.entries[k]), await b.read(b.entries[k])];
      expect(y.classes).toEqual(x.classes);
      expect(Array.from(y.target.data)).toEqual(Array.from(x.target.data));
      expect(Array.from(y.textEmbedding.data)).toEqual(Array.from(x.textEmbedding.data));
      for (const g of ['low', 'mid', 'high', 'highest'] as const) {
        expect(y.features[g].length).toBe(x.features[g].length);
        x.features[g].forEach((fx, i) => {
          const fy = y.features[g][i];
          expect(fy.shape).toEqual(fx.shape);
          // f16 round-to-nearest: relative error <= 2^-11 (normal), absolute <= 2^-25 (subnormal).
          let worst = 0;
          for (let j = 0; j < fx.data.length; j++) worst = Math.max(worst, Math.abs(fx.data[j] - fy.data[j]) / Math.max(Math.abs(fx.data[j]) * 2 ** -11, 2 ** -25));
          expect(worst, `sample ${k} ${g}.${i}`).toBeLessThanOrEqual(1);
        });
      }
    }
  });

  it('trains with batches of 2 from either storage to the same losses (f16 tolerance)', async () => {
    const r1 = await trainOnDataset(rt, trainOpts(regen, join(tmp, 'run_regen')));
    const r2 = await trainOnDataset(rt, trainOpts(f16, join(tmp, 'run_f16'), { sd: undefined }));
    expect(r1.step).toBe(4);
    expect(r1.source.train.length).toBe(5);
    losses(r2.logs).forEach((l, i) => expect(Math.abs(l - losses(r1.logs)[i]) / losses(r1.logs)[i], `step ${i + 1}`).toBeLessThan(1e-2));
    for (const l of losses(r1.logs)) expect(l > 0 && Number.isFinite(l)).toBe(true);
    expect(JSON.parse(await readFile(join(tmp, 'run_regen', 'run.json'), 'utf8'))).toMatchObject({ settings: { strategy: 'no-zero-masks', storage: 'regen', config: 'tiny' } });
  });

  it('logs validation mIoU every K steps without changing the run, equal to a recomputation; resumes exactly; draws curve.png', async () => {
    const plain = await trainOnDataset(rt, trainOpts(regen, join(tmp, 'run_plain')));
    const out = join(tmp, 'run_val');
    const val = await trainOnDataset(rt, trainOpts(regen, out, { valEvery: 2, valCount: 1 }));
    expect(val.source.validation.map((e) => e.record.index)).toEqual([4]);
    expect(val.source.train.length).toBe(4);
    const lines = (await readFile(join(out, 'log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    expect(lines.map((l) => 'val_miou' in l)).toEqual([false, true, false, true]);
    for (const l of lines.filter((x) => 'val_miou' in x)) expect(l.val_miou >= 0 && l.val_miou <= 1).toBe(true);

    // Same held-out split, validation off: the losses must be identical.
    const noVal = await trainOnDataset(rt, trainOpts(regen, join(tmp, 'run_noval'), { valCount: 1 }));
    expect(losses(noVal.logs)).toEqual(losses(val.logs));
    expect(losses(plain.logs).length).toBe(4);

    // Recompute the last val_miou from the trained module: official BatchNorm (batch
    // statistics), mask = logit > 0, IoU over the classes the annotator found.
    const e = val.source.validation[0];
    const s = await val.source.read(e);
    const model = segmoduleTrainable(val.module);
    const logits = scope(() => model.forwardFn([uploadSample(rt, s)], { training: true }).logits[0]);
    const host = await logits.toArray();
    logits.dispose();
    const S = 64;
    const ious: number[] = [];
    e.record.found.forEach((found, c) => {
      if (!found) return;
      let inter = 0;
      let union = 0;
      for (let p = 0; p < S * S; p++) {
        const pr = host[c * S * S + p] > 0;
        const gt = s.target.data[c * S * S + p] > 0.5;
        if (pr && gt) inter++;
        if (pr || gt) union++;
      }
      ious.push(inter / union);
    });
    const want = ious.reduce((a, b) => a + b, 0) / ious.length;
    expect(Math.abs(lines[3].val_miou - want)).toBeLessThan(1e-12);

    // Resume: 2 steps, then on to 4, equals the uninterrupted run (validation included).
    const out2 = join(tmp, 'run_resume');
    await trainOnDataset(rt, trainOpts(regen, out2, { valEvery: 2, valCount: 1, steps: 2, checkpointEvery: 1 }));
    await trainOnDataset(rt, trainOpts(regen, out2, { valEvery: 2, valCount: 1, resume: true }));
    const resumed = (await readFile(join(out2, 'log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    expect(resumed.map((l) => l.loss)).toEqual(lines.map((l) => l.loss));
    expect(resumed.map((l) => l.val_miou)).toEqual(lines.map((l) => l.val_miou));

    const png = decodePng(await readFile(join(out, 'curve.png')));
    const has = (rgb: number[]) => {
      for (let i = 0; i < png.width * png.height; i++) if (png.rgba[4 * i] === rgb[0] && png.rgba[4 * i + 1] === rgb[1] && png.rgba[4 * i + 2] === rgb[2]) return true;
      return false;
    };
    expect(has([31, 119, 180])).toBe(true);
    expect(has([214, 39, 40])).toBe(true);
  });

  it('refuses a regen dataset without its model, and --val-count holding out everything', async () => {
    await expect(trainOnDataset(rt, trainOpts(regen, join(tmp, 'nomodel'), { sd: undefined }))).rejects.toThrow(/give the model it was built with \(--model tiny\)/);
    await expect(trainOnDataset(rt, trainOpts(regen, join(tmp, 'allval'), { valCount: 5 }))).rejects.toThrow(/would hold out all 5 usable samples/);
    await expect(trainOnDataset(rt, trainOpts(regen, join(tmp, 'noval'), { valEvery: 2 }))).rejects.toThrow(/--val-every needs --val-count/);
  });

  it('the CLI trains from a dataset folder (regen with --model tiny)', async () => {
    const out = join(tmp, 'cli_run');
    const r = await capture(() => runCommand('train', trainCommand, [
      '--data', regen, '--model', 'tiny', '--config', 'tiny', '--out', out, '--steps', '2', '--lr', '1e-3', '--batch', '2', '--val-count', '1', '--val-every', '1',
    ]));
    expect(r.code, r.err.join('\n')).toBe(0);
    const summary = JSON.parse(r.out[r.out.length - 1]);
    expect(summary).toMatchObject({ step: 2, samples: 4, validation: 1, left_out: 0, curve: join(out, 'curve.png') });
    expect(summary.val_miou >= 0 && summary.val_miou <= 1).toBe(true);
    const bad = await capture(() => runCommand('train', trainCommand, ['--data', regen, '--out', join(tmp, 'cli_bad'), '--steps', '1', '--config', 'tiny']));
    expect(bad.code).toBe(1);
    expect(bad.err.join('\n')).toMatch(/give the model it was built with/);
  });
});
