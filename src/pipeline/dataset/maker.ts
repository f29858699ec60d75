// Annotators that make their own samples. The default build generates sample i from its
// plan (plan.ts) and asks the annotator for masks; an annotator that is also a SampleMaker
// (the 'ddim-inverse' path, voc_source.ts: real pictures with their label maps) plans and
// makes each sample itself, and the build keeps doing the rest (resume, shards, atomic
// folders, the manifest) unchanged.
import type { StableDiffusion } from '../../models/sd.js';
import type { Annotator } from '../annotate/types.js';
import type { SampleFiles } from './files.js';
import type { SampleGeneration } from './generate.js';
import type { PlannedSample } from './plan.js';
import type { DatasetSettings } from './settings.js';

export type MadeSample =
  | { kind: 'skipped'; reason: string }
  | { kind: 'ok'; files: SampleFiles; found: boolean[] };

export interface SampleMaker {
  /** Plans of the indices `todo`; `finishedOk` counts samples stored before this call
   *  (an annotator may refuse a build with nothing to store). */
  planSamples(todo: readonly number[], s: DatasetSettings, finishedOk: number): Promise<PlannedSample[]>;
  /** One sample's files, or why it is skipped. */
  makeSample(sd: StableDiffusion, plan: PlannedSample, s: DatasetSettings, gen: SampleGeneration): Promise<MadeSample>;
}

/** The annotator as a SampleMaker, or null when the build generates the samples. */
export function sampleMakerOf(a: Annotator): SampleMaker | null {
  const m = a as Partial<SampleMaker>;
  return typeof m.planSamples === 'function' && typeof m.makeSample === 'function' ? (a as unknown as SampleMaker) : null;
}
