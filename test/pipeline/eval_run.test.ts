// The Protocol-I evaluation run: test-set construction (deterministic, five sets of the
// right seen/unseen composition, stable per index), the run loop on a CPU stand-in
// generator (resume from stored counts, growing --count, refusals), and `grounded-sd eval`
// end to end on the tiny model (GPU): results.json equals a recomputation from the stored
// per-sample mask PNGs done here in float64, report.md and chart.png are written, and a
// rerun regenerates nothing.
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evalCommand } from '../../src/cli/eval.js';
import { main, runCommand } from '../../src/cli/main.js';
import { InputError } from '../../src/gpu/errors.js';
import { decodePng, encodePng } from '../../src/io/png.js';
import { renderBarChart } from '../../src/io/render/chart.js';
import { masksAnnotator } from '../../src/pipeline/annotate/masks.js';
import type { GeneratedSample, SampleGenerator } from '../../src/pipeline/eval/engine.js';
import { chartSpec, type EvalResults } from '../../src/pipeline/eval/report.js';
import { runEval, type EvalEvent, type SampleRecord } from '../../src/pipeline/eval/run.js';
import { buildTestSets, TEST_SETS, testSample, vocabulary, type TestSample } from '../../src/pipeline/eval/testsets.js';
import { IoUAccumulator } from '../../src/pipeline/eval/miou.js';
import { lowbias32 } from '../../src/tensor/hash.js';
import { capture } from '../cli/capture.js';
import { rng } from '../helpers.js';

let tmp = '';
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'gsd-eval-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('Protocol-I test sets', () => {
  const voc = vocabulary('voc', '2');

  it('are five sets of the right seen/unseen composition, deterministic, never naming a class twice', () => {
    const plan = buildTestSets(voc, 40, 7);
    expect(plan.length).toBe(5 * 40);
    expect(buildTestSets(voc, 40, 7)).toEqual(plan);
    const seen = new Set(voc.split.seen);
    const unseen = new Set(voc.split.unseen);
    const want: Record<string, Array<Set<string>>> = {
      one_seen: [seen], one_unseen: [unseen], two_seen: [seen, seen], seen_unseen: [seen, unseen], two_unseen: [unseen, unseen],
    };
    for (const set of TEST_SETS) {
      const samples = plan.filter((s) => s.set === set);
      expect(samples.map((s) => s.index)).toEqual([...Array(40).keys()]);
      for (const s of samples) {
        expect(s.id).toBe(`${set}-${String(s.index).padStart(4, '0')}`);
        expect(s.classes.length).toBe(want[set].length);
        s.classes.forEach((c, k) => expect(want[set][k].has(c), `${s.id} ${c}`).toBe(true));
        expect(new Set(s.classes).size).toBe(s.classes.length);
        expect(s.prompt).toBe(s.classes.length === 1 ? `a photograph of a ${s.classes[0]}` : `a photograph of a ${s.classes[0]} and a ${s.classes[1]}`);
        expect(Number.isInteger(s.seed) && s.seed >= 0 && s.seed <= 0xffffffff).toBe(true);
      }
    }
    expect(new Set(plan.map((s) => s.seed)).size).toBe(plan.length);
  });

  it('cycle through the first pool in shuffled rounds; sample i does not depend on --count', () => {
    const plan = buildTestSets(voc, 30, 3);
    const firsts = plan.filter((s) => s.set === 'one_seen').map((s) => s.classes[0]);
    // Rounds of 15: each a permutation of the seen classes, and the two rounds differ.
    expect([...firsts.slice(0, 15)].sort()).toEqual([...voc.split.seen].sort());
    expect([...firsts.slice(15)].sort()).toEqual([...voc.split.seen].sort());
    expect(firsts.slice(0, 15)).not.toEqual(firsts.slice(15));
    expect([...plan.filter((s) => s.set === 'two_unseen').slice(0, 5).map((s) => s.classes[0])].sort()).toEqual([...voc.split.unseen].sort());
    // A smaller count is a prefix; a sample is a function of (set, index, seed).
    const small = buildTestSets(voc, 4, 3);
    for (const s of small) expect(s).toEqual(plan.find((p) => p.id === s.id));
    expect(testSample(voc, 'seen_unseen', 17, 3)).toEqual(plan.find((p) => p.id === 'seen_unseen-0017'));
    const other = buildTestSets(voc, 30, 4);
    expect(other.map((s) => s.seed)).not.toEqual(plan.map((s) => s.seed));
    // Second classes are spread over the pool (not stuck on one).
    expect(new Set(plan.filter((s) => s.set === 'two_seen').map((s) => s.classes[1])).size).toBeGreaterThan(8);
  });

  it('come from the official splits and refuse unknown vocabularies and splits', () => {
    expect(vocabulary('voc', '1').split.unseen).toEqual(['tvmonitor', 'car', 'dog', 'sofa', 'train']);
    expect(vocabulary('coco', undefined).split.unseen.length).toBe(15);
    expect(() => vocabulary('voc', undefined)).toThrow(/needs --split 1, 2 or 3/);
    expect(() => vocabulary('voc', '4')).toThrow(/official splits are 1, 2 and 3/);
    expect(() => vocabulary('ade', '1')).toThrow(InputError);
    expect(() => buildTestSets(voc, 0, 1)).toThrow(/--count 0 must be a positive integer/);
  });
});

// ---- an independent recomputation from the stored mask PNGs ----

async function readMask(path: string): Promise<Uint8Array> {
  const png = decodePng(await readFile(path));
  return Uint8Array.from({ length: png.width * png.height }, (_, i) => (png.rgba[4 * i] > 127 ? 1 : 0));
}

interface Pooled { i: number; u: number; n: number }

/** Per set (and 'all'), per method, per class: summed I and U from the PNGs; then the
 *  split means, written from the definitions. */
async function recompute(out: string, plan: TestSample[], split: { seen: readonly string[]; unseen: readonly string[] }) {
  const pooled: Record<string, Record<string, Record<string, Pooled>>> = {};
  for (const s of plan) {
    const rec = JSON.parse(await readFile(join(out, 'samples', `${s.id}.json`), 'utf8')) as SampleRecord;
    const files = rec.files;
    if (!files) throw new Error(`${s.id}: no mask files stored`);
    const gt = await Promise.all(s.classes.map((c) => readMask(join(out, 'samples', files.masks.gt[c]))));
    for (const m of ['daam', 'grounding'] as const) {
      for (const [j, c] of s.classes.entries()) {
        const p = await readMask(join(out, 'samples', files.masks[m][c]));
        let i = 0;
        let u = 0;
        for (let k = 0; k < p.length; k++) {
          if (p[k] && gt[j][k]) i++;
          if (p[k] || gt[j][k]) u++;
        }
        for (const key of [s.set, 'all']) {
          const t = (((pooled[key] ??= {})[m] ??= {})[c] ??= { i: 0, u: 0, n: 0 });
          t.i += i;
          t.u += u;
          t.n++;
        }
      }
    }
  }
  const mean = (per: Record<string, Pooled>, classes: readonly string[]) => {
    const v = classes.map((c) => per[c]).filter((t) => t && t.u > 0).map((t) => t.i / t.u);
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  };
  const out2: Record<string, Record<string, { seen: number | null; unseen: number | null; perClass: Record<string, number | null> }>> = {};
  for (const [key, methods] of Object.entries(pooled)) {
    out2[key] = {};
    for (const [m, per] of Object.entries(methods)) {
      out2[key][m] = {
        seen: mean(per, split.seen), unseen: mean(per, split.unseen),
        perClass: Object.fromEntries(Object.entries(per).map(([c, t]) => [c, t.u > 0 ? t.i / t.u : null])),
      };
    }
  }
  return out2;
}

function expectResultsMatch(results: EvalResults, re: Awaited<ReturnType<typeof recompute>>): void {
  for (const key of [...TEST_SETS, 'all'] as const) {
    const got = key === 'all' ? results.all : results.sets[key];
    for (const m of ['daam', 'grounding'] as const) {
      const want = re[key][m];
      const close = (a: number | null, b: number | null, what: string) => {
        if (b === null) expect(a, what).toBeNull();
        else expect(Math.abs((a as number) - b), `${what}: ${a} vs ${b}`).toBeLessThan(1e-12);
      };
      close(got.methods[m].miou_seen, want.seen, `${key} ${m} seen`);
      close(got.methods[m].miou_unseen, want.unseen, `${key} ${m} unseen`);
      for (const [c, v] of Object.entries(want.perClass)) close(got.methods[m].per_class[c].iou, v, `${key} ${m} ${c}`);
      const named = Object.entries(got.methods[m].per_class).filter(([, v]) => v.samples.length > 0).map(([c]) => c).sort();
      expect(named).toEqual(Object.keys(want.perClass).sort());
    }
  }
}

/** Seeded 0/1 blob mask of an image, different per (seed, tag). */
function blobMask(w: number, h: number, seed: number, tag: number): Uint8Array {
  const k = lowbias32((seed ^ lowbias32(tag)) >>> 0);
  const cx = ((k & 0xff) / 255) * w;
  const cy = (((k >>> 8) & 0xff) / 255) * h;
  const r = 1 + (((k >>> 16) & 0xff) / 255) * Math.min(w, h) * 0.6;
  return Uint8Array.from({ length: w * h }, (_, p) => ((p % w) - cx) ** 2 + (Math.floor(p / w) - cy) ** 2 < r * r ? 1 : 0);
}

/** Ground-truth PNGs for `plan` under `dir`; the second class of every `two_unseen` sample is
 *  left out (the annotator misses it). Returns what was written (null = missed). */
async function writeGroundTruth(dir: string, plan: TestSample[], w: number, h: number): Promise<Map<string, Uint8Array | null>> {
  const written = new Map<string, Uint8Array | null>();
  for (const s of plan) {
    await mkdir(join(dir, s.id), { recursive: true });
    for (const [j, c] of s.classes.entries()) {
      if (s.set === 'two_unseen' && j === 1) {
        written.set(`${s.id}/${c}`, null);
        continue;
      }
      const m = blobMask(w, h, s.seed, 100 + j);
      const rgba = new Uint8Array(4 * w * h);
      m.forEach((v, i) => rgba.set([v * 255, v * 255, v * 255, 255], 4 * i));
      await writeFile(join(dir, s.id, `${c}.png`), encodePng(rgba, w, h));
      written.set(`${s.id}/${c}`, m);
    }
  }
  return written;
}

describe('evaluation run (CPU stand-in generator)', () => {
  const W = 12;
  const H = 9;
  const voc = vocabulary('voc', '1');
  let calls: string[] = [];
  const fake: SampleGenerator = async (s, onStage) => {
    calls.push(s.id);
    onStage({ stage: 'denoise', step: 1, total: 1 });
    const masks = { daam: s.classes.map((_, j) => blobMask(W, H, s.seed, 200 + j)), grounding: s.classes.map((_, j) => blobMask(W, H, s.seed, 300 + j)) };
    const g: GeneratedSample = { width: W, height: H, rgb: new Float32Array(3 * W * H).fill(0.5), rgba: new Uint8Array(4 * W * H).fill(128), masks, warnings: [] };
    return g;
  };
  /** The generator factory runEval calls when something is left to generate. */
  let loads = 0;
  const load = async () => {
    loads++;
    return fake;
  };

  it('writes per-sample counts and masks, results equal to a recomputation; resumes and grows without regenerating', async () => {
    const gtDir = join(tmp, 'cpu-gt');
    const out = join(tmp, 'cpu-out');
    const plan3 = buildTestSets(voc, 3, 9);
    const written = await writeGroundTruth(gtDir, plan3, W, H);
    const annotator = await masksAnnotator(gtDir, voc.classes);
    const opts = { vocab: voc, seed: 9, out, saveMasks: true, generation: { model: 'fake', steps: 1 }, realWeights: false };

    calls = [];
    loads = 0;
    const events: EvalEvent[] = [];
    const first = await runEval(load, annotator, { ...opts, count: 2, onProgress: (e) => events.push(e) });
    const plan2 = buildTestSets(voc, 2, 9);
    expect(calls).toEqual(plan2.map((s) => s.id));
    expect(loads).toBe(1);
    expect(events[0]).toEqual({ kind: 'plan', total: 10, finished: 0 });
    expect(events.filter((e) => e.kind === 'stage').length).toBe(10);
    // Stored ground truth is what the test wrote; missed classes are recorded and empty.
    for (const s of plan2) {
      const rec = JSON.parse(await readFile(join(out, 'samples', `${s.id}.json`), 'utf8')) as SampleRecord;
      for (const c of s.classes) {
        const w = written.get(`${s.id}/${c}`) ?? null;
        expect(rec.ground_truth[c].status).toBe(w ? 'mask' : 'missed');
        expect(await readMask(join(out, 'samples', rec.files?.masks.gt[c] ?? ''))).toEqual(w ?? new Uint8Array(W * H));
      }
    }
    expect(first.results.sets.two_unseen.ground_truth_missed).toBe(2);
    // Not vacuous: partial overlaps, so the means are strictly between 0 and 1.
    for (const m of ['daam', 'grounding'] as const) {
      for (const v of [first.results.all.methods[m].miou_seen, first.results.all.methods[m].miou_unseen]) expect(v !== null && v > 0 && v < 1).toBe(true);
    }
    expectResultsMatch(first.results, await recompute(out, plan2, voc.split));
    expect(JSON.parse(await readFile(first.files.results, 'utf8'))).toEqual(JSON.parse(JSON.stringify(first.results)));

    // Rerun: no model loaded, nothing generated, identical results.
    calls = [];
    loads = 0;
    const again = await runEval(load, annotator, { ...opts, count: 2 });
    expect(calls).toEqual([]);
    expect(loads).toBe(0);
    expect(again.resumed.length).toBe(10);
    expect(again.results).toEqual(first.results);

    // Growing --count generates only the new indices.
    const grown = await runEval(load, annotator, { ...opts, count: 3 });
    expect(calls).toEqual(plan3.filter((s) => s.index === 2).map((s) => s.id));
    expectResultsMatch(grown.results, await recompute(out, plan3, voc.split));

    // Other settings in the same folder: refused, naming what changed.
    await expect(runEval(load, annotator, { ...opts, count: 3, generation: { model: 'fake', steps: 2 } })).rejects.toThrow(/generation.steps: 1 before, 2 now/);
    await expect(runEval(load, annotator, { ...opts, count: 3, seed: 10 })).rejects.toThrow(/seed: 9 before, 10 now/);
    // A tampered sample file: refused, naming it.
    const path = join(out, 'samples', 'one_seen-0000.json');
    const rec = JSON.parse(await readFile(path, 'utf8')) as SampleRecord;
    const c = rec.classes[0];
    rec.counts.daam[c].intersection = rec.counts.daam[c].union + 1;
    await writeFile(path, JSON.stringify(rec));
    await expect(runEval(load, annotator, { ...opts, count: 3 })).rejects.toThrow(/one_seen-0000.json: counts.daam.* are not 0 <= intersection <= union/);
  });

  it('checks ground-truth coverage before generating anything', async () => {
    const gtDir = join(tmp, 'cpu-gt-partial');
    const plan = buildTestSets(voc, 1, 2);
    await writeGroundTruth(gtDir, plan.slice(0, 3), W, H);
    calls = [];
    loads = 0;
    const annotator = await masksAnnotator(gtDir, voc.classes);
    await expect(runEval(load, annotator, { vocab: voc, count: 1, seed: 2, out: join(tmp, 'cpu-out-2'), generation: {}, realWeights: false }))
      .rejects.toThrow(/no ground-truth folder for sample\(s\) seen_unseen-0000, two_unseen-0000;/);
    expect(calls).toEqual([]);
    expect(loads).toBe(0);
  });

  it('re-accumulates stored counts exactly as the masks they came from', () => {
    const r = rng(4);
    const split = { name: 's', seen: ['a', 'b'], unseen: ['c'] };
    const fromMasks = new IoUAccumulator(['a', 'b', 'c'], ['m']);
    const fromCounts = new IoUAccumulator(['a', 'b', 'c'], ['m']);
    for (let k = 0; k < 20; k++) {
      const classes = ['a', 'b', 'c'].filter(() => r() < 0.6);
      const mask = () => Uint8Array.from({ length: 50 }, () => (r() < 0.3 ? 1 : 0));
      const gt = classes.map(mask);
      const pred = classes.map(mask);
      const counts = fromMasks.addImage({ classes, gt, pred: { m: pred } });
      fromCounts.addCounts({ classes, counts });
    }
    expect(fromCounts.results(split)).toEqual(fromMasks.results(split));
    expect(() => fromCounts.addCounts({ classes: ['a'], counts: { m: { a: { intersection: 3, union: 2 } } } })).toThrow(/0 <= intersection <= union/);
  });

  it('draws the chart bars at heights proportional to the values, and n/a for null', () => {
    const spec = {
      title: 't', groups: ['a', 'b'], yMax: 1,
      series: [{ name: 's', color: [200, 10, 10] as const, values: [0.5, null] }, { name: 'u', color: [10, 200, 10] as const, values: [1, 0.25] }],
    };
    const img = renderBarChart(spec);
    /** Per column holding `color`, its longest vertical run of exactly that colour. */
    const columnRuns = (color: readonly number[]) => {
      const out: number[] = [];
      for (let x = 0; x < img.width; x++) {
        let best = 0;
        let run = 0;
        for (let y = 0; y < img.height; y++) {
          const o = 4 * (y * img.width + x);
          run = img.data[o] === color[0] && img.data[o + 1] === color[1] && img.data[o + 2] === color[2] ? run + 1 : 0;
          best = Math.max(best, run);
        }
        if (best) out.push(best);
      }
      return out;
    };
    const red = [...new Set(columnRuns([200, 10, 10]))];
    const green = [...new Set(columnRuns([10, 200, 10]))].sort((a, b) => a - b);
    // Legend swatches are 7*scale = 14 px tall; bars: 0.5, 1 and 0.25 of the 240 px plot.
    expect(red.filter((h) => h !== 14)).toEqual([120]);
    expect(green.filter((h) => h !== 14)).toEqual([60, 240]);
  });
});

describe('grounded-sd eval: option errors before any work', () => {
  it('refuses missing and bad options with the usage (exit 2), bad ground truth with one line (exit 1)', async () => {
    const base = ['--model', 'tiny', '--grounding', 'tiny', '--vocab', 'voc', '--split', '1', '--annotator', 'masks', '--gt', tmp, '--out', join(tmp, 'opt-out')];
    const run = (args: string[]) => capture(() => main(['eval', ...args]));
    const cases: Array<[string[], string]> = [
      [base.filter((_, i) => i > 1), '--model PATH or --model tiny is required'],
      [[...base, '--count', '0'], '--count must be >= 1, got 0'],
      [[...base, '--split', '4'], '--split 4 is not a PASCAL VOC split: the official splits are 1, 2 and 3'],
      [[...base, '--annotator', 'oracle'], "--annotator must be one of masks, detector, got 'oracle'"],
      [[...base, '--size', '60'], '--size must be a multiple of 8 (the VAE\'s 8x downsampling), got 60'],
    ];
    for (const [args, message] of cases) {
      const r = await run(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err[0].split('\n')[0]).toBe(`grounded-sd eval: ${message}`);
      expect(r.progress).toBe('');
    }
    const missing = await run([...base.slice(0, -4), '--gt', join(tmp, 'no-such-gt'), '--out', join(tmp, 'opt-out')]);
    expect(missing.code).toBe(1);
    expect(missing.err[0]).toMatch(/InputError: --gt .*no-such-gt: no such file or folder/);
  });
});

describe('grounded-sd eval (tiny model, GPU)', () => {
  it('runs end to end, writes results/report/chart equal to a recomputation, and resumes', async () => {
    const voc = vocabulary('voc', '1');
    const plan = buildTestSets(voc, 1, 0);
    const gtDir = join(tmp, 'gt');
    const out = join(tmp, 'run');
    await writeGroundTruth(gtDir, plan, 64, 64);
    const args = ['--model', 'tiny', '--grounding', 'tiny', '--vocab', 'voc', '--split', '1', '--count', '1', '--steps', '2',
      '--annotator', 'masks', '--gt', gtDir, '--out', out, '--save-masks'];
    const r = await capture(() => runCommand('eval', evalCommand, args));
    expect(r.err, r.err.join('\n')).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.out).toEqual([join(out, 'results.json'), join(out, 'report.md'), join(out, 'chart.png')]);
    expect(r.progress).toMatch(/5 samples planned, 0 already finished \(resumed\), 5 to generate/);
    const results = JSON.parse(await readFile(join(out, 'results.json'), 'utf8')) as EvalResults;
    expect(results.real_weights).toBe(false);
    expect(results.settings).toMatchObject({ model: 'tiny', grounding: 'tiny', steps: 2, size: 'model default', annotator: 'masks' });
    const rec = JSON.parse(await readFile(join(out, 'samples', `${plan[0].id}.json`), 'utf8')) as SampleRecord;
    expect([rec.width, rec.height]).toEqual([64, 64]);
    expectResultsMatch(results, await recompute(out, plan, voc.split));
    const report = await readFile(join(out, 'report.md'), 'utf8');
    for (const label of ['One seen object', 'One unseen object', 'Two seen objects', 'Seen + unseen objects', 'Two unseen objects']) expect(report).toContain(`| ${label} | 1 |`);
    expect(report).toMatch(/random \(tiny\) weights/);
    const chart = decodePng(await readFile(join(out, 'chart.png')));
    const want = renderBarChart(chartSpec(results));
    expect([chart.width, chart.height]).toEqual([want.width, want.height]);
    expect(Buffer.from(chart.rgba).equals(Buffer.from(want.data))).toBe(true);

    // Rerun: every sample resumed, no sample file rewritten.
    const mtimes = await Promise.all(plan.map((s) => stat(join(out, 'samples', `${s.id}.json`)).then((st) => st.mtimeMs)));
    const again = await capture(() => main(['eval', ...args]));
    expect(again.code).toBe(0);
    expect(again.progress).toMatch(/5 samples planned, 5 already finished \(resumed\), 0 to generate/);
    expect(again.progress).not.toMatch(/denoise|models ready/);
    expect(await Promise.all(plan.map((s) => stat(join(out, 'samples', `${s.id}.json`)).then((st) => st.mtimeMs)))).toEqual(mtimes);
    expect(JSON.parse(await readFile(join(out, 'results.json'), 'utf8'))).toEqual(results);
  });
});
