// Protocol-I results from the per-sample counts: per test set and over all sets, per method
// (DAAM, grounding module) the per-class IoU and mIoU seen / unseen / harmonic mean with
// the definitions of miou.ts (/work/shared/golden/eval_miou/README.md); then results.json,
// report.md in the paper's table layout, and the grouped bar chart's data.
//
// Published numbers: the paper's Protocol-I table could not be found in text form (paper
// or official repository, which has no evaluation code) by this project's tools, so the
// report shows no "paper" column and says so; every number in it is measured by the run.
import type { BarChartSpec } from '../../io/render/chart.js';
import { IoUAccumulator, type Counts, type IoUStatus } from './miou.js';
import { EVAL_METHODS, type EvalMethod } from './engine.js';
import { TEST_SET_LABELS, TEST_SETS, type TestSetName, type TestSample, type Vocabulary } from './testsets.js';

/** What one finished sample contributes (the stored part of samples/<id>.json). */
export interface SampleCounts {
  sample: TestSample;
  /** Per method, per class of the sample. */
  counts: Record<EvalMethod, Record<string, Counts>>;
  /** Classes the annotator did not find (their ground truth counts as empty). */
  missed: string[];
}

export interface ClassIoU extends Counts {
  iou: number | null;
  status: IoUStatus;
  /** Ids of the samples whose prompt names the class. */
  samples: string[];
}

export interface MethodSummary {
  per_class: Record<string, ClassIoU>;
  miou_seen: number | null;
  miou_unseen: number | null;
  harmonic_mean: number | null;
  seen_classes_averaged: string[];
  unseen_classes_averaged: string[];
}

export interface SetSummary {
  label: string;
  samples: number;
  /** Class occurrences whose ground truth the annotator missed. */
  ground_truth_missed: number;
  methods: Record<EvalMethod, MethodSummary>;
}

export interface EvalResults {
  format: string;
  vocab: string;
  split: { id: string; name: string; seen: readonly string[]; unseen: readonly string[] };
  seed: number;
  count: number;
  real_weights: boolean;
  settings: Record<string, unknown>;
  methods: Record<EvalMethod, string>;
  definitions: string;
  sets: Record<TestSetName, SetSummary>;
  all: SetSummary;
}

export const RESULTS_FORMAT = 'grounded-sd eval results 1';

export const METHOD_LABELS: Readonly<Record<EvalMethod, string>> = Object.freeze({ daam: 'DAAM', grounding: 'Grounded' });

const METHOD_DESCRIPTIONS: Record<EvalMethod, string> = {
  daam: 'DAAM word map of the class (castorini/daam aggregation of the same sampling run), min-max normalised, mask = map > 0.4',
  grounding: 'grounding module mask, sigmoid(logit) > 0.5 (official test.py)',
};

const DEFINITIONS =
  'Per class c and sample k naming c: I = #(P and G), U = #(P or G) in pixels. IoU_c = sum_k I / sum_k U over the samples ' +
  'naming c (null: named by no sample, or summed union 0). mIoU seen/unseen = mean of the non-null IoU_c over the split\'s ' +
  'seen/unseen classes (null if none); harmonic mean H = 2su/(s+u). A class the annotator missed has an empty ground truth, so ' +
  'its prediction counts in the union only. Definitions: /work/shared/golden/eval_miou/README.md.';

/** One accumulator over `records`, summarised with sample ids instead of indices. */
function summarise(vocab: Vocabulary, label: string, records: readonly SampleCounts[]): SetSummary {
  const acc = new IoUAccumulator(vocab.classes, EVAL_METHODS);
  records.forEach((r, i) => acc.addCounts({ index: i, classes: r.sample.classes, counts: r.counts }));
  const methods = {} as Record<EvalMethod, MethodSummary>;
  for (const m of EVAL_METHODS) {
    const res = acc.result(m, vocab.split);
    const perClass: Record<string, ClassIoU> = {};
    for (const [c, v] of Object.entries(res.per_class)) {
      perClass[c] = { intersection: v.intersection, union: v.union, iou: v.iou, status: v.status, samples: v.images.map((i) => records[i].sample.id) };
    }
    methods[m] = {
      per_class: perClass, miou_seen: res.miou_seen, miou_unseen: res.miou_unseen, harmonic_mean: res.harmonic_mean,
      seen_classes_averaged: res.seen_classes_averaged, unseen_classes_averaged: res.unseen_classes_averaged,
    };
  }
  return { label, samples: records.length, ground_truth_missed: records.reduce((a, r) => a + r.missed.length, 0), methods };
}

/** results.json's content from every finished sample (in plan order). */
export function buildResults(
  vocab: Vocabulary, records: readonly SampleCounts[], o: { seed: number; count: number; realWeights: boolean; settings: Record<string, unknown> },
): EvalResults {
  const sets = {} as Record<TestSetName, SetSummary>;
  for (const s of TEST_SETS) sets[s] = summarise(vocab, TEST_SET_LABELS[s], records.filter((r) => r.sample.set === s));
  return {
    format: RESULTS_FORMAT,
    vocab: vocab.name,
    split: { id: vocab.splitId, name: vocab.split.name, seen: vocab.split.seen, unseen: vocab.split.unseen },
    seed: o.seed,
    count: o.count,
    real_weights: o.realWeights,
    settings: o.settings,
    methods: METHOD_DESCRIPTIONS,
    definitions: DEFINITIONS,
    sets,
    all: summarise(vocab, 'All sets', records),
  };
}

/** "PASCAL VOC split 1" / "COCO split 65_15". */
export function datasetTitle(r: Pick<EvalResults, 'vocab' | 'split'>): string {
  return `${r.vocab === 'voc' ? 'PASCAL VOC' : r.vocab === 'coco' ? 'COCO' : r.vocab} split ${r.split.id}`;
}

/** mIoU as the paper prints it: percent, one decimal; a dash when undefined. */
export const percent = (v: number | null): string => (v === null ? '–' : (100 * v).toFixed(1));

function row(cells: string[]): string {
  return `| ${cells.join(' | ')} |`;
}

/** report.md: the paper's table (rows: test sets; columns: DAAM vs Grounded, seen and
 *  unseen mIoU), the harmonic means, per-class IoU over all sets, and notes. */
export function renderReport(r: EvalResults, chartFile: string): string {
  const L = METHOD_LABELS;
  const out: string[] = [];
  out.push(`# Protocol-I evaluation: ${datasetTitle(r)}`, '');
  out.push(
    `Images generated from the paper's templates ("a photograph of a X", "a photograph of a X and a Y"), ${r.count} per test set, ` +
      `base seed ${r.seed}; ground truth from the \`${String(r.settings.annotator ?? 'unknown')}\` annotator. mIoU in percent.`,
    '',
  );
  if (!r.real_weights) {
    out.push('**These numbers come from random (tiny) weights: they test the pipeline and say nothing about either method.**', '');
  }
  out.push(row(['Test set', 'Samples', `${L.daam} seen`, `${L.daam} unseen`, `${L.grounding} seen`, `${L.grounding} unseen`]));
  out.push(row(['---', '---:', '---:', '---:', '---:', '---:']));
  const line = (s: SetSummary, bold = false) => {
    const b = (t: string) => (bold ? `**${t}**` : t);
    const d = s.methods.daam;
    const g = s.methods.grounding;
    return row([s.label, String(s.samples), percent(d.miou_seen), percent(d.miou_unseen), percent(g.miou_seen), percent(g.miou_unseen)].map(b));
  };
  for (const s of TEST_SETS) out.push(line(r.sets[s]));
  out.push(line(r.all, true), '');
  out.push(
    'The paper\'s published numbers are not shown beside these: its Protocol-I table could not be found in text form ' +
      '(the paper or the official repository, which has no evaluation code) by this project\'s tools.',
    '',
  );

  out.push('## Harmonic mean of seen and unseen mIoU', '');
  out.push(row(['Test set', L.daam, L.grounding]), row(['---', '---:', '---:']));
  for (const s of [...TEST_SETS.map((k) => r.sets[k]), r.all]) out.push(row([s.label, percent(s.methods.daam.harmonic_mean), percent(s.methods.grounding.harmonic_mean)]));
  out.push('', 'A dash: undefined (a set naming only seen or only unseen classes has no mIoU on the other side).', '');

  out.push('## Per-class IoU, all sets', '');
  out.push(row(['Class', 'Split', 'Samples', `${L.daam} IoU`, `${L.grounding} IoU`]), row(['---', '---', '---:', '---:', '---:']));
  const seen = new Set(r.split.seen);
  for (const c of [...r.split.seen, ...r.split.unseen]) {
    const d = r.all.methods.daam.per_class[c];
    const g = r.all.methods.grounding.per_class[c];
    out.push(row([c, seen.has(c) ? 'seen' : 'unseen', String(d.samples.length), percent(d.iou), percent(g.iou)]));
  }
  out.push('');
  out.push('## Notes', '');
  out.push(`- ${L.daam}: ${r.methods.daam}.`);
  out.push(`- ${L.grounding}: ${r.methods.grounding}.`);
  out.push(`- ${r.definitions}`);
  out.push(`- Split: ${r.split.name}; seen: ${r.split.seen.join(', ')}; unseen: ${r.split.unseen.join(', ')}.`);
  out.push(`- Class occurrences whose ground truth the annotator missed: ${r.all.ground_truth_missed}.`);
  out.push(`- Chart: ![mIoU per test set](${chartFile})`, '');
  return out.join('\n');
}

/** Series colours: light/dark blue for DAAM seen/unseen, light/dark orange for Grounded. */
const COLORS = { daamSeen: [158, 202, 225], daamUnseen: [49, 130, 189], gSeen: [253, 174, 107], gUnseen: [230, 85, 13] } as const;

/** The grouped bar chart: groups = the five sets and all sets; bars = method x seen/unseen. */
export function chartSpec(r: EvalResults): BarChartSpec {
  const sets = [...TEST_SETS.map((k) => r.sets[k]), r.all];
  const vals = (m: EvalMethod, side: 'miou_seen' | 'miou_unseen') => sets.map((s) => s.methods[m][side]);
  return {
    title: `Protocol-I mIoU, ${datasetTitle(r)}${r.real_weights ? '' : ' (random weights)'}`,
    groups: sets.map((s) => s.label),
    series: [
      { name: `${METHOD_LABELS.daam} seen`, color: COLORS.daamSeen, values: vals('daam', 'miou_seen') },
      { name: `${METHOD_LABELS.daam} unseen`, color: COLORS.daamUnseen, values: vals('daam', 'miou_unseen') },
      { name: `${METHOD_LABELS.grounding} seen`, color: COLORS.gSeen, values: vals('grounding', 'miou_seen') },
      { name: `${METHOD_LABELS.grounding} unseen`, color: COLORS.gUnseen, values: vals('grounding', 'miou_unseen') },
    ],
    yLabel: 'mIoU',
    yMax: 1,
  };
}
