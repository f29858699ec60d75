// Dataset construction (pipeline/dataset) on the built-in tiny model: the sample plan and
// shards (pure functions), the tolerant manifest reader, builds with the daam annotator
// (masks equal DAAM computed by the independent generateWithDaam path) and with supplied
// PNG masks (stored exactly, missed classes zero, nothing found -> skipped), the regen
// storage (stored latents regenerate the sampling run's features bit for bit), two shards
// merged equal one build byte for byte, an interrupted build resumed equals an
// uninterrupted one, a failing disk leaves no half-written sample, and bad input (masks,
// vocabularies, splits, shard specs, changed settings, corrupt entries) is refused or left
// out with the reason.
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetCommand } from '../../src/cli/dataset.js';
import { runCommand } from '../../src/cli/main.js';
import { InputError, ShapeError, WeightError } from '../../src/gpu/errors.js';
import type { Runtime } from '../../src/gpu/runtime.js';
import { decodePng, encodePng } from '../../src/io/png.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { StableDiffusion } from '../../src/models/sd.js';
import { DaamAnnotator } from '../../src/pipeline/annotate/daam.js';
import type { Annotator } from '../../src/pipeline/annotate/types.js';
import { generateWithDaam } from '../../src/pipeline/daam_generate.js';
import {
  buildDataset, datasetAnnotator, datasetVocabulary, DatasetSource, featureCall, fileDatasetIo, generateSample, mergeDatasets, parseShard, planSample,
  readManifest, resolveGeneration, sampleId, shardIndices, type BuildOptions, type DatasetIo,
} from '../../src/pipeline/dataset/index.js';
import { readFeatures } from '../../src/pipeline/dataset/generate.js';
import { BUILTIN_TINY_CONFIGS } from '../../src/pipeline/grounding_module.js';
import { rowWeights } from '../../src/pipeline/train/loop.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { capture } from '../cli/capture.js';
import { runtime } from '../helpers.js';

const STEPS = 4;
const SIZE = 64;
let tmp = '';
let rt: Runtime;
let sd: StableDiffusion;
const vocab = datasetVocabulary('voc', '1');
/** The reference: samples 0..3 built in one uninterrupted call. */
let base = '';

function opts(out: string, extra: Partial<BuildOptions> = {}): BuildOptions {
  return { out, model: 'tiny', vocab, count: 4, steps: STEPS, ...extra };
}

/** Every file under `dir` (relative path -> bytes). */
async function tree(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.set(relative(dir, p), await readFile(p));
    }
  };
  await walk(dir);
  return out;
}

async function expectSameTree(a: string, b: string): Promise<void> {
  const [ta, tb] = [await tree(a), await tree(b)];
  expect([...tb.keys()].sort()).toEqual([...ta.keys()].sort());
  for (const [k, v] of ta) expect(Buffer.compare(v, tb.get(k) as Buffer), k).toBe(0);
}

async function readTensors(file: string): Promise<{ meta: Record<string, string>; t: Map<string, { shape: number[]; data: Float32Array }> }> {
  const f = await SafetensorsFile.open(file);
  try {
    const t = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, info] of f.tensors) t.set(name, { shape: [...info.shape], data: await f.readF32(name) });
    return { meta: f.metadata, t };
  } finally {
    await f.close();
  }
}

/** A 64x64 mask PNG: `inside` pixels get `level` (RGB), others 0. */
function maskPng(inside: (x: number, y: number) => boolean, level = 255, size = SIZE): Buffer {
  const rgba = new Uint8Array(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const v = inside(x, y) ? level : 0;
      rgba.set([v, v, v, 255], 4 * (y * size + x));
    }
  }
  return encodePng(rgba, size, size);
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'gsd-dataset-'));
  rt = await runtime();
  sd = StableDiffusion.random(rt, BUILTIN_TINY_CONFIGS, 0);
  base = join(tmp, 'base');
  await buildDataset(sd, new DaamAnnotator(), opts(base));
});
afterAll(async () => {
  sd?.dispose();
  await rm(tmp, { recursive: true, force: true });
});

describe('sample plan, shards, vocabularies', () => {
  it('plans half one-class, half two-class prompts over the seen classes, a pure function of (seed, index)', () => {
    const seen = new Set(vocab.split.seen);
    const plans = Array.from({ length: 200 }, (_, i) => planSample(vocab.split.seen, 7, i));
    plans.forEach((p, i) => {
      expect(p.id).toBe(String(i).padStart(6, '0'));
      expect(p.classes.length).toBe(i % 2 === 0 ? 1 : 2);
      for (const c of p.classes) expect(seen.has(c), c).toBe(true);
      expect(new Set(p.classes).size).toBe(p.classes.length);
      expect(p.prompt).toBe(p.classes.length === 1 ? `a photograph of a ${p.classes[0]}` : `a photograph of a ${p.classes[0]} and a ${p.classes[1]}`);
      expect(planSample(vocab.split.seen, 7, i)).toEqual(p);
    });
    expect(new Set(plans.map((p) => p.seed)).size).toBe(plans.length);
    // Every seen class is drawn (200 draws over 15 classes); no unseen class ever is.
    expect(new Set(plans.flatMap((p) => p.classes)).size).toBe(vocab.split.seen.length);
    expect(planSample(vocab.split.seen, 8, 3)).not.toEqual(planSample(vocab.split.seen, 7, 3));
  });

  it('shards partition the indices by k % n; malformed specs are refused', () => {
    const all = shardIndices(11);
    const parts = [0, 1, 2].map((i) => shardIndices(11, parseShard(`${i}/3`)));
    parts.forEach((p, i) => p.forEach((k) => expect(k % 3).toBe(i)));
    expect(parts.flat().sort((a, b) => a - b)).toEqual(all);
    for (const bad of ['3/2', '0/0', '2/2', '1.5/2', '1/2.0', 'a/b', '-1/2', '1', '1/2/3', '']) expect(() => parseShard(bad), bad).toThrow(InputError);
    expect(parseShard(' 1/2 ')).toEqual({ index: 1, count: 2 });
  });

  it('vocabularies: built-in splits, custom files, and unknown names refused', async () => {
    expect(vocab.split.seen.length).toBe(15);
    expect([...vocab.split.unseen].sort()).toEqual(['car', 'dog', 'sofa', 'train', 'tvmonitor']);
    expect(datasetVocabulary('coco', undefined).split.seen.length).toBe(65);
    expect(() => datasetVocabulary('pascal', '1')).toThrow(/--vocab pascal is not known/);
    expect(() => datasetVocabulary('voc', undefined)).toThrow(/needs --split/);
    expect(() => datasetVocabulary('voc', '4')).toThrow(InputError);
    const vf = join(tmp, 'vocab.txt');
    await writeFile(vf, '# animals\ncat\ndog\n\n  horse \n');
    const custom = datasetVocabulary(vf, undefined);
    expect(custom.classes).toEqual(['cat', 'dog', 'horse']);
    expect(custom.split.seen).toEqual(['cat', 'dog', 'horse']);
    const sf = join(tmp, 'split.txt');
    await writeFile(sf, 'horse\ncat\n');
    expect(datasetVocabulary(vf, sf).split).toMatchObject({ seen: ['cat', 'horse'], unseen: ['dog'] });
    const badSplit = join(tmp, 'bad_split.txt');
    await writeFile(badSplit, 'cat\nunicorn\nzebra\n');
    expect(() => datasetVocabulary('voc', badSplit)).toThrow(/names class\(es\) 'unicorn', 'zebra' that --vocab voc does not have/);
    await writeFile(join(tmp, 'dup.txt'), 'cat\ncat\n');
    expect(() => datasetVocabulary(join(tmp, 'dup.txt'), undefined)).toThrow(/listed twice/);
  });
});

describe('manifest', () => {
  it('drops a cut last line, keeps a whole one missing its newline, reports bad and repeated lines', async () => {
    const dir = join(tmp, 'manifest');
    await mkdir(dir, { recursive: true });
    const rec = (i: number) => JSON.stringify({ index: i, id: sampleId(i), prompt: 'a photograph of a cat', classes: ['cat'], seed: i, status: 'ok', found: [true], bytes: { image: 1, sample: 2 } });
    await writeFile(join(dir, 'manifest.jsonl'), `${rec(0)}\n${rec(1)}\n{"index":2,"id":"0000`);
    let m = await readManifest(dir);
    expect([...m.records.keys()]).toEqual([0, 1]);
    expect(m.problems).toEqual([]);
    expect(m.dirty).toBe(true);
    await writeFile(join(dir, 'manifest.jsonl'), `${rec(0)}\nnot json\n${rec(0)}\n${rec(3)}`);
    m = await readManifest(dir);
    expect([...m.records.keys()]).toEqual([0, 3]);
    expect(m.problems.length).toBe(2);
    expect(m.problems[0]).toMatch(/line 2: not valid JSON/);
    expect(m.problems[1]).toMatch(/line 3: index 0 is recorded twice/);
  });
});

describe('building with the daam annotator', () => {
  it('stores the image, the regen tensors and the DAAM masks of the same run (checked against generateWithDaam)', async () => {
    const settings = JSON.parse(await readFile(join(base, 'dataset.json'), 'utf8'));
    expect(settings).toMatchObject({ model: 'tiny', steps: STEPS, guidance_scale: 5, feature_timestep: 1, storage: 'regen', size: SIZE, annotator: { annotator: 'daam', threshold: 0.4 } });
    const m = await readManifest(base);
    expect([...m.records.keys()]).toEqual([0, 1, 2, 3]);
    for (let i = 0; i < 4; i++) {
      const plan = planSample(vocab.split.seen, 0, i);
      const r = m.records.get(i);
      expect(r).toMatchObject({ status: 'ok', prompt: plan.prompt, classes: plan.classes, seed: plan.seed });
      const dir = join(base, 'samples', plan.id);
      const png = decodePng(await readFile(join(dir, 'image.png')));
      const { meta, t } = await readTensors(join(dir, 'sample.safetensors'));
      expect([...t.keys()].sort()).toEqual(['latent', 'prompt_ids', 'target', 'text_embedding']);
      expect(t.get('latent')?.shape).toEqual([1, 4, 8, 8]);
      expect(t.get('prompt_ids')?.shape).toEqual([2, 77]);
      expect(Array.from(t.get('prompt_ids')?.data.subarray(77) ?? [])).toEqual(sd.tokenizer.encodePadded(plan.prompt));
      expect(t.get('text_embedding')?.shape).toEqual([plan.classes.length, 32]);
      expect(JSON.parse(meta.classes)).toEqual(plan.classes);
      // The independent DAAM path: same seed, schedule and guidance.
      const ref = await generateWithDaam(sd, { prompt: plan.prompt, steps: STEPS, guidanceScale: 5, seed: plan.seed, height: SIZE, width: SIZE, scheduler: 'ddim', words: plan.classes });
      expect(Buffer.compare(Buffer.from(png.rgba), Buffer.from(ref.images[0].rgba))).toBe(0);
      const target = t.get('target') as { shape: number[]; data: Float32Array };
      expect(target.shape).toEqual([plan.classes.length, SIZE, SIZE]);
      plan.classes.forEach((c, k) => {
        const want = ref.images[0].daam.find((d) => d.word === c)?.mask as Uint8Array;
        const row = target.data.subarray(k * SIZE * SIZE, (k + 1) * SIZE * SIZE);
        expect(want.includes(1)).toBe(true);
        expect(Array.from(row)).toEqual(Array.from(want));
        expect(r?.status === 'ok' && r.found[k]).toBe(true);
      });
    }
  });

  it('regen: one UNet call on the stored latents gives the sampling run\'s features bit for bit', async () => {
    const g = resolveGeneration(sd, { steps: STEPS });
    const plan = planSample(vocab.split.seen, 0, 1);
    const run = await generateSample(sd, plan, { ...g, negativePrompt: '' }, { features: true, daam: false });
    const { t } = await readTensors(join(base, 'samples', plan.id, 'sample.safetensors'));
    expect(Array.from(t.get('latent')?.data ?? [])).toEqual(Array.from(run.latent));
    const latent = Tensor.from(rt, run.latent, [1, 4, 8, 8]);
    const text = sd.encodePrompts(['', plan.prompt]);
    const again = await readFeatures(featureCall(sd, g, latent, text));
    latent.dispose();
    text.dispose();
    for (const grp of ['low', 'mid', 'high', 'highest'] as const) {
      expect(again[grp].length).toBe(run.features?.[grp].length);
      again[grp].forEach((a, i) => {
        const b = run.features?.[grp][i] as { shape: number[]; data: Float32Array };
        expect(a.shape).toEqual(b.shape);
        expect(Buffer.compare(Buffer.from(a.data.buffer), Buffer.from(b.data.buffer)), `${grp}.${i}`).toBe(0);
      });
    }
    // The features differ from sample to sample (the latents are really the sample's).
    const other = await generateSample(sd, planSample(vocab.split.seen, 0, 2), { ...g, negativePrompt: '' }, { features: true, daam: false });
    expect(other.lowNorm).not.toBe(run.lowNorm);
  });
});

describe('building with supplied masks', () => {
  it('stores the masks exactly; a missing or empty mask is a missed class (no loss); nothing found skips the sample', async () => {
    const gt = join(tmp, 'gt');
    const plans = [0, 1, 2, 3].map((i) => planSample(vocab.split.seen, 0, i));
    const rect = (x0: number, y0: number, x1: number, y1: number) => (x: number, y: number) => x >= x0 && x < x1 && y >= y0 && y < y1;
    const shapes = [rect(3, 5, 40, 30), rect(10, 10, 60, 50), rect(0, 0, 1, 1), rect(20, 2, 63, 61)];
    for (const p of plans) await mkdir(join(gt, p.id), { recursive: true });
    await writeFile(join(gt, plans[0].id, `${plans[0].classes[0]}.png`), maskPng(shapes[0]));
    await writeFile(join(gt, plans[1].id, `${plans[1].classes[0]}.png`), maskPng(shapes[1], 200));
    // plans[2]: no file at all -> nothing found -> skipped.
    await writeFile(join(gt, plans[3].id, `${plans[3].classes[0]}.png`), maskPng(() => false));
    await writeFile(join(gt, plans[3].id, `${plans[3].classes[1]}.png`), maskPng(shapes[3]));
    const out = join(tmp, 'masks');
    const annotator = await datasetAnnotator('masks', { gt, classes: vocab.classes });
    const s = await buildDataset(sd, annotator, opts(out));
    expect(s).toMatchObject({ planned: 4, built: 4, skipped: 1, stopped: false });
    const m = await readManifest(out);
    expect(m.records.get(2)).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/found none/) });
    expect((await readdir(join(out, 'samples'))).sort()).toEqual(['000000', '000001', '000003']);
    const want: Array<Array<((x: number, y: number) => boolean) | null>> = [[shapes[0]], [shapes[1], null], [], [null, shapes[3]]];
    for (const i of [0, 1, 3]) {
      const r = m.records.get(i);
      expect(r?.status === 'ok' && r.found).toEqual(want[i].map((w) => w !== null));
      const { t } = await readTensors(join(out, 'samples', sampleId(i), 'sample.safetensors'));
      const target = t.get('target')?.data as Float32Array;
      want[i].forEach((w, k) => {
        for (let y = 0; y < SIZE; y++) for (let x = 0; x < SIZE; x++) expect(target[k * SIZE * SIZE + y * SIZE + x]).toBe(w && w(x, y) ? 1 : 0);
      });
      // The training loop gives a missed class no loss (strategy no-zero-masks).
      const weights = rowWeights({ shape: [want[i].length, SIZE, SIZE], data: target }, 'no-zero-masks', 1);
      expect(Array.from(weights)).toEqual(want[i].map((w) => (w ? 1 : 0)));
    }
  });

  it('refuses a mask of the wrong size, a grey-level mask and a 0/1 mask, naming the file, and writes nothing', async () => {
    const plan = planSample(vocab.split.seen, 0, 0);
    const cases: Array<[string, Buffer, RegExp, typeof InputError]> = [
      ['size', maskPng((x) => x < 10, 255, 32), /is 32x32 .* but the generated image is 64x64/, ShapeError],
      ['grey', greyPng(), /not binary: it holds 3 levels \(0, 128, 255\)/, InputError],
      ['zero_one', maskPng((x) => x < 10, 1), /inside value is 1, which reads as outside/, InputError],
    ];
    for (const [name, png, msg, kind] of cases) {
      const gt = join(tmp, `gt_${name}`);
      await mkdir(join(gt, plan.id), { recursive: true });
      const file = join(gt, plan.id, `${plan.classes[0]}.png`);
      await writeFile(file, png);
      const out = join(tmp, `bad_${name}`);
      const annotator = await datasetAnnotator('masks', { gt, classes: vocab.classes });
      const err = await buildDataset(sd, annotator, opts(out, { count: 1 })).catch((e: unknown) => e);
      expect(err, name).toBeInstanceOf(kind);
      expect((err as Error).message).toMatch(msg);
      expect((err as Error).message).toContain(file);
      expect((await readManifest(out)).records.size).toBe(0);
      expect(await readdir(join(out, 'samples'))).toEqual([]);
    }
  });
});

/** A grey-level mask: 0, 128 and 255. */
function greyPng(): Buffer {
  const rgba = new Uint8Array(SIZE * SIZE * 4);
  for (let i = 0; i < SIZE * SIZE; i++) {
    const v = i % 3 === 0 ? 0 : i % 3 === 1 ? 128 : 255;
    rgba.set([v, v, v, 255], 4 * i);
  }
  return encodePng(rgba, SIZE, SIZE);
}

describe('resumable, shardable, nothing lost', () => {
  it('two shards merged equal one unsharded build, byte for byte', async () => {
    const [a, b] = [join(tmp, 'shard0'), join(tmp, 'shard1')];
    expect((await buildDataset(sd, new DaamAnnotator(), opts(a, { shard: parseShard('0/2') }))).built).toBe(2);
    expect((await buildDataset(sd, new DaamAnnotator(), opts(b, { shard: parseShard('1/2') }))).built).toBe(2);
    expect([...(await readManifest(a)).records.keys()]).toEqual([0, 2]);
    const merged = join(tmp, 'merged');
    const s = await mergeDatasets(merged, [b, a]);
    expect(s).toMatchObject({ inputs: 2, samples: 4, skipped: 0, gaps: 0 });
    await expectSameTree(base, merged);
    // Overlapping shards and other settings are refused; so is merging into a full folder.
    await expect(mergeDatasets(join(tmp, 'merged2'), [a, merged])).rejects.toThrow(/records 2 sample\(s\) another input also has \(indices 0, 2\)/);
    const other = join(tmp, 'other_steps');
    await buildDataset(sd, new DaamAnnotator(), opts(other, { count: 1, steps: 3 }));
    await expect(mergeDatasets(join(tmp, 'merged3'), [a, other])).rejects.toThrow(/was built with other settings .*steps: .*shard0 4, .*other_steps 3/);
    await expect(mergeDatasets(merged, [a])).rejects.toThrow(/already holds samples/);
  });

  it('an interrupted build, rerun, equals an uninterrupted one (stopAfter, abort signal, leftovers of a crash)', async () => {
    const out = join(tmp, 'resumed');
    let s = await buildDataset(sd, new DaamAnnotator(), opts(out, { stopAfter: 1 }));
    expect(s).toMatchObject({ built: 1, stopped: true });
    const stop = new AbortController();
    s = await buildDataset(sd, new DaamAnnotator(), opts(out, { signal: stop.signal, onEvent: (e) => e.kind === 'done' && stop.abort() }));
    expect(s).toMatchObject({ resumed: 1, built: 1, stopped: true });
    // A crash after sample 2's rename (no manifest line), inside sample 3's write (a temp
    // folder) and in the middle of a manifest append (a cut line).
    await cp(join(base, 'samples', '000002'), join(out, 'samples', '000002'), { recursive: true });
    await mkdir(join(out, 'samples', '.000003.tmp-999-0'));
    await writeFile(join(out, 'samples', '.000003.tmp-999-0', 'image.png'), 'half');
    await writeFile(join(out, 'manifest.jsonl'), `${await readFile(join(out, 'manifest.jsonl'), 'utf8')}{"index":2,"id":"000`);
    s = await buildDataset(sd, new DaamAnnotator(), opts(out));
    expect(s).toMatchObject({ resumed: 2, built: 2, stopped: false });
    await expectSameTree(base, out);
    // A finished dataset rerun builds nothing; a larger --count extends it.
    expect((await buildDataset(sd, new DaamAnnotator(), opts(out))).built).toBe(0);
    expect((await buildDataset(sd, new DaamAnnotator(), opts(out, { count: 5 }))).built).toBe(1);
  });

  it('a failing disk leaves no half-written sample; the rerun completes the same dataset', async () => {
    const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
    let n = 0;
    const failing: DatasetIo = {
      async writeSample(dir, files) {
        if (n++ < 2) return fileDatasetIo.writeSample(dir, files);
        await writeFile(join(dir, 'image.png'), encodePng(files.image.rgba, files.image.width, files.image.height));
        await writeFile(join(dir, 'sample.safetensors'), Buffer.alloc(100, 7));
        throw enospc();
      },
      appendLine: (p, l) => fileDatasetIo.appendLine(p, l),
    };
    const out = join(tmp, 'full_disk');
    await expect(buildDataset(sd, new DaamAnnotator(), opts(out, { io: failing }))).rejects.toThrow(/ENOSPC/);
    expect((await readdir(join(out, 'samples'))).sort()).toEqual(['000000', '000001']);
    expect([...(await readManifest(out)).records.keys()]).toEqual([0, 1]);
    // The disk fills while appending the manifest line: the renamed folder is rebuilt.
    const noLine: DatasetIo = { writeSample: (d, f) => fileDatasetIo.writeSample(d, f), appendLine: async () => Promise.reject(enospc()) };
    await expect(buildDataset(sd, new DaamAnnotator(), opts(out, { io: noLine }))).rejects.toThrow(/ENOSPC/);
    expect([...(await readManifest(out)).records.keys()]).toEqual([0, 1]);
    expect((await buildDataset(sd, new DaamAnnotator(), opts(out))).built).toBe(2);
    await expectSameTree(base, out);
  });
});

describe('bad input', () => {
  it('refuses a rerun with other settings, naming them', async () => {
    await expect(buildDataset(sd, new DaamAnnotator(), opts(base, { guidanceScale: 7.5 }))).rejects.toThrow(/built with other settings \(guidance_scale: stored 5, now 7.5\)/);
    await expect(buildDataset(sd, new DaamAnnotator(0.5), opts(base))).rejects.toThrow(/annotator.threshold: stored 0.4, now 0.5/);
    await expect(buildDataset(sd, new DaamAnnotator(), opts(join(tmp, 'fs'), { featureTimestep: 5 }))).rejects.toThrow(/--feature-step 5 is not a timestep of the 4-step DDIM schedule/);
  });

  it('leaves corrupt entries out of training with the reason, and refuses a damaged sample when read', async () => {
    const copy = join(tmp, 'corrupt');
    await cp(base, copy, { recursive: true });
    const f1 = join(copy, 'samples', '000001', 'sample.safetensors');
    await writeFile(f1, (await readFile(f1)).subarray(0, 300));
    const f2 = join(copy, 'samples', '000002', 'sample.safetensors');
    const b2 = await readFile(f2);
    b2[8] = 0x5b; // the header no longer starts with '{'
    await writeFile(f2, b2);
    const lines = (await readFile(join(copy, 'manifest.jsonl'), 'utf8')).split('\n');
    await writeFile(join(copy, 'manifest.jsonl'), [lines[0], lines[1], lines[2], '{"index": "x"}', lines[3], ''].join('\n'));
    const src = await DatasetSource.open(copy, { sd });
    expect(src.entries.map((e) => e.record.index)).toEqual([0, 3]);
    expect(src.problems.length).toBe(3);
    expect(src.problems.join('\n')).toMatch(/000001.*sample\.safetensors 300 bytes/);
    expect(src.problems.join('\n')).toMatch(/000002.*JSON object starting with '\{'/);
    expect(src.problems.join('\n')).toMatch(/line 4: index "x"/);
    // A NaN in the stored latents (same size, valid header) is refused when read.
    const f3 = join(copy, 'samples', '000003', 'sample.safetensors');
    const b3 = await readFile(f3);
    const headerLen = Number(b3.readBigUInt64LE(0));
    const f = await SafetensorsFile.open(f3);
    const at = 8 + headerLen + f.info('latent').begin + 4 * 5;
    await f.close();
    b3.writeFloatLE(Number.NaN, at);
    await writeFile(f3, b3);
    const nanSrc = await DatasetSource.open(copy, { sd });
    await expect(nanSrc.read(nanSrc.entries[1])).rejects.toThrow(/000003.*latent holds NaN at index 5/);
    // Regen samples recomputed with another model are refused, never trained on.
    const other = StableDiffusion.random(rt, BUILTIN_TINY_CONFIGS, 1);
    try {
      const wrong = await DatasetSource.open(base, { sd: other });
      await expect(wrong.read(wrong.entries[0])).rejects.toThrow(WeightError);
      await expect(wrong.read(wrong.entries[0])).rejects.toThrow(/features recomputed with this model differ/);
    } finally {
      other.dispose();
    }
    await expect(DatasetSource.open(base)).rejects.toThrow(/give the model it was built with \(--model tiny\)/);
  });

  it('the CLI refuses bad shard specs, unknown vocabularies and annotators before loading a model', async () => {
    const run = (...args: string[]) => capture(() => runCommand('dataset', datasetCommand, args));
    const common = ['build', '--model', 'tiny', '--vocab', 'voc', '--split', '1', '--count', '4', '--out', join(tmp, 'cli_bad')];
    for (const [spec, msg] of [['3/2', /index i must be below the count n/], ['0/0', /count n must be in 1/], ['1.5/2', /must be i\/n with integers/]] as const) {
      const r = await run(...common, '--shard', spec);
      expect(r.code, spec).toBe(2);
      expect(r.err.join('\n')).toMatch(msg);
    }
    let r = await run('build', '--model', 'tiny', '--vocab', 'klingon', '--count', '1', '--out', join(tmp, 'cli_bad'));
    expect(r.code).toBe(1);
    expect(r.err.join('\n')).toMatch(/--vocab klingon is not known/);
    r = await run(...common, '--annotator', 'oracle');
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toMatch(/--annotator must be one of daam, masks, detector/);
    r = await run(...common, '--annotator', 'detector');
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toMatch(/--annotator detector needs --detector CKPT/);
    r = await run(...common, '--annotator', 'masks');
    expect(r.code).toBe(1);
    expect(r.err.join('\n')).toMatch(/needs --gt/);
    r = await run('frobnicate');
    expect(r.code).toBe(2);
    await expect(stat(join(tmp, 'cli_bad'))).rejects.toThrow();
  });

  it('the CLI builds a daam dataset as the issue writes it (fewer steps) and merges shards', async () => {
    const run = (...args: string[]) => capture(() => runCommand('dataset', datasetCommand, args));
    const d = join(tmp, 'cli');
    const shardArgs = (i: number) => ['build', '--model', 'tiny', '--vocab', 'voc', '--split', '1', '--count', '4', '--annotator', 'daam', '--steps', String(STEPS), '--out', `${d}${i}`, '--shard', `${i}/2`];
    for (const i of [0, 1]) {
      const r = await run(...shardArgs(i));
      expect(r.code, r.err.join('\n')).toBe(0);
      expect(JSON.parse(r.out[0])).toMatchObject({ planned: 2, built: 2, stopped: false });
    }
    const r = await run('merge', `${d}m`, `${d}0`, `${d}1`);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out[0])).toMatchObject({ samples: 4, gaps: 0 });
    await expectSameTree(base, `${d}m`);
  });
});

// Keeps the annotator interface honest: an annotator answering for a class the sample does
// not name is refused by the shared check.
describe('annotator answers', () => {
  it('refuses answers for classes the sample does not name', async () => {
    const liar: Annotator = { name: 'liar', identity: { annotator: 'liar' }, annotate: async () => new Map([['unicorn', new Uint8Array(SIZE * SIZE)]]) };
    await expect(buildDataset(sd, liar, opts(join(tmp, 'liar'), { count: 1 }))).rejects.toThrow(/answered classes \[unicorn\]/);
  });
});
