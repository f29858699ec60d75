// Training samples of the grounding module: one safetensors file per sample.
//   features.<group>.<i>  [1, C, H, W]  F16 or F32   (UNet block outputs, CFG halves concatenated)
//   text_embedding        [n, context_dim] F32       (one row per class)
//   target                [n, S, S]     U8 0/1 or F32 (one mask per class, row order = classes)
//   __metadata__: format, classes (JSON array of names), prompt
// Samples stay on the host here (io sits below models); the training loop uploads them.
// SampleFolder lists a folder of such files and gives a seeded order per epoch, so a
// resumed run sees the same sequence as an uninterrupted one.
// Every sample is checked: its header when the folder is opened (shapes, against the
// module's SampleSpec when one is given), its values when read (finite features and
// embeddings, targets in [0, 1], U8 ones exactly 0 or 1); every error names the file. Paths are stat'ed before they are opened, since opening a
// FIFO blocks until something writes to it.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, WeightError } from '../gpu/errors.js';
import { f32ToF16Array } from '../tensor/f16.js';
import { numel } from '../tensor/tensor.js';
import { SafetensorsFile, writeSafetensors, type WritableDType } from './safetensors.js';

export const SAMPLE_FORMAT = 'grounded-sd.sample/1';
export const FEATURE_GROUPS = ['low', 'mid', 'high', 'highest'] as const;
export type FeatureGroup = (typeof FEATURE_GROUPS)[number];

/** A host array with its shape (row-major). */
export interface HostArray { shape: number[]; data: Float32Array }

export interface TrainingSample {
  /** Per group, the block outputs in the module's concatenation order, each [1, C, H, W]. */
  features: Record<FeatureGroup, HostArray[]>;
  textEmbedding: HostArray;
  /** [n, S, S], 1 inside the class's mask; an all-zero mask means "class not found". */
  target: HostArray;
  classes: string[];
  prompt: string;
  /** The file it was read from (named in errors). */
  source?: string;
}

/** The shapes a module expects of its samples (a GroundingConfig has these fields). */
export interface SampleSpec {
  feature_channels: Record<FeatureGroup, number[]>;
  feature_res: Record<FeatureGroup, number>;
  out_size: number;
  context_dim: number;
}

export interface WriteSampleOptions {
  /** Storage of the features (default F16: halves the size; the UNet runs in f16 anyway). */
  featureDtype?: 'F16' | 'F32';
  /** Storage of the target (default U8; F32 keeps soft targets). */
  targetDtype?: 'U8' | 'F32';
}

type StoredTensor = { dtype: WritableDType; shape: number[]; data: ArrayBufferView };

/** Index of the first value that is NaN/Inf or outside [lo, hi], or -1. */
function firstOutside(a: Float32Array, lo = -Infinity, hi = Infinity): number {
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    if (!Number.isFinite(v) || v < lo || v > hi) return i;
  }
  return -1;
}

/** A sample's shapes, as its file header gives them before any data is read. */
interface SampleShapes {
  classes: number;
  features: Record<FeatureGroup, number[][]>;
  textEmbedding: number[];
  target: number[];
}

/** Throws InputError (prefixed by `where`, the file) unless the shapes are consistent,
 *  and with `spec` exactly the shapes that module takes. */
function checkShapes(s: SampleShapes, where: string, spec?: SampleSpec): void {
  const n = s.classes;
  const bad = (msg: string): never => { throw new InputError(`${where}: ${msg}`); };
  if (n === 0) bad('a sample needs at least one class');
  const [tn, ctx] = s.textEmbedding;
  if (s.textEmbedding.length !== 2 || tn !== n) bad(`text_embedding must be [${n}, context_dim] (one row per class), got [${s.textEmbedding}]`);
  if (s.target.length !== 3 || s.target[0] !== n || s.target[1] !== s.target[2]) bad(`target must be [${n}, S, S] (one square mask per class), got [${s.target}]`);
  if (!(ctx > 0)) bad('text_embedding has no columns');
  if (spec) {
    if (ctx !== spec.context_dim) bad(`text_embedding has ${ctx} columns, the module takes context_dim ${spec.context_dim}`);
    if (s.target[1] !== spec.out_size) bad(`target masks are ${s.target[1]}x${s.target[2]}, the module's out_size is ${spec.out_size}`);
  }
  for (const g of FEATURE_GROUPS) {
    const list = s.features[g];
    if (!list || list.length === 0) bad(`features.${g} is missing (every group needs at least one tensor)`);
    if (spec && list.length !== spec.feature_channels[g].length) bad(`features.${g} has ${list.length} tensors, the module takes ${spec.feature_channels[g].length}`);
    for (const [i, shape] of list.entries()) {
      if (shape.length !== 4 || shape[0] !== 1) bad(`features.${g}.${i} must be [1, C, H, W], got [${shape}]`);
      if (spec) {
        const R = spec.feature_res[g];
        const want = [1, spec.feature_channels[g][i], R, R];
        if (shape.some((d, k) => d !== want[k])) bad(`features.${g}.${i} is [${shape}], the module takes [${want}] (${g} features at ${R}x${R}); the sample was made for another model`);
      }
    }
  }
}

/** Throws InputError (prefixed by `where`, the file) unless `s` is a well-formed sample
 *  (with `spec`, of exactly the shapes that module takes) with finite features and
 *  embeddings and targets in [0, 1]. */
export function checkSample(s: TrainingSample, where: string, spec?: SampleSpec): void {
  const features = {} as Record<FeatureGroup, number[][]>;
  for (const g of FEATURE_GROUPS) features[g] = (s.features[g] ?? []).map((f) => f.shape);
  checkShapes({ classes: s.classes.length, features, textEmbedding: s.textEmbedding.shape, target: s.target.shape }, where, spec);
  const bad = (msg: string): never => { throw new InputError(`${where}: ${msg}`); };
  const arrays: [string, HostArray, number, number][] = [];
  for (const g of FEATURE_GROUPS) s.features[g].forEach((f, i) => arrays.push([`features.${g}.${i}`, f, -Infinity, Infinity]));
  arrays.push(['text_embedding', s.textEmbedding, -Infinity, Infinity], ['target', s.target, 0, 1]);
  for (const [name, a, lo, hi] of arrays) {
    if (a.data.length !== numel(a.shape)) bad(`${name} [${a.shape}] has ${a.data.length} values`);
    const at = firstOutside(a.data, lo, hi);
    if (at < 0) continue;
    if (name === 'target') bad(`target holds ${a.data[at]} at index ${at}; mask values must lie in [0, 1] (1 inside the class's mask)`);
    bad(`${name} holds ${a.data[at]} at index ${at}; features and embeddings must be finite (regenerate the sample)`);
  }
}

/** Writes one sample atomically (temp file + rename). */
export async function writeSample(path: string, s: TrainingSample, opts: WriteSampleOptions = {}): Promise<void> {
  checkSample(s, path);
  const tensors: Record<string, StoredTensor> = {};
  for (const g of FEATURE_GROUPS) {
    s.features[g].forEach((f, i) => {
      tensors[`features.${g}.${i}`] = opts.featureDtype === 'F32'
        ? { dtype: 'F32', shape: f.shape, data: f.data }
        : { dtype: 'F16', shape: f.shape, data: f32ToF16Array(f.data) };
    });
  }
  tensors.text_embedding = { dtype: 'F32', shape: s.textEmbedding.shape, data: s.textEmbedding.data };
  if (opts.targetDtype === 'F32') {
    tensors.target = { dtype: 'F32', shape: s.target.shape, data: s.target.data };
  } else {
    const u8 = new Uint8Array(s.target.data.length);
    for (let i = 0; i < u8.length; i++) u8[i] = s.target.data[i] > 0.5 ? 1 : 0;
    // writeSafetensors' signature lists the dtypes the weights code needs; its item-size
    // table already knows U8, so the bytes and header come out right.
    tensors.target = { dtype: 'U8', shape: s.target.shape, data: u8 };
  }
  await writeSafetensors(path, tensors, { format: SAMPLE_FORMAT, classes: JSON.stringify(s.classes), prompt: s.prompt });
}

/** Throws InputError unless `path` is a regular file (checked before opening it). */
async function checkRegularFile(path: string, what: string): Promise<void> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw new InputError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
  if (!st.isFile()) throw new InputError(`${what} ${path} is not a regular file (a folder, FIFO or device); samples must be .safetensors files`);
}

/** Opens a sample file (after checking it is a regular file) and checks its header:
 *  format, class names, and the shapes (against `spec` when given). */
async function openSample(path: string, spec?: SampleSpec): Promise<{ f: SafetensorsFile; classes: string[] }> {
  await checkRegularFile(path, 'sample');
  const f = await SafetensorsFile.open(path);
  try {
    const meta = f.metadata;
    if (meta.format !== SAMPLE_FORMAT) {
      throw new WeightError(`${path}: not a grounding training sample (metadata format is '${meta.format ?? 'missing'}', expected '${SAMPLE_FORMAT}')`);
    }
    let classes: unknown;
    try {
      classes = JSON.parse(meta.classes ?? '');
    } catch {
      classes = null;
    }
    if (!Array.isArray(classes) || !classes.every((c) => typeof c === 'string')) {
      throw new WeightError(`${path}: metadata 'classes' must be a JSON array of class names, got ${JSON.stringify(meta.classes)}`);
    }
    for (const name of ['text_embedding', 'target']) {
      if (!f.tensors.has(name)) throw new WeightError(`${path}: a sample needs a '${name}' tensor; the file has ${[...f.tensors.keys()].slice(0, 6).join(', ') || 'none'}`);
    }
    const features = {} as Record<FeatureGroup, number[][]>;
    for (const g of FEATURE_GROUPS) {
      features[g] = [];
      for (let i = 0; f.tensors.has(`features.${g}.${i}`); i++) features[g].push([...f.info(`features.${g}.${i}`).shape]);
    }
    checkShapes({ classes: classes.length, features, textEmbedding: [...f.info('text_embedding').shape], target: [...f.info('target').shape] }, path, spec);
    return { f, classes: classes as string[] };
  } catch (err) {
    await f.close();
    throw err;
  }
}

/** Reads one sample (any float storage for features, U8/F32 targets) as float32 and
 *  checks it (against `spec` when given). */
export async function readSample(path: string, spec?: SampleSpec): Promise<TrainingSample> {
  const { f, classes } = await openSample(path, spec);
  try {
    const read = async (name: string): Promise<HostArray> => ({ shape: [...f.info(name).shape], data: await f.readF32(name) });
    const features = {} as Record<FeatureGroup, HostArray[]>;
    for (const g of FEATURE_GROUPS) {
      features[g] = [];
      for (let i = 0; f.tensors.has(`features.${g}.${i}`); i++) features[g].push(await read(`features.${g}.${i}`));
    }
    const s: TrainingSample = {
      features,
      textEmbedding: await read('text_embedding'),
      target: await read('target'),
      classes,
      prompt: f.metadata.prompt ?? '',
      source: path,
    };
    if (f.info('target').dtype === 'U8') {
      const at = s.target.data.findIndex((v) => v !== 0 && v !== 1);
      if (at >= 0) throw new InputError(`${path}: U8 target holds ${s.target.data[at]} at index ${at}; U8 masks must be 0 or 1 (divide 0/255 masks by 255)`);
    }
    checkSample(s, path, spec);
    return s;
  } finally {
    await f.close();
  }
}

/** Mulberry32: a 32-bit state that is trivially saved in checkpoints. */
export class Rng {
  constructor(public state: number) {
    this.state = state >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
}

/** 0..n-1 shuffled by Fisher-Yates from a seeded generator. */
export function seededPermutation(n: number, seed: number): number[] {
  const rng = new Rng(seed);
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

/** A folder of sample files (`*.safetensors`, sorted by name), read on demand and
 *  checked against `spec` when given. */
export class SampleFolder {
  private constructor(readonly dir: string, readonly files: string[], readonly seed: number, readonly spec?: SampleSpec) {}

  static async open(dir: string, seed = 0, spec?: SampleSpec): Promise<SampleFolder> {
    let isDir: boolean;
    try {
      isDir = (await stat(dir)).isDirectory();
    } catch (err) {
      throw new InputError(`cannot open sample folder ${dir}: ${(err as Error).message}`);
    }
    if (!isDir) throw new InputError(`sample folder ${dir} is not a folder; --data takes a folder of *.safetensors samples`);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      throw new InputError(`cannot list sample folder ${dir}: ${(err as Error).message}`);
    }
    const files = names.filter((n) => n.endsWith('.safetensors')).sort();
    if (files.length === 0) throw new InputError(`${dir} holds no *.safetensors samples; write some with writeSample or train with --synthetic`);
    // Headers (a few KB each) are checked now rather than when the run reaches them: a
    // FIFO would block the read, and a sample for another model would stop the run late.
    // Values are checked as each sample is read.
    for (const n of files) await (await openSample(join(dir, n), spec)).f.close();
    return new SampleFolder(dir, files, seed, spec);
  }

  get length(): number {
    return this.files.length;
  }

  /** The file index seen at global position `k` (epoch = k / length, a fresh shuffle per epoch). */
  indexAt(k: number): number {
    const epoch = Math.floor(k / this.files.length);
    const perm = seededPermutation(this.files.length, (this.seed * 0x9e3779b1 + epoch) >>> 0);
    return perm[k % this.files.length];
  }

  async read(i: number): Promise<TrainingSample> {
    return readSample(join(this.dir, this.files[i]), this.spec);
  }

  /** The sample at global position `k` of the seeded sequence. */
  async at(k: number): Promise<TrainingSample> {
    return this.read(this.indexAt(k));
  }
}
