// Bad input to training, as a fuzz harness found it: starting over an existing run
// (data loss), damaged run folders on --resume, changed settings on resume, diverging
// runs, bad samples and out-of-range options. Each case must end in one clear
// EngineError that names the file or option, and must leave the run folder as it was.
// Runs use the tiny grounding config on a folder of synthetic samples (a step takes a
// fraction of a second on lavapipe).
import { execFileSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trainCommand } from '../../src/cli/train.js';
import { InputError, LimitError, WeightError } from '../../src/gpu/errors.js';
import type { Runtime } from '../../src/gpu/runtime.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { writeSample } from '../../src/io/samples.js';
import { SD1_GROUNDING_CONFIG } from '../../src/models/grounding/config.js';
import { Segmodule } from '../../src/models/grounding/segmodule.js';
import { namedParams } from '../../src/nn/module.js';
import { SyntheticTask } from '../../src/pipeline/synthetic.js';
import {
  adamOptimizer, checkpointName, DEFAULT_MEMORY_BUDGET, estimateStepBytes, listCheckpoints, pruneCheckpoints, segmoduleTrainable,
  TINY_GROUNDING_CONFIG, train, trainGrounding, type GroundingTrainOptions, type TrainOptimizer,
} from '../../src/pipeline/train/index.js';
import { runtime } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'train-input-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const samples = join(dir, 'samples');
const task = new SyntheticTask(TINY_GROUNDING_CONFIG, { seed: 1, absentProb: 0.2 });

beforeAll(async () => {
  mkdirSync(samples);
  for (let k = 0; k < 4; k++) await writeSample(join(samples, `s${k}.safetensors`), task.sample('seen', k), { featureDtype: 'F32' });
});

const base = (out: string, extra: Partial<GroundingTrainOptions> = {}): GroundingTrainOptions => ({
  config: 'tiny', data: samples, out: join(dir, out), steps: 3, lr: 1e-3, seed: 0, checkpointEvery: 1, progress: false, ...extra,
});

/** Every file under `d` with its bytes, to show a refused call changed nothing. */
function snapshot(d: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (p: string, rel: string) => {
    for (const e of readdirSync(p, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(p, e.name), `${rel}${e.name}/`);
      else if (e.isFile()) out.set(`${rel}${e.name}`, readFileSync(join(p, e.name)).toString('base64'));
      else out.set(`${rel}${e.name}`, 'not a regular file');
    }
  };
  walk(d, '');
  return out;
}

const logSteps = (out: string) => readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l).step as number);
const latest = (out: string) => readFileSync(join(out, 'latest'), 'utf8').trim();

/** A finished 3-step run (checkpoints 2 and 3 kept, latest = 3), copied per case. */
let baseRun = '';
async function baseRunCopy(name: string): Promise<string> {
  const rt = await runtime();
  if (!baseRun) {
    await trainGrounding(rt, base('base-run'));
    baseRun = join(dir, 'base-run');
  }
  const out = join(dir, name);
  cpSync(baseRun, out, { recursive: true });
  return out;
}

async function moduleWeights(seg: Segmodule): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const [n, p] of namedParams(seg)) out.set(n, Array.from(await p.t.toArray()));
  return out;
}

describe('starting a run where one exists', () => {
  it('refuses a fresh run over an existing one, changing nothing; --overwrite replaces it with nothing left dangling', async () => {
    const rt = await runtime();
    const out = await baseRunCopy('data-loss');
    expect((await listCheckpoints(out)).map((c) => c.step)).toEqual([2, 3]);
    expect(logSteps(out)).toEqual([1, 2, 3]);
    const before = snapshot(out);
    const fresh = trainGrounding(rt, { ...base('data-loss'), steps: 1 });
    await expect(fresh).rejects.toThrow(InputError);
    await expect(trainGrounding(rt, { ...base('data-loss'), steps: 1 })).rejects.toThrow(/already holds a training run .*--resume.*--overwrite/);
    expect(snapshot(out)).toEqual(before);

    await trainGrounding(rt, { ...base('data-loss'), steps: 1, overwrite: true });
    expect((await listCheckpoints(out)).map((c) => c.name)).toEqual([checkpointName(1)]);
    expect(latest(out)).toBe(checkpointName(1));
    expect(existsSync(join(out, latest(out), 'weights.safetensors'))).toBe(true);
    expect(logSteps(out)).toEqual([1]);
    expect(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')).settings.lr).toBe(1e-3);
  });

  it('the CLI refuses too, and rejects --resume with --overwrite as a usage error', async () => {
    const out = await baseRunCopy('data-loss-cli');
    const before = snapshot(out);
    const argv = ['--data', samples, '--out', out, '--steps', '1', '--config', 'tiny', '--lr', '1e-3'];
    await expect(trainCommand.run(argv)).rejects.toThrow(/already holds a training run/);
    expect(snapshot(out)).toEqual(before);
    const err = console.error;
    console.error = () => undefined;
    try {
      expect(await trainCommand.run([...argv, '--resume', '--overwrite'])).toBe(2);
    } finally {
      console.error = err;
    }
  });

  it('prunes checkpoints by step, not by name, and keeps the newest and the one before it', async () => {
    const d = join(dir, 'prune');
    for (const s of [5, 99_999_999, 100_000_000, 7]) mkdirSync(join(d, checkpointName(s)), { recursive: true });
    mkdirSync(join(d, 'ckpt-notastep'));
    expect((await listCheckpoints(d)).map((c) => c.step)).toEqual([5, 7, 99_999_999, 100_000_000]);
    await pruneCheckpoints(d, 100_000_000);
    expect(readdirSync(d).sort()).toEqual(['ckpt-100000000', 'ckpt-99999999', 'ckpt-notastep']);
  });
});

describe('resume from a damaged run folder', () => {
  const cases: { name: string; damage: (out: string) => void; error: typeof InputError | typeof WeightError; message: RegExp }[] = [
    { name: 'state.json with a non-numeric step', damage: (o) => writeFileSync(join(o, 'ckpt-00000003/state.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(o, 'ckpt-00000003/state.json'), 'utf8')), step: 'abc' })), error: InputError, message: /ckpt-00000003\/state\.json: field 'step' must be a non-negative integer, found "abc"/ },
    { name: 'truncated state.json', damage: (o) => writeFileSync(join(o, 'ckpt-00000003/state.json'), readFileSync(join(o, 'ckpt-00000003/state.json'), 'utf8').slice(0, 20)), error: InputError, message: /ckpt-00000003\/state\.json is not valid JSON.*ckpt-00000002.*latest/ },
    { name: 'missing state.json', damage: (o) => rmSync(join(o, 'ckpt-00000003/state.json')), error: InputError, message: /ckpt-00000003\/state\.json is missing/ },
    { name: 'empty latest', damage: (o) => writeFileSync(join(o, 'latest'), ''), error: InputError, message: /latest is empty.*ckpt-00000002, ckpt-00000003/ },
    { name: 'latest naming a missing folder', damage: (o) => writeFileSync(join(o, 'latest'), 'ckpt-00000009\n'), error: InputError, message: /latest names ckpt-00000009, which does not exist/ },
    { name: 'latest pointing outside the run folder', damage: (o) => writeFileSync(join(o, 'latest'), '../../..\n'), error: InputError, message: /latest must name a checkpoint folder ckpt-<step> inside .*"\.\.\/\.\.\/\.\."/ },
    { name: 'no latest at all', damage: (o) => rmSync(join(o, 'latest')), error: InputError, message: /has no 'latest' file.*ckpt-00000002, ckpt-00000003/ },
    { name: 'missing weights', damage: (o) => rmSync(join(o, 'ckpt-00000003/weights.safetensors')), error: InputError, message: /ckpt-00000003\/weights\.safetensors is missing/ },
    { name: 'state.json that is a FIFO', damage: (o) => { rmSync(join(o, 'ckpt-00000003/state.json')); execFileSync('mkfifo', [join(o, 'ckpt-00000003/state.json')]); }, error: InputError, message: /state\.json is not a regular file/ },
    { name: 'a corrupt line inside the log', damage: (o) => writeFileSync(join(o, 'log.jsonl'), readFileSync(join(o, 'log.jsonl'), 'utf8').replace('"step":2', '"stop":2')), error: InputError, message: /log\.jsonl line 2 is not a step record/ },
  ];
  for (const c of cases) {
    it(`refuses ${c.name} with a clear error`, async () => {
      const rt = await runtime();
      const out = await baseRunCopy(`damage-${c.name.replace(/\W+/g, '-')}`);
      c.damage(out);
      const before = snapshot(out);
      const r = trainGrounding(rt, base(out.slice(dir.length + 1), { steps: 4, resume: true }));
      await expect(r).rejects.toThrow(c.error);
      await expect(trainGrounding(rt, base(out.slice(dir.length + 1), { steps: 4, resume: true }))).rejects.toThrow(c.message);
      expect(snapshot(out)).toEqual(before);
    }, 20_000);
  }

  it('refuses optimiser state with moments for only some parameters (WeightError naming the file)', async () => {
    const rt = await runtime();
    const out = await baseRunCopy('damage-partial-moments');
    const file = join(out, 'ckpt-00000003/optimizer.safetensors');
    const f = await SafetensorsFile.open(file);
    const kept: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    const names = [...f.tensors.keys()];
    for (const n of names.slice(0, Math.floor(names.length / 2))) kept[n] = { dtype: 'F32', shape: [...f.info(n).shape], data: await f.readF32(n) };
    const meta = f.metadata;
    await f.close();
    await writeSafetensors(file, kept, meta);
    const r = trainGrounding(rt, base('damage-partial-moments', { steps: 4, resume: true }));
    await expect(r).rejects.toThrow(WeightError);
    await expect(trainGrounding(rt, base('damage-partial-moments', { steps: 4, resume: true }))).rejects.toThrow(/optimizer\.safetensors: optimiser state at step 3 .* missing \(/);
  });

  it('refuses NaN weights in a checkpoint', async () => {
    const rt = await runtime();
    const out = await baseRunCopy('damage-nan-weights');
    const file = join(out, 'ckpt-00000003/weights.safetensors');
    const f = await SafetensorsFile.open(file);
    const all: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (const n of f.tensors.keys()) all[n] = { dtype: 'F32', shape: [...f.info(n).shape], data: await f.readF32(n) };
    const meta = f.metadata;
    await f.close();
    all['to_q.weight'].data[3] = Number.NaN;
    await writeSafetensors(file, all, meta);
    await expect(trainGrounding(rt, base('damage-nan-weights', { steps: 4, resume: true }))).rejects.toThrow(/weights\.safetensors: 'to_q\.weight' holds NaN at index 3/);
  });

  it('tolerates a half-written last log line and resumes exactly', async () => {
    const rt = await runtime();
    const full = await trainGrounding(rt, base('exact-full', { steps: 4 }));
    const out = await baseRunCopy('half-line');
    appendFileSync(join(out, 'log.jsonl'), '{"step":4,"loss":0.5');
    const resumed = await trainGrounding(rt, base('half-line', { steps: 4, resume: true }));
    expect(logSteps(out)).toEqual([1, 2, 3, 4]);
    expect(resumed.logs.map((l) => l.loss)).toEqual([full.logs[3].loss]);
    const a = await moduleWeights(full.module);
    for (const [n, w] of await moduleWeights(resumed.module)) expect(w, n).toEqual(a.get(n));
  });

  it('refuses a resume with changed settings and lists each change', async () => {
    const rt = await runtime();
    const out = await baseRunCopy('changed');
    const before = snapshot(out);
    const r = trainGrounding(rt, base('changed', { steps: 4, resume: true, seed: 1, lr: 2e-3, strategy: 'no-zero-masks' }));
    await expect(r).rejects.toThrow(InputError);
    const msg = await trainGrounding(rt, base('changed', { steps: 4, resume: true, seed: 1, lr: 2e-3, strategy: 'no-zero-masks' })).catch((e: Error) => e.message);
    expect(msg).toMatch(/lr: 0\.001 -> 0\.002/);
    expect(msg).toMatch(/seed: 0 -> 1/);
    expect(msg).toMatch(/strategy: "normal" -> "no-zero-masks"/);
    await expect(trainGrounding(rt, base('changed', { steps: 4, resume: true, batch: 2 }))).rejects.toThrow(/batch: 1 -> 2/);
    await expect(trainGrounding(rt, base('changed', { steps: 2, resume: true }))).rejects.toThrow(/already at step 3, past --steps 2/);
    expect(snapshot(out)).toEqual(before);
  });
});

describe('a diverging run', () => {
  /** Adam that turns one weight into NaN right after update number `at`. */
  function poisonedAdam(model: ReturnType<typeof segmoduleTrainable>, at: number, name: string): TrainOptimizer {
    const inner = adamOptimizer(model, 'adam', { lr: 1e-3 });
    let n = 0;
    return {
      ...inner,
      step(params, grads) {
        inner.step(params, grads);
        if (++n === at) {
          const p = params.get(name);
          if (!p) throw new Error(`${name} missing`);
          p.t.write(new Float32Array(p.t.size).fill(Number.NaN));
        }
      },
    };
  }

  async function run(rt: Runtime, out: string, at: number, name: string, lossEvery: number): Promise<string> {
    const seg = new Segmodule(TINY_GROUNDING_CONFIG);
    seg.initRandom(rt, 3);
    const model = segmoduleTrainable(seg);
    const data = { at: (k: number) => task.sample('seen', k) };
    return train(rt, model, poisonedAdam(model, at, name), data, { out: join(dir, out), steps: 6, lr: 1e-3, checkpointEvery: 2, lossEvery, progress: false })
      .then(() => 'finished', (e: Error) => `${e.name}: ${e.message}`);
  }

  it('stops at the first non-finite loss, naming the step, and keeps the last good checkpoint', async () => {
    const rt = await runtime();
    // NaN in the last MLP layer after update 3: step 4's logits and loss are NaN.
    // (Earlier in the module a ReLU may turn NaN into 0 on some adapters, and only
    // the gradients go bad: the next test's weight check covers that.) Losses are read
    // only every 3 steps, yet the step is named exactly and no checkpoint 4 appears.
    const msg = await run(rt, 'nan-loss', 3, 'mlp.layers.2.weight', 3);
    expect(msg).toMatch(/^InputError: training diverged: the loss of step 4 is NaN .*ckpt-00000002 .* stays the latest good checkpoint/);
    const out = join(dir, 'nan-loss');
    expect(latest(out)).toBe(checkpointName(2));
    expect((await listCheckpoints(out)).map((c) => c.step)).toEqual([2]);
  });

  it('never writes a checkpoint of NaN weights', async () => {
    const rt = await runtime();
    // NaN weights after update 4, the checkpoint step: its loss was still finite.
    const msg = await run(rt, 'nan-weights', 4, 'to_q.weight', 1);
    expect(msg).toMatch(/^InputError: training diverged: after step 4 module tensor 'to_q\.weight' holds NaN .*ckpt-00000002/);
    const out = join(dir, 'nan-weights');
    expect(latest(out)).toBe(checkpointName(2));
    expect((await listCheckpoints(out)).map((c) => c.step)).toEqual([2]);
    expect(readdirSync(out).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });
});

describe('bad samples and data paths', () => {
  it('refuses a sample folder with a sample of the wrong feature size, naming the file', async () => {
    const rt = await runtime();
    const d = join(dir, 'samples-bad-size');
    cpSync(samples, d, { recursive: true });
    const other = new SyntheticTask({ ...TINY_GROUNDING_CONFIG, feature_res: { ...TINY_GROUNDING_CONFIG.feature_res, mid: 8 } }, { seed: 2 });
    await writeSample(join(d, 's0.safetensors'), other.sample('seen', 0));
    const r = trainGrounding(rt, { ...base('bad-size'), data: d, steps: 4 });
    await expect(r).rejects.toThrow(InputError);
    await expect(trainGrounding(rt, { ...base('bad-size'), data: d, steps: 4 })).rejects.toThrow(/s0\.safetensors: features\.mid\.0 is \[1,16,8,8\], the module takes \[1,16,4,4\]/);
  });

  it('refuses a FIFO as a sample or as the data folder without blocking', async () => {
    const rt = await runtime();
    const d = join(dir, 'samples-fifo');
    cpSync(samples, d, { recursive: true });
    execFileSync('mkfifo', [join(d, 'zz.safetensors')]);
    await expect(trainGrounding(rt, { ...base('fifo'), data: d })).rejects.toThrow(/zz\.safetensors is not a regular file/);
    const fifo = join(dir, 'data-fifo');
    execFileSync('mkfifo', [fifo]);
    await expect(trainGrounding(rt, { ...base('fifo'), data: fifo })).rejects.toThrow(/sample folder .*data-fifo is not a folder/);
  }, 10_000);

  it('refuses NaN features from an in-memory source', async () => {
    const rt = await runtime();
    const seg = new Segmodule(TINY_GROUNDING_CONFIG);
    seg.initRandom(rt, 3);
    const model = segmoduleTrainable(seg);
    const data = { at: (k: number) => {
      const s = task.sample('seen', k);
      if (k === 1) s.features.high[2].data[5] = Number.NaN;
      return s;
    } };
    await expect(train(rt, model, adamOptimizer(model, 'adam', { lr: 1e-3 }), data, { out: join(dir, 'nan-features'), steps: 3, lr: 1e-3, progress: false }))
      .rejects.toThrow(/features\.high\.2 holds NaN at index 5/);
  });
});

describe('option ranges and the memory check', () => {
  const bad: [string, Partial<GroundingTrainOptions>, RegExp][] = [
    ['lr 1e308', { lr: 1e308 }, /lr \(--lr\) must be a number in \(0, 1\], got 1e\+308/],
    ['lr 0', { lr: 0 }, /lr \(--lr\)/],
    ['lr NaN', { lr: Number.NaN }, /lr \(--lr\)/],
    ['steps 0', { steps: 0 }, /steps \(--steps\) must be an integer >= 1/],
    ['batch 1.5', { batch: 1.5 }, /batch \(--batch\)/],
    ['accum 0', { accum: 0 }, /accum \(--accum\)/],
    ['dice -1', { dice: -1 }, /dice \(--dice\)/],
    ['steps x batch past 2^53', { steps: 2 ** 40, batch: 2 ** 20 }, /at most 2\^53 samples/],
    ['seed -1', { seed: -1 }, /seed \(--seed\)/],
    ['weight decay 2', { weightDecay: 2 }, /weight decay \(--weight-decay\)/],
    ['a zero memory budget', { memoryBudget: 0 }, /memoryBudget \(--memory-budget\)/],
  ];
  for (const [name, o, message] of bad) {
    it(`refuses ${name} before touching the run folder`, async () => {
      const rt = await runtime();
      const out = `range-${name.replace(/\W+/g, '-')}`;
      await expect(trainGrounding(rt, base(out, o))).rejects.toThrow(InputError);
      await expect(trainGrounding(rt, base(out, o))).rejects.toThrow(message);
      expect(existsSync(join(dir, out))).toBe(false);
    });
  }

  it('refuses --batch 100000 before allocating the batch, saying the estimate and the cap', async () => {
    const rt = await runtime();
    const live = rt.memory().liveBytes;
    const r = trainGrounding(rt, base('huge-batch', { batch: 100_000 }));
    await expect(r).rejects.toThrow(LimitError);
    const msg = await trainGrounding(rt, base('huge-batch', { batch: 100_000 })).catch((e: Error) => e.message);
    expect(msg).toMatch(/--batch 100000 needs about [\d.]+ GiB of device memory per step .* more than the memory budget of 4\.00 GiB\. Lower --batch/);
    expect(existsSync(join(dir, 'huge-batch'))).toBe(false);
    // Only the module's parameters were allocated (the run failed before any sample upload).
    expect(rt.memory().liveBytes - live).toBeLessThan(8 << 20);
  });

  it("estimates within a factor of two of the pool's measured peak (tiny config), and fits SD v1 at batch 1", async () => {
    const rt = await runtime();
    for (const batch of [1, 3]) {
      const before = rt.memory().liveBytes;
      rt.pool.peakBytes = before;
      const seg = new Segmodule(TINY_GROUNDING_CONFIG);
      seg.initRandom(rt, 3);
      const model = segmoduleTrainable(seg);
      const data = { at: (k: number) => task.sample('seen', k) };
      await train(rt, model, adamOptimizer(model, 'adam', { lr: 1e-3 }), data, { out: join(dir, `peak-${batch}`), steps: 1, batch, lr: 1e-3, progress: false });
      const measured = rt.memory().peakBytes - before;
      const est = estimateStepBytes(model, task.sample('seen', 0), batch).total;
      console.log(`memory estimate, tiny config, batch ${batch}: ${(est / 2 ** 20).toFixed(2)} MiB, measured peak ${(measured / 2 ** 20).toFixed(2)} MiB`);
      expect(est).toBeGreaterThan(0.5 * measured);
      expect(est).toBeLessThan(2 * measured);
      for (const p of namedParams(seg).values()) p.value?.dispose();
    }
    // SD v1 shapes, without allocating the module: batch 1 fits the default budget.
    const sd1 = segmoduleTrainable(new Segmodule(SD1_GROUNDING_CONFIG));
    const big = new SyntheticTask({ ...SD1_GROUNDING_CONFIG, out_size: 8 }, { seed: 1, twoClassProb: 0 }).sample('seen', 0);
    big.target = { shape: [1, 512, 512], data: new Float32Array(512 * 512) };
    const e1 = estimateStepBytes(sd1, big, 1);
    console.log(`memory estimate, SD v1, batch 1: ${(e1.total / 2 ** 30).toFixed(2)} GiB (per image ${(e1.perImage / 2 ** 20).toFixed(0)} MiB)`);
    expect(e1.total).toBeLessThan(DEFAULT_MEMORY_BUDGET);
  });
});
