// Training-sample format: round trips (F16/F32 features, U8/F32 targets, metadata), the
// stored header read independently, malformed samples rejected with clear errors, the
// folder reader's seeded per-epoch shuffle, the synthetic generator's determinism, and
// bad samples (shapes for another model, NaN values, targets outside [0, 1], FIFOs)
// refused with the file named.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError, WeightError } from '../../src/gpu/errors.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import {
  FEATURE_GROUPS, readSample, SAMPLE_FORMAT, SampleFolder, seededPermutation, writeSample, type TrainingSample,
} from '../../src/io/samples.js';
import { SyntheticTask, type SyntheticSpec } from '../../src/pipeline/synthetic.js';
import { fromHalf, toHalf } from '../../src/tensor/f16.js';

const dir = mkdtempSync(join(tmpdir(), 'samples-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SPEC: SyntheticSpec = {
  feature_channels: { low: [6, 6], mid: [4, 8], high: [4, 4, 8], highest: [4, 4] },
  feature_res: { low: 2, mid: 4, high: 8, highest: 16 },
  out_size: 24,
  context_dim: 12,
};

function header(path: string): Record<string, { dtype: string; shape: number[] }> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  return JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
}

describe('sample format', () => {
  const task = new SyntheticTask(SPEC, { seed: 3, absentProb: 0.5 });
  const s = task.sample('seen', 5);

  it('round-trips F32 features and targets exactly', async () => {
    const path = join(dir, 'f32.safetensors');
    await writeSample(path, s, { featureDtype: 'F32', targetDtype: 'F32' });
    const r = await readSample(path);
    expect(r.classes).toEqual(s.classes);
    expect(r.prompt).toBe(s.prompt);
    for (const g of FEATURE_GROUPS) {
      expect(r.features[g].length).toBe(s.features[g].length);
      r.features[g].forEach((f, i) => {
        expect(f.shape).toEqual(s.features[g][i].shape);
        expect(Array.from(f.data)).toEqual(Array.from(s.features[g][i].data));
      });
    }
    expect(Array.from(r.textEmbedding.data)).toEqual(Array.from(s.textEmbedding.data));
    expect(Array.from(r.target.data)).toEqual(Array.from(s.target.data));
  });

  it('stores F16 features and U8 targets by default, read back as float32', async () => {
    const path = join(dir, 'f16.safetensors');
    await writeSample(path, s);
    const h = header(path);
    expect(h['features.low.0'].dtype).toBe('F16');
    expect(h.target.dtype).toBe('U8');
    expect(h.target.shape).toEqual([s.classes.length, 24, 24]);
    expect(h.text_embedding.dtype).toBe('F32');
    expect(JSON.parse((h as unknown as { __metadata__: { classes: string } }).__metadata__.classes)).toEqual(s.classes);
    const r = await readSample(path);
    const f = s.features.high[2].data;
    expect(Array.from(r.features.high[2].data)).toEqual(Array.from(f, (v) => fromHalf(toHalf(v))));
    expect(Array.from(r.target.data)).toEqual(Array.from(s.target.data));
  });

  it('rejects inconsistent samples and foreign files', async () => {
    const bad: TrainingSample = { ...s, target: { shape: [s.classes.length + 1, 24, 24], data: new Float32Array((s.classes.length + 1) * 576) } };
    await expect(writeSample(join(dir, 'bad.safetensors'), bad)).rejects.toThrow(InputError);
    await expect(writeSample(join(dir, 'bad.safetensors'), bad)).rejects.toThrow(/target must be/);
    const foreign = join(dir, 'foreign.safetensors');
    await writeSafetensors(foreign, { x: { dtype: 'F32', shape: [1], data: new Float32Array(1) } });
    await expect(readSample(foreign)).rejects.toThrow(WeightError);
    await expect(readSample(foreign)).rejects.toThrow(/not a grounding training sample/);
  });
});

/** Writes `s` as a sample file without writeSample's checks (F32 everything, or a U8
 *  target taken as is), so that malformed samples can be stored. */
async function writeRaw(path: string, s: TrainingSample, opts: { u8Target?: boolean; drop?: string } = {}): Promise<void> {
  const tensors: Parameters<typeof writeSafetensors>[1] = {};
  for (const g of FEATURE_GROUPS) s.features[g].forEach((f, i) => (tensors[`features.${g}.${i}`] = { dtype: 'F32', shape: f.shape, data: f.data }));
  tensors.text_embedding = { dtype: 'F32', shape: s.textEmbedding.shape, data: s.textEmbedding.data };
  tensors.target = opts.u8Target
    ? { dtype: 'U8', shape: s.target.shape, data: Uint8Array.from(s.target.data) }
    : { dtype: 'F32', shape: s.target.shape, data: s.target.data };
  if (opts.drop) delete tensors[opts.drop];
  await writeSafetensors(path, tensors, { format: SAMPLE_FORMAT, classes: JSON.stringify(s.classes), prompt: s.prompt });
}

describe('bad samples', () => {
  const task = new SyntheticTask(SPEC, { seed: 8, twoClassProb: 1 });
  const clone = (): TrainingSample => {
    const s = task.sample('seen', 2);
    return { ...s, features: Object.fromEntries(FEATURE_GROUPS.map((g) => [g, s.features[g].map((f) => ({ shape: [...f.shape], data: f.data.slice() }))])) as TrainingSample['features'] };
  };

  it('checks shapes against the module: feature size, feature count, context width, mask size', async () => {
    const good = join(dir, 'good.safetensors');
    await writeRaw(good, clone());
    expect((await readSample(good, SPEC)).source).toBe(good);
    const other = new SyntheticTask({ ...SPEC, feature_res: { ...SPEC.feature_res, high: 4 } }, { seed: 8 }).sample('seen', 0);
    const path = join(dir, 'small-high.safetensors');
    await writeRaw(path, other);
    await expect(readSample(path)).resolves.toBeDefined();
    await expect(readSample(path, SPEC)).rejects.toThrow(InputError);
    await expect(readSample(path, SPEC)).rejects.toThrow(/small-high\.safetensors: features\.high\.0 is \[1,4,4,4\], the module takes \[1,4,8,8\]/);
    await expect(readSample(good, { ...SPEC, feature_channels: { ...SPEC.feature_channels, low: [6] } })).rejects.toThrow(/good\.safetensors: features\.low has 2 tensors, the module takes 1/);
    await expect(readSample(good, { ...SPEC, context_dim: 16 })).rejects.toThrow(/good\.safetensors: text_embedding has 12 columns, the module takes context_dim 16/);
    await expect(readSample(good, { ...SPEC, out_size: 32 })).rejects.toThrow(/good\.safetensors: target masks are 24x24, the module's out_size is 32/);
  });

  it('refuses NaN or infinite features and embeddings, naming the file and tensor', async () => {
    const s = clone();
    s.features.mid[1].data[7] = Number.NaN;
    const path = join(dir, 'nan-feature.safetensors');
    await writeRaw(path, s);
    await expect(readSample(path)).rejects.toThrow(InputError);
    await expect(readSample(path)).rejects.toThrow(/nan-feature\.safetensors: features\.mid\.1 holds NaN at index 7/);
    await expect(writeSample(join(dir, 'x.safetensors'), s)).rejects.toThrow(/features\.mid\.1 holds NaN/);
    const e = clone();
    e.textEmbedding = { shape: e.textEmbedding.shape, data: e.textEmbedding.data.slice() };
    e.textEmbedding.data[3] = Number.POSITIVE_INFINITY;
    await writeRaw(path, e);
    await expect(readSample(path)).rejects.toThrow(/nan-feature\.safetensors: text_embedding holds Infinity at index 3/);
  });

  it('refuses targets outside [0, 1] (U8 targets must be exactly 0 or 1), keeps soft F32 targets', async () => {
    const s = clone();
    const data = s.target.data.slice();
    const on = data.findIndex((v) => v === 1);
    data[on] = 255;
    const path = join(dir, 'target.safetensors');
    await writeRaw(path, { ...s, target: { shape: s.target.shape, data } }, { u8Target: true });
    await expect(readSample(path)).rejects.toThrow(new RegExp(`target\\.safetensors: U8 target holds 255 at index ${on}; U8 masks must be 0 or 1`));
    data[on] = 1.5;
    await writeRaw(path, { ...s, target: { shape: s.target.shape, data } });
    await expect(readSample(path)).rejects.toThrow(new RegExp(`target\\.safetensors: target holds 1\\.5 at index ${on}`));
    data[on] = -0.25;
    await writeRaw(path, { ...s, target: { shape: s.target.shape, data } });
    await expect(readSample(path)).rejects.toThrow(/target holds -0\.25/);
    data[on] = 0.3;
    await writeRaw(path, { ...s, target: { shape: s.target.shape, data } });
    expect((await readSample(path)).target.data[on]).toBeCloseTo(0.3, 6);
  });

  it('names the file when a tensor is missing', async () => {
    const path = join(dir, 'no-text.safetensors');
    await writeRaw(path, clone(), { drop: 'text_embedding' });
    await expect(readSample(path)).rejects.toThrow(WeightError);
    await expect(readSample(path)).rejects.toThrow(/no-text\.safetensors: a sample needs a 'text_embedding' tensor/);
  });

  it('refuses FIFOs and other non-regular paths before opening them', async () => {
    const fdir = join(dir, 'fifo-folder');
    mkdirSync(fdir);
    await writeSample(join(fdir, 'a.safetensors'), clone());
    execFileSync('mkfifo', [join(fdir, 'b.safetensors')]);
    await expect(readSample(join(fdir, 'b.safetensors'))).rejects.toThrow(/sample .*b\.safetensors is not a regular file/);
    await expect(SampleFolder.open(fdir)).rejects.toThrow(/b\.safetensors is not a regular file/);
    execFileSync('mkfifo', [join(dir, 'fifo-data')]);
    await expect(SampleFolder.open(join(dir, 'fifo-data'))).rejects.toThrow(/fifo-data is not a folder/);
    writeFileSync(join(dir, 'plain-file'), 'x');
    await expect(SampleFolder.open(join(dir, 'plain-file'))).rejects.toThrow(InputError);
  }, 10_000);

  it('checks every header when a folder is opened with the module spec', async () => {
    const fdir = join(dir, 'mixed-folder');
    mkdirSync(fdir);
    await writeSample(join(fdir, 'a.safetensors'), clone());
    await writeRaw(join(fdir, 'b.safetensors'), new SyntheticTask({ ...SPEC, context_dim: 8 }, { seed: 1 }).sample('seen', 0));
    await expect(SampleFolder.open(fdir)).resolves.toBeDefined();
    await expect(SampleFolder.open(fdir, 0, SPEC)).rejects.toThrow(/b\.safetensors: text_embedding has 8 columns/);
  });
});

describe('sample folder', () => {
  it('gives a seeded permutation per epoch covering every file', async () => {
    const fdir = mkdtempSync(join(dir, 'folder-'));
    const task = new SyntheticTask(SPEC, { seed: 1 });
    for (let k = 0; k < 5; k++) await writeSample(join(fdir, `s${k}.safetensors`), task.sample('seen', k));
    const a = await SampleFolder.open(fdir, 7);
    const b = await SampleFolder.open(fdir, 7);
    expect(a.length).toBe(5);
    const epoch0 = [0, 1, 2, 3, 4].map((k) => a.indexAt(k));
    const epoch1 = [5, 6, 7, 8, 9].map((k) => a.indexAt(k));
    expect([...epoch0].sort()).toEqual([0, 1, 2, 3, 4]);
    expect([...epoch1].sort()).toEqual([0, 1, 2, 3, 4]);
    expect(epoch0).toEqual([0, 1, 2, 3, 4].map((k) => b.indexAt(k)));
    const third = await a.at(7);
    expect(third.prompt).toBe(task.sample('seen', a.indexAt(7)).prompt);
    expect(seededPermutation(50, 1)).not.toEqual(seededPermutation(50, 2));
    await expect(SampleFolder.open(join(dir, 'missing'))).rejects.toThrow(InputError);
  });
});

describe('synthetic task', () => {
  it('is deterministic, keeps held-out classes out of training, writes the masks into the features', () => {
    const t1 = new SyntheticTask(SPEC, { seed: 9, numClasses: 6, heldOut: 2 });
    const t2 = new SyntheticTask(SPEC, { seed: 9, numClasses: 6, heldOut: 2 });
    const a = t1.sample('seen', 3);
    expect(Array.from(a.features.mid[1].data)).toEqual(Array.from(t2.sample('seen', 3).features.mid[1].data));
    const unseenNames = t1.unseen.map((c) => t1.classNames[c]);
    for (let k = 0; k < 30; k++) {
      for (const c of t1.sample('seen', k).classes) expect(unseenNames).not.toContain(c);
      for (const c of t1.sample('unseen', k).classes) expect(unseenNames).toContain(c);
    }
    // With no noise a one-class sample's features are exactly zero outside the mask.
    const clean = new SyntheticTask(SPEC, { seed: 9, noise: 0, twoClassProb: 0 });
    const s = clean.sample('seen', 0);
    const f = s.features.highest[0];
    const R = 16;
    let inside = 0;
    for (let p = 0; p < R * R; p++) {
      const on = f.data[p] !== 0;
      if (on) inside++;
      for (let ch = 1; ch < f.shape[1]; ch++) expect(f.data[ch * R * R + p] !== 0).toBe(on);
    }
    expect(inside).toBeGreaterThan(0);
    expect(inside).toBeLessThan(R * R);
    const targetOn = s.target.data.reduce((x, v) => x + v, 0);
    expect(targetOn / (24 * 24)).toBeCloseTo(inside / (R * R), 1);
  });
});
