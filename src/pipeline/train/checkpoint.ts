// Checkpoints of a training run: folders written under a temporary name and renamed
// into place, after which `latest` names the newest. Kept: the newest and the one
// before it (by step, numerically), in case the newest proves bad.
//   ckpt-<step>/weights.safetensors    module parameters and buffers, official names, F32
//   ckpt-<step>/optimizer.safetensors  optimiser state tensors (m.<name>, v.<name>)
//   ckpt-<step>/state.json             step, sample position, optimiser step count, settings
// Saving refuses non-finite values, so a diverged run never replaces a good checkpoint.
// Loading reads only from the run folder (`latest` must name a ckpt-<step> folder in
// it), validates everything on the host before it changes the model or optimiser, and
// turns each kind of damage into an InputError/WeightError naming the file and the fix.
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { EngineError, InputError, WeightError } from '../../gpu/errors.js';
import type { Runtime } from '../../gpu/runtime.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { SafetensorsFile, writeSafetensors } from '../../io/safetensors.js';
import type { Param } from '../../nn/module.js';
import { Tensor } from '../../tensor/tensor.js';
import {
  checkpointName, checkpointStep, isRegularFile, LATEST, listCheckpoints, OPTIMIZER, otherCheckpoints, readRunFile, STATE, WEIGHTS,
} from './files.js';
import type { CheckpointState, TrainableModel, TrainOptimizer } from './types.js';

type HostTensors = Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>;

/** Index of the first NaN/Inf in `a`, or -1. */
function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return i;
  return -1;
}

function list(names: string[], max = 5): string {
  return names.length > max ? `${names.slice(0, max).join(', ')} (+${names.length - max} more)` : names.join(', ');
}

/** Writes ckpt-<step> and points `latest` at it, then prunes older checkpoints. Reads
 *  everything back first and writes nothing if any value is NaN or Inf. */
export async function saveCheckpoint(dir: string, model: TrainableModel, opt: TrainOptimizer, state: CheckpointState): Promise<string> {
  const os = opt.exportState();
  const host = async (ts: Map<string, Tensor>, kind: string): Promise<HostTensors> => {
    const out: HostTensors = {};
    for (const [name, t] of ts) {
      const data = await t.toArray();
      const bad = firstNonFinite(data);
      if (bad >= 0) {
        const latest = (await readRunFile(join(dir, LATEST), 'checkpoint pointer').catch(() => null))?.trim() || 'none';
        throw new InputError(
          `training diverged: after step ${state.step} ${kind} '${name}' holds ${data[bad]} (index ${bad}); no checkpoint was written for this step `
          + `and the last good one (${latest} in ${dir}) is kept. Start over with a lower --lr, or check the samples`,
        );
      }
      out[name] = { dtype: 'F32', shape: [...t.shape], data };
    }
    return out;
  };
  const all = new Map<string, Tensor>();
  for (const [name, p] of model.params()) all.set(name, p.t);
  const weights = await host(all, 'module tensor');
  const moments = await host(os.tensors, 'optimiser state');

  const name = checkpointName(state.step);
  const final = join(dir, name);
  const tmp = `${final}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    await writeSafetensors(join(tmp, WEIGHTS), weights, { format: 'grounded-sd.segmodule' });
    await writeSafetensors(join(tmp, OPTIMIZER), moments, { step: String(os.step) });
    await writeFileAtomic(join(tmp, STATE), `${JSON.stringify({ ...state, optimizerStep: os.step }, null, 2)}\n`);
    await rm(final, { recursive: true, force: true });
    await rename(tmp, final);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
  await writeFileAtomic(join(dir, LATEST), `${name}\n`);
  await pruneCheckpoints(dir, state.step);
  return final;
}

/** Deletes every checkpoint but ckpt-<keep> (the one `latest` names) and the newest
 *  one before it. Steps compare as numbers, so ckpt-100000000 sorts after ckpt-99999999. */
export async function pruneCheckpoints(dir: string, keep: number): Promise<void> {
  const all = await listCheckpoints(dir);
  const before = all.filter((c) => c.step < keep).pop();
  for (const c of all) {
    if (c.step !== keep && c !== before) await rm(join(dir, c.name), { recursive: true, force: true });
  }
}

/** The checkpoint `latest` names, with its validated state.json (no tensors read). */
export interface ResumePoint { dir: string; name: string; path: string; state: CheckpointState }

function parseState(text: string, file: string, step: number, fix: string): CheckpointState {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new InputError(`${file} is not valid JSON (${(err as Error).message}); the checkpoint is damaged (an interrupted copy?). ${fix}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new InputError(`${file} must hold a JSON object, found ${JSON.stringify(doc)?.slice(0, 40)}. ${fix}`);
  const d = doc as Record<string, unknown>;
  for (const f of ['step', 'position', 'optimizerStep']) {
    const v = d[f];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw new InputError(`${file}: field '${f}' must be a non-negative integer, found ${JSON.stringify(v) ?? 'nothing'}. ${fix}`);
    }
  }
  if (d.step !== step) throw new InputError(`${file}: field 'step' is ${d.step} but the folder is the checkpoint of step ${step}; the checkpoint is damaged. ${fix}`);
  const s = d.settings;
  if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new InputError(`${file}: field 'settings' must be an object of the run's settings, found ${JSON.stringify(s) ?? 'nothing'}. ${fix}`);
  return { step, position: d.position as number, optimizerStep: d.optimizerStep as number, settings: s as Record<string, unknown> };
}

/** Finds and validates the checkpoint `latest` names. Nothing outside `dir` is read. */
export async function readResumePoint(dir: string): Promise<ResumePoint> {
  const latestPath = join(dir, LATEST);
  const text = await readRunFile(latestPath, 'checkpoint pointer', 4096);
  const others = async (except?: string) => otherCheckpoints(dir, except);
  if (text === null) {
    throw new InputError(`--resume: ${dir} has no '${LATEST}' file, so no checkpoint to resume from (checkpoint folders here: ${await others()}); `
      + `start without --resume, or write the name of one of those folders into ${latestPath}`);
  }
  const name = text.trim();
  if (name === '') throw new InputError(`${latestPath} is empty (an interrupted write?); write the name of a checkpoint folder (here: ${await others()}) into it, or start over with --overwrite`);
  const step = checkpointStep(name);
  if (step === null) {
    throw new InputError(`${latestPath} must name a checkpoint folder ckpt-<step> inside ${dir}, found ${JSON.stringify(name.slice(0, 80))}; `
      + `checkpoints are only read from the run folder. Write the name of one (here: ${await others()}) into it`);
  }
  const path = join(dir, name);
  const fix = `Resume from another checkpoint by writing its name (here: ${await others(name)}) into ${latestPath}, or start over with --overwrite`;
  let isDir = false;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new InputError(`cannot read checkpoint ${path}: ${(err as Error).message}`);
    throw new InputError(`${latestPath} names ${name}, which does not exist in ${dir}. ${fix}`);
  }
  if (!isDir) throw new InputError(`${path} (named by ${latestPath}) is not a checkpoint folder. ${fix}`);
  const file = join(path, STATE);
  const stateText = await readRunFile(file, 'checkpoint state');
  if (stateText === null) throw new InputError(`${file} is missing, so ${name} is incomplete. ${fix}`);
  return { dir, name, path, state: parseState(stateText, file, step, fix) };
}

/** Reads a safetensors file of the checkpoint into host arrays, checking it exists, is
 *  a regular file and holds only finite values. */
async function readCheckpointFile(file: string, what: string, fix: string): Promise<{ meta: Record<string, string>; data: Map<string, { shape: number[]; data: Float32Array }> }> {
  if (!(await isRegularFile(file, what))) throw new InputError(`${file} is missing, so the checkpoint is incomplete. ${fix}`);
  const f = await SafetensorsFile.open(file);
  try {
    const data = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, info] of f.tensors) {
      const values = await f.readF32(name);
      const bad = firstNonFinite(values);
      if (bad >= 0) throw new WeightError(`${file}: '${name}' holds ${values[bad]} at index ${bad}; the checkpoint is damaged. ${fix}`);
      data.set(name, { shape: [...info.shape], data: values });
    }
    return { meta: f.metadata, data };
  } finally {
    await f.close();
  }
}

/** Restores weights, buffers and optimiser state from a validated resume point. Every
 *  check runs before the model or the optimiser changes. */
export async function restoreCheckpoint(rt: Runtime, point: ResumePoint, model: TrainableModel, opt: TrainOptimizer): Promise<void> {
  const fix = `Resume from another checkpoint by writing its name (here: ${await otherCheckpoints(point.dir, point.name)}) into ${join(point.dir, LATEST)}, or start over with --overwrite`;
  const wfile = join(point.path, WEIGHTS);
  const weights = await readCheckpointFile(wfile, 'checkpoint weights', fix);
  const params = model.params();
  const missing = [...params.keys()].filter((n) => !weights.data.has(n));
  const unexpected = [...weights.data.keys()].filter((n) => !params.has(n));
  if (missing.length || unexpected.length) {
    throw new WeightError(`${wfile}: ${missing.length} module tensors missing${missing.length ? ` (${list(missing)})` : ''} and ${unexpected.length} unexpected`
      + `${unexpected.length ? ` (${list(unexpected)})` : ''}; the checkpoint is from another model config. ${fix}`);
  }
  const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
  for (const [n, p] of params) {
    const w = weights.data.get(n);
    if (w && !sameShape(w.shape, p.shape)) throw new WeightError(`${wfile}: '${n}' is [${w.shape}], the module expects [${p.shape}]; the checkpoint is from another model config. ${fix}`);
  }

  const ofile = join(point.path, OPTIMIZER);
  const moments = await readCheckpointFile(ofile, 'optimiser state', fix);
  const metaStep = moments.meta.step;
  if (metaStep !== undefined && Number(metaStep) !== point.state.optimizerStep) {
    throw new WeightError(`${ofile} is at optimiser step ${metaStep} but ${join(point.path, STATE)} says ${point.state.optimizerStep}; the files come from different checkpoints. ${fix}`);
  }
  const tensors = new Map<string, Tensor>();
  for (const [n, m] of moments.data) tensors.set(n, Tensor.from(rt, m.data, m.shape, 'f32', n));
  try {
    opt.importState({ step: point.state.optimizerStep, tensors });
  } catch (err) {
    for (const t of tensors.values()) t.dispose();
    if (err instanceof EngineError) throw new WeightError(`${ofile}: ${err.message}. ${fix}`);
    throw err;
  }
  // Written into the live tensors, so optimisers holding them keep working.
  for (const [n, p] of params) writeParam(rt, n, p, (weights.data.get(n) as { data: Float32Array }).data);
}

function writeParam(rt: Runtime, name: string, p: Param, data: Float32Array): void {
  if (p.value) p.value.write(data);
  else p.set(Tensor.from(rt, data, p.shape, 'f32', name));
}

/** Restores weights, buffers and optimiser state from `dir`'s latest checkpoint. */
export async function loadCheckpoint(rt: Runtime, dir: string, model: TrainableModel, opt: TrainOptimizer): Promise<CheckpointState> {
  const point = await readResumePoint(dir);
  await restoreCheckpoint(rt, point, model, opt);
  return point.state;
}
