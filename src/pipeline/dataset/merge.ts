// `dataset merge OUT IN...`: joins datasets built with the same settings (typically the
// shards of one build) into OUT. Refused: differing settings, an index recorded by two
// inputs, an OUT that already holds samples. Sample folders are copied (a reflink where
// the file system has one) into temporary folders and renamed, then the manifest is
// written last, sorted by index, so the merge of shards equals one unsharded build. An
// interrupted merge leaves no manifest and can simply be rerun.
import { constants } from 'node:fs';
import { copyFile, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { IMAGE_FILE, SAMPLE_FILE, sampleDir, SAMPLES_DIR } from './files.js';
import { readManifest, writeManifest, type ManifestRecord } from './manifest.js';
import { readDatasetSettings, settingsDifferences, writeDatasetSettings, type DatasetSettings } from './settings.js';

export interface MergeSummary {
  inputs: number;
  /** Records merged (stored and skipped samples). */
  samples: number;
  skipped: number;
  /** Largest index merged + 1 minus the records: indices no input has (a rerun of
   *  `dataset build` on OUT with that --count builds them). */
  gaps: number;
  warnings: string[];
}

const size = (p: string) => stat(p).then((s) => (s.isFile() ? s.size : -1), () => -1);

export async function mergeDatasets(out: string, inputs: readonly string[]): Promise<MergeSummary> {
  if (inputs.length === 0) throw new InputError('dataset merge: give the output folder and at least one input dataset folder');
  const outAbs = resolve(out);
  const seen = new Set<string>();
  for (const i of inputs) {
    const abs = resolve(i);
    if (abs === outAbs) throw new InputError(`dataset merge: the output ${out} is also an input; merge into a new folder`);
    if (seen.has(abs)) throw new InputError(`dataset merge: input ${i} is given twice`);
    seen.add(abs);
  }
  const settings: DatasetSettings[] = [];
  for (const i of inputs) {
    const s = await readDatasetSettings(i);
    if (!s) throw new InputError(`dataset merge: ${i} is not a dataset folder (it has no dataset.json); give folders made by grounded-sd dataset build`);
    settings.push(s);
  }
  settings.forEach((s, k) => {
    const diff = settingsDifferences(settings[0] as unknown as Record<string, unknown>, s as unknown as Record<string, unknown>, [inputs[0], inputs[k]]);
    if (diff.length) throw new InputError(`dataset merge: ${inputs[k]} was built with other settings than ${inputs[0]} (${diff.join('; ')}); only shards of one build merge`);
  });
  const existing = await readDatasetSettings(out);
  if (existing) {
    const diff = settingsDifferences(existing as unknown as Record<string, unknown>, settings[0] as unknown as Record<string, unknown>, [out, inputs[0]]);
    if (diff.length) throw new InputError(`dataset merge: ${out} holds a dataset with other settings (${diff.join('; ')}); merge into a new folder`);
    if ((await readManifest(out)).records.size > 0) throw new InputError(`dataset merge: ${out} already holds samples; merge into a new folder (or add its folder as an input)`);
  }

  const warnings: string[] = [];
  const owner = new Map<number, number>();
  const records: ManifestRecord[] = [];
  for (const [k, dir] of inputs.entries()) {
    const m = await readManifest(dir);
    for (const p of m.problems) warnings.push(`ignored: ${p}`);
    const overlap: number[] = [];
    for (const [index, r] of m.records) {
      const other = owner.get(index);
      if (other !== undefined) {
        overlap.push(index);
        if (overlap.length === 1) warnings.push(`first overlap: index ${index} in ${inputs[other]} and ${dir}`);
        continue;
      }
      if (r.status === 'ok') {
        const src = sampleDir(dir, r.id);
        if ((await size(join(src, IMAGE_FILE))) !== r.bytes.image || (await size(join(src, SAMPLE_FILE))) !== r.bytes.sample) {
          warnings.push(`${src}: its files are missing or of other sizes than its manifest line records; sample ${r.id} is left out (rebuild it with dataset build on the merged folder)`);
          continue;
        }
      }
      owner.set(index, k);
      records.push(r);
    }
    if (overlap.length) {
      throw new InputError(`dataset merge: ${dir} records ${overlap.length} sample(s) another input also has (indices ${overlap.slice(0, 8).join(', ')}${overlap.length > 8 ? ', ...' : ''}); shards of one build never overlap: merge each shard once`);
    }
  }

  await mkdir(join(out, SAMPLES_DIR), { recursive: true });
  if (!existing) await writeDatasetSettings(out, settings[0]);
  // Leftovers of an interrupted merge (no manifest was written) are replaced.
  for (const name of await readdir(join(out, SAMPLES_DIR))) await rm(join(out, SAMPLES_DIR, name), { recursive: true, force: true });
  records.sort((a, b) => a.index - b.index);
  for (const r of records) {
    if (r.status !== 'ok') continue;
    const src = sampleDir(inputs[owner.get(r.index) as number], r.id);
    const tmp = join(out, SAMPLES_DIR, `.${r.id}.tmp-${process.pid}-0`);
    await mkdir(tmp, { recursive: true });
    for (const f of [IMAGE_FILE, SAMPLE_FILE]) await copyFile(join(src, f), join(tmp, f), constants.COPYFILE_FICLONE);
    await rename(tmp, sampleDir(out, r.id));
  }
  await writeManifest(out, records);
  const top = records.length ? records[records.length - 1].index + 1 : 0;
  return { inputs: inputs.length, samples: records.length, skipped: records.filter((r) => r.status === 'skipped').length, gaps: top - records.length, warnings };
}
