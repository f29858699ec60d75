// `grounded-sd eval` end to end: plan the five test sets, then per sample generate (image,
// grounding masks and DAAM masks of one sampling run), annotate (ground truth), count
// intersection and union per class and method, and store samples/<id>.json atomically as
// it goes; at the end results.json, report.md and chart.png from every stored sample.
//
// Output folder:
//   run.json               what the run depends on (vocabulary, split, seed, generation
//                          settings, annotator); a rerun with other values is refused
//   samples/<id>.json      per sample: prompt, classes, seed, size, ground-truth status and
//                          the I/U counts per method and class (written last, atomically:
//                          its presence means the sample is finished)
//   samples/<id>/*.png     with saveMasks: image.png, gt_<class>.png, daam_<class>.png,
//                          grounding_<class>.png (0/255), written before the JSON
//   results.json, report.md, chart.png
// Resuming: a rerun re-reads finished samples' counts instead of generating them again,
// so --count can also grow; every sample starts from the same module state (engine.ts),
// so the counts do not depend on which samples ran in which process.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { writeBarChart } from '../../io/render/chart.js';
import { uniqueFileNames } from '../../io/render/names.js';
import { maskRgba } from '../../io/render/result_folder.js';
import { writePng } from '../../io/png.js';
import { checkAnnotation, type Annotator } from '../annotate/types.js';
import type { GroundedStage } from '../grounded.js';
import { maskCounts, type Counts } from './miou.js';
import { EVAL_METHODS, type EvalMethod, type SampleGenerator } from './engine.js';
import { buildResults, chartSpec, renderReport, type EvalResults, type SampleCounts } from './report.js';
import { buildTestSets, type TestSample, type Vocabulary } from './testsets.js';

export const RUN_FORMAT = 'grounded-sd eval run 1';
export const SAMPLE_FORMAT = 'grounded-sd eval sample 1';

export interface EvalRunOptions {
  vocab: Vocabulary;
  /** Samples per test set. */
  count: number;
  /** Base seed of the test sets (testsets.ts). */
  seed: number;
  /** Output folder (created if missing). */
  out: string;
  /** Also write each sample's image and masks as PNGs. */
  saveMasks?: boolean;
  /** What the generated masks depend on (models, steps, size, ...): stored in run.json and
   *  compared on a rerun. */
  generation: Record<string, unknown>;
  /** Whether the models are real trained weights (the report says so otherwise). */
  realWeights: boolean;
  onProgress?: (e: EvalEvent) => void;
}

export type EvalEvent =
  | { kind: 'plan'; total: number; finished: number }
  | { kind: 'resumed'; id: string; position: number; total: number }
  | { kind: 'generating'; id: string; position: number; total: number; prompt: string }
  | { kind: 'stage'; id: string; stage: GroundedStage; step: number; total: number }
  | { kind: 'finished'; id: string; position: number; total: number; iou: Record<EvalMethod, number | null> }
  | { kind: 'written'; path: string };

export interface EvalSummary {
  results: EvalResults;
  files: { results: string; report: string; chart: string };
  generated: string[];
  resumed: string[];
}

/** The stored form of one sample. */
export interface SampleRecord {
  format: string;
  id: string;
  set: string;
  index: number;
  prompt: string;
  classes: string[];
  seed: number;
  width: number;
  height: number;
  ground_truth: Record<string, { status: 'mask' | 'missed'; pixels: number }>;
  counts: Record<EvalMethod, Record<string, Counts & { pixels: number }>>;
  /** With saveMasks: paths relative to samples/. */
  files?: { image: string; masks: Record<'gt' | EvalMethod, Record<string, string>> };
  warnings: string[];
}

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

/** Keys whose values differ between two plain JSON objects (top level and one below). */
function differences(a: Record<string, unknown>, b: Record<string, unknown>, prefix = ''): string[] {
  const out: string[] = [];
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    const [x, y] = [a[k], b[k]];
    const nested = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
    if (nested(x) && nested(y) && !prefix) out.push(...differences(x, y, `${k}.`));
    else if (JSON.stringify(x) !== JSON.stringify(y)) out.push(`${prefix}${k}: ${JSON.stringify(x)} before, ${JSON.stringify(y)} now`);
  }
  return out;
}

async function readJson(path: string): Promise<unknown | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputError(`${path} is not valid JSON (${(e as Error).message}); delete it to regenerate it`);
  }
}

/** Checks a stored sample against the plan; returns its counts. */
export function checkRecord(path: string, rec: unknown, s: TestSample): SampleCounts {
  const r = rec as Partial<SampleRecord>;
  const fix = `delete ${path} to regenerate the sample, or use another --out`;
  if (typeof r !== 'object' || r === null || r.format !== SAMPLE_FORMAT) throw new InputError(`${path} is not a '${SAMPLE_FORMAT}' file; ${fix}`);
  const planned = { id: s.id, set: s.set, index: s.index, prompt: s.prompt, classes: s.classes, seed: s.seed };
  for (const [k, v] of Object.entries(planned)) {
    if (JSON.stringify((r as Record<string, unknown>)[k]) !== JSON.stringify(v)) {
      throw new InputError(`${path}: ${k} is ${JSON.stringify((r as Record<string, unknown>)[k])} but the plan has ${JSON.stringify(v)}; ${fix}`);
    }
  }
  const pixels = (r.width ?? 0) * (r.height ?? 0);
  if (!Number.isSafeInteger(pixels) || pixels <= 0) throw new InputError(`${path}: width/height ${r.width}x${r.height} are not an image size; ${fix}`);
  const counts = {} as Record<EvalMethod, Record<string, Counts>>;
  for (const m of EVAL_METHODS) {
    counts[m] = {};
    for (const c of s.classes) {
      const k = r.counts?.[m]?.[c];
      const ok = k && Number.isSafeInteger(k.intersection) && Number.isSafeInteger(k.union) && k.intersection >= 0 && k.intersection <= k.union && k.union <= pixels;
      if (!ok) throw new InputError(`${path}: counts.${m}.${c} ${JSON.stringify(k)} are not 0 <= intersection <= union <= ${pixels}; ${fix}`);
      counts[m][c] = { intersection: k.intersection, union: k.union };
    }
  }
  const missed = s.classes.filter((c) => r.ground_truth?.[c]?.status === 'missed');
  return { sample: s, counts, missed };
}

/** Runs (or resumes) the evaluation in `o.out`. `generator` is called once, only when a
 *  sample is left to generate and after the annotator has accepted the plan, so a bad
 *  ground truth fails before any model is loaded and a finished run loads none. */
export async function runEval(generator: () => Promise<SampleGenerator>, annotator: Annotator, o: EvalRunOptions): Promise<EvalSummary> {
  const emit = (e: EvalEvent) => o.onProgress?.(e);
  const plan = buildTestSets(o.vocab, o.count, o.seed);
  const samplesDir = join(o.out, 'samples');
  await mkdir(samplesDir, { recursive: true });

  // The run's identity: refuse to mix samples of different settings in one folder.
  const identity = {
    format: RUN_FORMAT,
    vocab: o.vocab.name,
    split: o.vocab.splitId,
    seed: o.seed,
    generation: o.generation,
    annotator: annotator.identity,
  };
  const runPath = join(o.out, 'run.json');
  const before = await readJson(runPath);
  if (before !== undefined) {
    const diff = differences(before as Record<string, unknown>, JSON.parse(JSON.stringify(identity)) as Record<string, unknown>);
    if (diff.length) {
      throw new InputError(`${o.out} holds an evaluation with other settings (${diff.join('; ')}); use another --out folder, or delete ${o.out} to start over`);
    }
  } else {
    await writeFileAtomic(runPath, json(identity));
  }

  const records = new Map<string, SampleCounts>();
  for (const s of plan) {
    const path = join(samplesDir, `${s.id}.json`);
    const rec = await readJson(path);
    if (rec !== undefined) records.set(s.id, checkRecord(path, rec, s));
  }
  const todo = plan.filter((s) => !records.has(s.id));
  emit({ kind: 'plan', total: plan.length, finished: records.size });
  let generate: SampleGenerator | undefined;
  if (todo.length) {
    await annotator.prepare?.(todo.map((s) => ({ id: s.id, classes: s.classes })));
    generate = await generator();
  }

  const generated: string[] = [];
  const resumed: string[] = [];
  for (const [position, s] of plan.entries()) {
    if (records.has(s.id)) {
      resumed.push(s.id);
      emit({ kind: 'resumed', id: s.id, position, total: plan.length });
      continue;
    }
    emit({ kind: 'generating', id: s.id, position, total: plan.length, prompt: s.prompt });
    const rec = await evaluateSample(generate as SampleGenerator, annotator, s, samplesDir, o.saveMasks ?? false, (p) => emit({ kind: 'stage', id: s.id, ...p }));
    const counts = checkRecord(join(samplesDir, `${s.id}.json`), rec, s);
    records.set(s.id, counts);
    generated.push(s.id);
    const iou = (m: EvalMethod) => {
      let i = 0;
      let u = 0;
      for (const c of s.classes) {
        i += counts.counts[m][c].intersection;
        u += counts.counts[m][c].union;
      }
      return u > 0 ? i / u : null;
    };
    emit({ kind: 'finished', id: s.id, position, total: plan.length, iou: { daam: iou('daam'), grounding: iou('grounding') } });
  }

  const results = buildResults(o.vocab, plan.map((s) => records.get(s.id) as SampleCounts), {
    seed: o.seed, count: o.count, realWeights: o.realWeights, settings: { ...o.generation, annotator: annotator.name, annotator_identity: annotator.identity },
  });
  const files = { results: join(o.out, 'results.json'), report: join(o.out, 'report.md'), chart: join(o.out, 'chart.png') };
  await writeFileAtomic(files.results, json(results));
  emit({ kind: 'written', path: files.results });
  await writeBarChart(files.chart, chartSpec(results));
  emit({ kind: 'written', path: files.chart });
  await writeFileAtomic(files.report, renderReport(results, 'chart.png'));
  emit({ kind: 'written', path: files.report });
  return { results, files, generated, resumed };
}

/** Generates, annotates and counts one sample; writes its PNGs (optionally) and then its JSON. */
async function evaluateSample(
  generate: SampleGenerator, annotator: Annotator, s: TestSample, samplesDir: string, saveMasks: boolean, onStage: Parameters<SampleGenerator>[1],
): Promise<SampleRecord> {
  const g = await generate(s, onStage);
  const n = g.width * g.height;
  for (const m of EVAL_METHODS) {
    if (g.masks[m].length !== s.classes.length || g.masks[m].some((x) => x.length !== n)) {
      throw new InputError(`evaluation: sample ${s.id}: ${m} gave ${g.masks[m].length} masks (${g.masks[m].map((x) => x.length).join(', ')} pixels) for ${s.classes.length} classes of ${n} pixels`);
    }
  }
  const sample = { id: s.id, image: { width: g.width, height: g.height, rgb: g.rgb, rgba: g.rgba }, classes: s.classes, prompt: s.prompt };
  const answers = checkAnnotation(annotator.name, sample, await annotator.annotate(sample));
  const gt = answers.map((m) => m ?? new Uint8Array(n));
  const area = (m: Uint8Array) => m.reduce((a, v) => a + (v ? 1 : 0), 0);

  const rec: SampleRecord = {
    format: SAMPLE_FORMAT,
    id: s.id, set: s.set, index: s.index, prompt: s.prompt, classes: s.classes, seed: s.seed,
    width: g.width, height: g.height,
    ground_truth: Object.fromEntries(s.classes.map((c, j) => [c, { status: answers[j] ? 'mask' : 'missed', pixels: area(gt[j]) }])),
    counts: {} as SampleRecord['counts'],
    warnings: g.warnings,
  };
  for (const m of EVAL_METHODS) {
    rec.counts[m] = Object.fromEntries(s.classes.map((c, j) => [c, { ...maskCounts(g.masks[m][j], gt[j]), pixels: area(g.masks[m][j]) }]));
  }
  if (saveMasks) {
    const dir = join(samplesDir, s.id);
    const stems = uniqueFileNames(s.classes, '.png');
    const files: NonNullable<SampleRecord['files']> = { image: `${s.id}/image.png`, masks: { gt: {}, daam: {}, grounding: {} } };
    await writePng(join(dir, 'image.png'), g.rgba, g.width, g.height);
    const kinds: Array<['gt' | EvalMethod, Uint8Array[]]> = [['gt', gt], ['daam', g.masks.daam], ['grounding', g.masks.grounding]];
    for (const [kind, masks] of kinds) {
      for (const [j, c] of s.classes.entries()) {
        const name = `${kind}_${stems[j]}`;
        await writePng(join(dir, name), maskRgba(masks[j]), g.width, g.height);
        files.masks[kind][c] = `${s.id}/${name}`;
      }
    }
    rec.files = files;
  }
  await writeFileAtomic(join(samplesDir, `${s.id}.json`), json(rec));
  return rec;
}
