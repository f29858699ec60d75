// The Protocol-II synthetic dataset without a GPU: the plan (every class and pair, N and M
// of each, deterministic per sample, independent of N/M, shards partitioning it), the
// vocabularies, split and pair files, and the run loop on a CPU stand-in generator: label
// maps equal the float64 rule applied to the generator's logits, a rerun generates
// nothing, an interrupted run finishes without redoing or losing samples and equals an
// uninterrupted one file for file, damaged manifests and settings changes are handled;
// and `grounded-sd synth` refusing bad options before loading anything.
import { appendFile, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../src/cli/main.js';
import { synthCommand } from '../../src/cli/synth.js';
import { InputError } from '../../src/gpu/errors.js';
import { VOC_CLASSES, vocSplit } from '../../src/pipeline/eval/vocab.js';
import {
  allPairs, MANIFEST_FILE, parseShard, planSynth, readManifest, readPairList, runSynth, shardOf, synthVocabulary, type SynthRunOptions,
} from '../../src/pipeline/synth/index.js';
import { capture } from '../cli/capture.js';
import { paletteIndices, referenceLabels, standInGenerator, standInImage } from './synth_helpers.js';

let tmp = '';
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'gsd-synth-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('synthetic dataset plan', () => {
  const classes = VOC_CLASSES;

  it('has N samples per class and M per pair over all classes, with the official prompts', () => {
    const plan = planSynth({ classes, perClass: 3, pairs: allPairs(classes.length), perPair: 2, seed: 5 });
    expect(allPairs(20).length).toBe(190);
    expect(plan.length).toBe(20 * 3 + 190 * 2);
    for (const c of classes) expect(plan.filter((s) => s.kind === 'single' && s.classes[0] === c).length).toBe(3);
    for (const [a, b] of allPairs(20)) {
      const of = plan.filter((s) => s.kind === 'pair' && s.classIndices[0] === a && s.classIndices[1] === b);
      expect(of.map((s) => s.repeat)).toEqual([0, 1]);
      // Each class named first once.
      expect(of.map((s) => s.classes[0]).sort()).toEqual([classes[a], classes[b]].sort());
    }
    for (const s of plan) {
      expect(s.prompt).toBe(s.kind === 'single' ? `a photograph of a ${s.classes[0]}` : `a photograph of a ${s.classes[0]} and a ${s.classes[1]}`);
      expect(s.labels).toEqual(s.classes.map((c) => classes.indexOf(c) + 1));
      expect(Number.isInteger(s.seed) && s.seed >= 0 && s.seed <= 0xffffffff).toBe(true);
    }
    expect(new Set(plan.map((s) => s.id)).size).toBe(plan.length);
    expect(new Set(plan.map((s) => s.seed)).size).toBe(plan.length);
    expect(plan[0].id).toBe('c000-00000');
    expect(plan.find((s) => s.classIndices.join() === '3,11' && s.repeat === 1)?.id).toBe('p003-011-00001');
    // Singles first, by repeat then class: a cut-short run has every class at similar counts.
    expect(plan.slice(0, 20).map((s) => s.classes[0])).toEqual([...classes]);
  });

  it('makes the same sample whatever N, M or the pair list; another seed makes other samples', () => {
    const big = planSynth({ classes, perClass: 4, pairs: allPairs(20), perPair: 3, seed: 9 });
    const small = planSynth({ classes, perClass: 2, pairs: [[3, 11], [0, 19]], perPair: 1, seed: 9 });
    for (const s of small) expect(big.find((b) => b.id === s.id)).toEqual(s);
    const other = planSynth({ classes, perClass: 2, pairs: [[3, 11], [0, 19]], perPair: 1, seed: 10 });
    expect(other.map((s) => s.id)).toEqual(small.map((s) => s.id));
    expect(other.filter((s, i) => s.seed === small[i].seed).length).toBe(0);
  });

  it('splits into shards k % n == i that partition the plan', () => {
    const plan = planSynth({ classes, perClass: 2, pairs: allPairs(20), perPair: 1, seed: 1 });
    const shards = [0, 1, 2].map((i) => shardOf(plan, parseShard(`${i}/3`)));
    shards.forEach((sh, i) => expect(sh).toEqual(plan.filter((_, k) => k % 3 === i)));
    expect(shards.flat().map((s) => s.id).sort()).toEqual(plan.map((s) => s.id).sort());
    expect(shardOf(plan)).toEqual(plan);
    for (const bad of ['3/2', '2/2', '1/0', '1', '-1/2', 'a/b', '1/2/3', ' 0/2']) expect(() => parseShard(bad), bad).toThrow(InputError);
    expect(() => parseShard('3/2')).toThrow(/index i must be below the count n/);
  });

  it('refuses an empty plan, bad counts and bad pairs', () => {
    expect(() => planSynth({ classes, perClass: 0, pairs: [], perPair: 5, seed: 0 })).toThrow(/nothing to generate/);
    expect(() => planSynth({ classes, perClass: -1, pairs: [], perPair: 0, seed: 0 })).toThrow(/--per-class -1/);
    expect(() => planSynth({ classes, perClass: 1, pairs: [[2, 2]], perPair: 1, seed: 0 })).toThrow(/class pair \(2, 2\)/);
    expect(() => planSynth({ classes, perClass: 1, pairs: [[0, 20]], perPair: 1, seed: 0 })).toThrow(/class pair/);
    expect(() => planSynth({ classes: [], perClass: 1, pairs: [], perPair: 0, seed: 0 })).toThrow(/no classes/);
  });
});

describe('vocabularies, splits and pair lists', () => {
  it('built in, with the official splits recorded; files with comments; pairs by name in any order', async () => {
    expect(synthVocabulary('voc').split).toBeNull();
    expect(synthVocabulary('voc', '2').split).toEqual(vocSplit(2));
    expect(synthVocabulary('coco', '65_15').split?.unseen.length).toBe(15);
    const vocab = join(tmp, 'vocab.txt');
    await writeFile(vocab, '# three classes\ndog\n\n  potted   plant \ncat\n');
    const v = synthVocabulary(vocab);
    expect(v.classes).toEqual(['dog', 'potted plant', 'cat']);
    const seen = join(tmp, 'seen.txt');
    await writeFile(seen, 'cat\ndog\n');
    expect(synthVocabulary(vocab, seen).split).toMatchObject({ seen: ['dog', 'cat'], unseen: ['potted plant'] });
    const pairs = join(tmp, 'pairs.txt');
    await writeFile(pairs, 'cat, dog\npotted plant\tdog\n');
    expect(readPairList(pairs, v.classes)).toEqual([[0, 2], [0, 1]]);
  });

  it('refuse unknown vocabularies, splits and classes, and malformed pair lists, naming the file and line', async () => {
    expect(() => synthVocabulary('pascal')).toThrow(/--vocab pascal is not known and is not a file/);
    expect(() => synthVocabulary('voc', '4')).toThrow(/--split 4 is not a split of --vocab voc/);
    expect(() => synthVocabulary('coco', '1')).toThrow(/the COCO split is 65_15/);
    const seen = join(tmp, 'seen-bad.txt');
    await writeFile(seen, 'dog\nunicorn\n');
    expect(() => synthVocabulary('voc', seen)).toThrow(/names 'unicorn', not in --vocab voc/);
    const dup = join(tmp, 'dup.txt');
    await writeFile(dup, 'dog\ndog\n');
    expect(() => synthVocabulary(dup)).toThrow(/line 2: class 'dog' is listed twice/);
    const cases: Array<[string, RegExp]> = [
      ['dog\n', /line 1: 'dog' is not two class names/],
      ['dog, unicorn\n', /line 1: 'unicorn' not in the vocabulary/],
      ['dog, dog\n', /two different classes/],
      ['dog, cat\ncat, dog\n', /line 2: the pair cat \+ dog is listed twice/],
      ['# nothing\n', /is empty/],
    ];
    for (const [text, err] of cases) {
      const f = join(tmp, 'pairs-bad.txt');
      await writeFile(f, text);
      expect(() => readPairList(f, VOC_CLASSES), text).toThrow(err);
    }
  });
});

describe('synth run loop (CPU stand-in generator)', () => {
  const [W, H] = [20, 14];
  const classes = ['dog', 'potted plant', 'cat'];
  const options = (out: string, extra: Partial<SynthRunOptions> = {}): SynthRunOptions => ({
    out, vocab: { name: 'test', classes, split: null }, perClass: 2, perPair: 1, pairs: 'all', seed: 4, threshold: 0.5, ignoreRadius: 0,
    generation: { model: 'stand-in', steps: 1 }, ...extra,
  });
  const once = (calls: string[] = [], failAt?: Set<string>) => async () => standInGenerator(W, H, calls, failAt);

  it('writes images, label maps equal to the rule on the generator\'s logits, and one manifest line per sample', async () => {
    const out = join(tmp, 'run-a');
    const calls: string[] = [];
    const sum = await runSynth(once(calls), options(out));
    const plan = planSynth({ classes, perClass: 2, pairs: allPairs(3), perPair: 1, seed: 4 });
    expect(sum.generated).toEqual(plan.map((s) => s.id));
    expect(calls).toEqual(plan.map((s) => s.id));
    const read = await readManifest(out);
    expect([...read.records.keys()]).toEqual(plan.map((s) => s.id));
    let contested = 0;
    for (const s of plan) {
      const r = read.records.get(s.id);
      expect(r).toMatchObject({ kind: s.kind, classes: s.classes, labels: s.labels, prompt: s.prompt, seed: s.seed, width: W, height: H });
      const img = standInImage(s, W, H);
      const want = referenceLabels(img.logits, s.labels);
      const got = paletteIndices(await readFile(join(out, 'labels', `${s.id}.png`)));
      expect([got.width, got.height]).toEqual([W, H]);
      expect(got.indices, s.id).toEqual(want);
      for (const [label, n] of Object.entries(r?.pixels ?? {})) expect(want.filter((v) => v === Number(label)).length).toBe(n);
      if (s.kind === 'pair') contested += img.logits[0].filter((v, p) => v > 0 && img.logits[1][p] > 0).length;
    }
    // The check covered overlapping masks (decided by the logits) and exact ties.
    expect(contested).toBeGreaterThan(20);
    const settings = JSON.parse(await readFile(join(out, 'synth.json'), 'utf8'));
    expect(settings).toMatchObject({ format: 'grounded-sd synth 1', plan: { per_class: 2, per_pair: 1, pairs: 'all', seed: 4, samples: 9 }, shard: null });
  });

  it('resumes: a rerun generates nothing (and asks for no model); an interrupted run finishes and equals an uninterrupted one', async () => {
    const full = join(tmp, 'run-a');
    let asked = false;
    const again = await runSynth(async () => {
      asked = true;
      return standInGenerator(W, H);
    }, options(full));
    expect(again.generated).toEqual([]);
    expect(again.resumed.length).toBe(9);
    expect(asked).toBe(false);

    const out = join(tmp, 'run-b');
    const plan = planSynth({ classes, perClass: 2, pairs: allPairs(3), perPair: 1, seed: 4 });
    await expect(runSynth(once([], new Set([plan[4].id])), options(out))).rejects.toThrow(/interrupted at/);
    // A write cut short by the interruption: a torn last manifest line and a stray temp file.
    await appendFile(join(out, MANIFEST_FILE), '{"id":"c001-00001","kind":"sin');
    const calls: string[] = [];
    const rest = await runSynth(once(calls), options(out));
    expect(rest.resumed).toEqual(plan.slice(0, 4).map((s) => s.id));
    expect(calls).toEqual(plan.slice(4).map((s) => s.id));
    for (const sub of ['images', 'labels']) {
      const names = (await readdir(join(out, sub))).sort();
      expect(names).toEqual((await readdir(join(full, sub))).sort());
      for (const n of names) expect(await readFile(join(out, sub, n)), `${sub}/${n}`).toEqual(await readFile(join(full, sub, n)));
    }
    expect(await readFile(join(out, MANIFEST_FILE), 'utf8')).toBe(await readFile(join(full, MANIFEST_FILE), 'utf8'));
  });

  it('makes again a sample whose file went missing or whose manifest line is damaged, and says so', async () => {
    const out = join(tmp, 'run-b');
    await unlink(join(out, 'labels', 'c002-00000.png'));
    const lines = (await readFile(join(out, MANIFEST_FILE), 'utf8')).split('\n');
    lines[0] = lines[0].replace('"width":20', '"width":-1');
    await writeFile(join(out, MANIFEST_FILE), lines.join('\n'));
    const calls: string[] = [];
    const events: string[] = [];
    const r = await runSynth(once(calls), { ...options(out), onProgress: (e) => (e.kind === 'problem' ? events.push(e.message) : undefined) });
    expect(calls.sort()).toEqual(['c000-00000', 'c002-00000']);
    expect(events.join('\n')).toMatch(/line 1: width and height must be positive integers/);
    expect(events.join('\n')).toMatch(/c002-00000: labels\/c002-00000.png missing/);
    expect(r.problems.length).toBe(2);
    expect((await readManifest(out)).records.size).toBe(9);
  });

  it('stops after the sample in progress when its signal is aborted, removes stray temp files on the rerun, and finishes', async () => {
    const out = join(tmp, 'run-stop');
    const stop = new AbortController();
    const first = await runSynth(once(), {
      ...options(out), signal: stop.signal, onProgress: (e) => (e.kind === 'finished' && e.position === 2 ? stop.abort() : undefined),
    });
    expect(first.stopped).toBe(true);
    expect(first.generated).toEqual(['c000-00000', 'c001-00000', 'c002-00000']);
    expect((await readManifest(out)).records.size).toBe(3);
    // What a killed atomic write leaves behind (io/atomic.ts names).
    await writeFile(join(out, 'images', '.c000-00001.png.999.abcd1234.tmp'), 'half');
    const rest = await runSynth(once(), options(out));
    expect(rest.stopped).toBe(false);
    expect(rest.generated.length).toBe(6);
    expect((await readdir(join(out, 'images'))).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses to mix settings in one folder, naming what changed', async () => {
    const out = join(tmp, 'run-a');
    await expect(runSynth(once(), options(out, { seed: 5 }))).rejects.toThrow(/other settings \(plan.seed: 4 vs 5\); use another --out folder/);
    await expect(runSynth(once(), options(out, { threshold: 0.4 }))).rejects.toThrow(/masks.threshold: 0.5 vs 0.4/);
    await expect(runSynth(once(), options(out, { shard: { index: 0, count: 2 } }))).rejects.toThrow(/shard: null vs/);
  });

  it('draws the ignore band when asked', async () => {
    const out = join(tmp, 'run-c');
    await runSynth(once(), options(out, { ignoreRadius: 1, perClass: 1, perPair: 0 }));
    const read = await readManifest(out);
    const ignored = [...read.records.values()].reduce((a, r) => a + (r.pixels['255'] ?? 0), 0);
    expect(ignored).toBeGreaterThan(0);
  });
});

describe('grounded-sd synth: bad options are refused before any model is loaded', () => {
  const base = ['--model', 'tiny', '--grounding', 'tiny', '--vocab', 'voc', '--per-class', '1', '--pairs', '0'];
  const cases: Array<[string[], RegExp]> = [
    [[...base.slice(2)], /--model PATH or --model tiny is required/],
    [['--model', 'tiny', '--grounding', 'tiny', '--per-class', '1', '--pairs', '0', '--out', 'x'], /--vocab voc, --vocab coco or --vocab FILE is required/],
    [[...base.slice(0, 4), '--vocab', 'pascal', '--per-class', '1', '--pairs', '0', '--out', 'x'], /--vocab pascal is not known/],
    [[...base, '--out', 'x', '--shard', '3/2'], /--shard 3\/2: the shard index i must be below the count n/],
    [[...base.slice(0, 6), '--per-class', '0', '--pairs', '0', '--out', 'x'], /--per-class must be >= 1, got 0/],
    [[...base.slice(0, 6), '--per-class', '-3', '--pairs', '0', '--out', 'x'], /--per-class must be >= 1, got -3/],
    [[...base.slice(0, 6), '--pairs', '1', '--out', 'x'], /--per-class N is required/],
    [[...base, '--out', 'x', '--split', '7'], /--split 7 is not a split of --vocab voc/],
    [[...base, '--out', 'x', '--size', '60'], /--size must be a multiple of 8/],
    [[...base, '--out', 'x', '--threshold', '1'], /--threshold must be <= /],
    [[...base, '--out', 'x', '--batchnorm', 'train'], /--batchnorm must be one of official, eval/],
    [[...base, '--out', 'x', '--pair-list', '/nonexistent/pairs.txt'], /--pair-list \/nonexistent\/pairs.txt/],
    [[...base], /--out DIR is required/],
  ];
  for (const [args, err] of cases) {
    it(args.join(' '), async () => {
      const r = await capture(() => runCommand('synth', synthCommand, args));
      expect(r.code).toBe(2);
      expect(r.err.join('\n')).toMatch(err);
      expect(r.err.join('\n')).toMatch(/usage: grounded-sd synth/);
    });
  }

  it('a model path that does not exist, or an output under a file', async () => {
    const file = join(tmp, 'a-file');
    await writeFile(file, 'x');
    let r = await capture(() => runCommand('synth', synthCommand, [...base, '--out', join(file, 'sub')]));
    expect(r.code).toBe(1);
    expect(r.err.join('\n')).toMatch(/--out: .*a-file is a file/);
    r = await capture(() => runCommand('synth', synthCommand, ['--model', join(tmp, 'nope'), ...base.slice(2), '--out', join(tmp, 'o')]));
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toMatch(/--model .*nope does not exist/);
  });
});
