// Training samples of the grounding module: one safetensors file per sample.
//   features.<group>.<i>  [1, C, H, W]  F16 or F32   (UNet block outputs, CFG halves concatenated)
//   text_embedding        [n, context_dim] F32       (one row per class)
//   target                [n, S, S]     U8 0/1 or F32 (one mask per class, row order = classes)
//   __metadata__: format, classes (JSON array of names), prompt
// Samples stay on the host here (io sits below models); the training loop uploads them.
// SampleFolder lists a folder of such files and gives a seeded order per epoch, so a
// resumed run sees the same sequence as an uninterrupted one.
import { readdir } from 'node:fs/promises';
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
}

export interface WriteSampleOptions {
  /** Storage of the features (default F16: halves the size; the UNet runs in f16 anyway). */
  featureDtype?: 'F16' | 'F32';
  /** Storage of the target (default U8; F32 keeps soft targets). */
  targetDtype?: 'U8' | 'F32';
}

type StoredTensor = { dtype: WritableDType; shape: number[]; data: ArrayBufferView };

export function checkSample(s: TrainingSample, where: string): void {
  const n = s.classes.length;
  const bad = (msg: string): never => { throw new InputError(`${where}: ${msg}`); };
  if (n === 0) bad('a sample needs at least one class');
  const [tn, ctx] = s.textEmbedding.shape;
  if (s.textEmbedding.shape.length !== 2 || tn !== n) bad(`text_embedding must be [${n}, context_dim] (one row per class), got [${s.textEmbedding.shape}]`);
  if (s.target.shape.length !== 3 || s.target.shape[0] !== n || s.target.shape[1] !== s.target.shape[2]) {
    bad(`target must be [${n}, S, S] (one square mask per class), got [${s.target.shape}]`);
  }
  if (!(ctx > 0)) bad('text_embedding has no columns');
  for (const a of [s.textEmbedding, s.target]) if (a.data.length !== numel(a.shape)) bad(`array of shape [${a.shape}] has ${a.data.length} values`);
  for (const g of FEATURE_GROUPS) {
    const list = s.features[g];
    if (!list || list.length === 0) bad(`features.${g} is missing (every group needs at least one tensor)`);
    for (const [i, f] of list.entries()) {
      if (f.shape.length !== 4 || f.shape[0] !== 1) bad(`features.${g}.${i} must be [1, C, H, W], got [${f.shape}]`);
      if (f.data.length !== numel(f.shape)) bad(`features.${g}.${i} [${f.shape}] has ${f.data.length} values`);
    }
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

/** Reads one sample (any float storage for features, U8/F32 targets) as float32. */
export async function readSample(path: string): Promise<TrainingSample> {
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
      classes: classes as string[],
      prompt: meta.prompt ?? '',
    };
    checkSample(s, path);
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

/** A folder of sample files (`*.safetensors`, sorted by name), read on demand. */
export class SampleFolder {
  private constructor(readonly dir: string, readonly files: string[], readonly seed: number) {}

  static async open(dir: string, seed = 0): Promise<SampleFolder> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      throw new InputError(`cannot list sample folder ${dir}: ${(err as Error).message}`);
    }
    const files = names.filter((n) => n.endsWith('.safetensors')).sort();
    if (files.length === 0) throw new InputError(`${dir} holds no *.safetensors samples; write some with writeSample or train with --synthetic`);
    return new SampleFolder(dir, files, seed);
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
    return readSample(join(this.dir, this.files[i]));
  }

  /** The sample at global position `k` of the seeded sequence. */
  async at(k: number): Promise<TrainingSample> {
    return this.read(this.indexAt(k));
  }
}
