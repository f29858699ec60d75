// Parity for the torch_pickle fixtures (torch.save files made by PyTorch): for every
// manifest case, each listed tensor's dtype, sizes, strides, storage offset and
// contiguity, its values (all of them exactly, or head exactly plus sum and L2), each
// plain leaf with its Python type, the counts of both (nothing missing, nothing extra),
// and for `kind: refuse` files a refusal with the reader's own error naming the file,
// and the offending global when the case note names one ("references os.system"). A
// note naming another fixture's weights ("equals the fixture grounding/B_small
// weights.safetensors") adds a tensor-for-tensor comparison with that file.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { WeightError } from '../../gpu/errors.js';
import { SafetensorsFile } from '../../io/safetensors.js';
import { LazyTensor, leaves, loadCheckpoint, readTorchFile, type TorchFile } from '../../io/torch_pickle.js';
import type { ParityCheck, ParityHandler } from './types.js';

interface TensorCase {
  path: string; dtype: string; shape: number[]; stride: number[]; storage_offset: number; contiguous: boolean;
  values?: number[]; head?: number[]; sum?: number; l2?: number;
}
interface PlainCase { path: string; type: string; value: unknown }
interface Case { file: string; format: string; kind: string; note?: string; tensors?: TensorCase[]; plain?: PlainCase[] }

const DTYPES = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'uint16', 'uint32', 'uint64', 'bool', 'complex64', 'complex128'];
/** Sums of the same float64 values in another order differ in the last bits. */
const SUM_TOL = 1e-12;

const flag = (ok: boolean, name: string): ParityCheck => ({ name, actual: [ok ? 1 : 0], expected: [1], metric: 'exact', tol: 0 });

/** Python's type name of a rebuilt leaf (pickle.ts maps int -> bigint, float -> number). */
export function pyType(v: unknown): string {
  if (v === null) return 'NoneType';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'number') return 'float';
  if (typeof v === 'string') return 'str';
  if (typeof v === 'boolean') return 'bool';
  if (v instanceof Uint8Array) return 'bytes';
  return typeof v === 'object' ? String(v) : typeof v;
}

/** A plain leaf equal to the manifest's JSON value, type included. */
export function plainMatches(v: unknown, c: PlainCase): boolean {
  if (pyType(v) !== c.type) return false;
  if (c.type === 'int') return typeof c.value === 'number' && v === BigInt(c.value);
  if (c.type === 'NoneType') return c.value === null;
  return v === c.value;
}

function layout(t: { dtype: string; shape: readonly number[]; stride: readonly number[]; storageOffset: number; contiguous: boolean }): number[] {
  return [DTYPES.indexOf(t.dtype), t.shape.length, ...t.shape, ...t.stride, t.storageOffset, t.contiguous ? 1 : 0];
}

async function tensorChecks(file: string, tree: Map<string, unknown>, c: TensorCase): Promise<ParityCheck[]> {
  const name = `${file}:${c.path}`;
  const expectedLayout = layout({ dtype: c.dtype, shape: c.shape, stride: c.stride, storageOffset: c.storage_offset, contiguous: c.contiguous });
  const t = tree.get(c.path);
  if (!(t instanceof LazyTensor)) {
    return [{ name: `${name} (${t === undefined ? 'missing' : `not a tensor: ${String(t)}`})`, actual: [], expected: expectedLayout, metric: 'exact', tol: 0 }];
  }
  const out: ParityCheck[] = [];
  const seen = t.dtype === c.dtype ? '' : `, read ${t.dtype}`;
  out.push({ name: `${name} ${c.dtype}[${c.shape.join(',')}] layout${seen}`, actual: layout(t), expected: expectedLayout, metric: 'exact', tol: 0 });
  const values = await t.readF64();
  if (c.values) {
    out.push({ name: `${name} values`, actual: values, expected: c.values, metric: 'exact', tol: 0 });
  } else if (c.head) {
    out.push({ name: `${name} head`, actual: values.subarray(0, c.head.length), expected: c.head, metric: 'exact', tol: 0 });
    let sum = 0;
    let sq = 0;
    for (const v of values) {
      sum += v;
      sq += v * v;
    }
    if (c.sum !== undefined) out.push({ name: `${name} sum`, actual: [sum], expected: [c.sum], metric: 'rel_max', tol: SUM_TOL });
    if (c.l2 !== undefined) out.push({ name: `${name} l2`, actual: [Math.sqrt(sq)], expected: [c.l2], metric: 'rel_max', tol: SUM_TOL });
  }
  return out;
}

/** A refusal passes only as a WeightError naming the file (and the global, when named). */
async function refusal(dir: string, c: Case): Promise<ParityCheck> {
  const path = join(dir, c.file);
  const global = /references\s+([A-Za-z_][\w.]*[A-Za-z_0-9])/.exec(c.note ?? '')?.[1];
  let file: TorchFile | null = null;
  try {
    file = await readTorchFile(path);
    // Truncation inside a storage only shows when its bytes are read.
    for (const [, v] of leaves(file.root)) if (v instanceof LazyTensor) await v.readBytes();
    return flag(false, `${c.file} refused (it was read without an error)`);
  } catch (err) {
    const msg = (err as Error).message;
    const ok = err instanceof WeightError && msg.includes(path) && (!global || msg.includes(global));
    const why = ok ? '' : ` (${err instanceof WeightError ? '' : `${(err as Error).name}: `}${msg.slice(0, 160)})`;
    return flag(ok, `${c.file} refused${global ? ` naming ${global}` : ''}${why}`);
  } finally {
    await file?.close();
  }
}

/** The sibling fixture folder a case note says the file equals ("grounding/B_small"), or null. */
export function equalsFixture(note: string | undefined): string | null {
  return /(\S+\/\S+)\s+weights\.safetensors/.exec(note ?? '')?.[1] ?? null;
}

/** How many tensors of `path` equal (names, shapes, float32 values) those of the fixture
 *  weights file, against how many the fixture holds. */
async function sameTensors(path: string, weights: string): Promise<{ same: number; total: number }> {
  const ckpt = await loadCheckpoint(path);
  const ref = await SafetensorsFile.open(weights);
  try {
    let same = 0;
    const names = new Set(ckpt.names());
    for (const name of ref.tensors.keys()) {
      if (!names.has(name) || ckpt.shape(name).join(',') !== ref.info(name).shape.join(',')) continue;
      const a = await ckpt.readF32(name);
      const b = await ref.readF32(name);
      if (Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))) same++;
    }
    // Extra tensors in the checkpoint count against it.
    return { same: same - Math.max(0, names.size - ref.tensors.size), total: ref.tensors.size };
  } finally {
    await ckpt.close();
    await ref.close();
  }
}

export const handler: ParityHandler = {
  async run(dir, manifest, log) {
    const cases = manifest.cases as Case[] | undefined;
    if (!Array.isArray(cases) || cases.length === 0) throw new WeightError(`${join(dir, 'manifest.json')} has no 'cases'`);
    const checks: ParityCheck[] = [];
    for (const c of cases) {
      log(`torch_pickle: ${c.file} (${c.format}, ${c.kind})`);
      if (c.kind === 'refuse') {
        checks.push(await refusal(dir, c));
        continue;
      }
      let file: TorchFile;
      try {
        file = await readTorchFile(join(dir, c.file));
      } catch (err) {
        checks.push(flag(false, `${c.file} opens (${(err as Error).message.slice(0, 160)})`));
        continue;
      }
      try {
        const tree = new Map(leaves(file.root));
        checks.push(flag(file.format === c.format, `${c.file} format ${c.format}${file.format === c.format ? '' : ` (read ${file.format})`}`));
        const tensors = c.tensors ?? [];
        const plain = c.plain ?? [];
        const nTensors = [...tree.values()].filter((v) => v instanceof LazyTensor).length;
        checks.push({ name: `${c.file} tensor count`, actual: [nTensors], expected: [tensors.length], metric: 'exact', tol: 0 });
        checks.push({ name: `${c.file} plain value count`, actual: [tree.size - nTensors], expected: [plain.length], metric: 'exact', tol: 0 });
        for (const t of tensors) checks.push(...(await tensorChecks(c.file, tree, t)));
        for (const p of plain) {
          const v = tree.get(p.path);
          const ok = plainMatches(v, p);
          checks.push(flag(ok, `${c.file}:${p.path} == ${p.type} ${JSON.stringify(p.value)}${ok ? '' : ` (read ${pyType(v)} ${String(v)})`}`));
        }
        const other = equalsFixture(c.note);
        if (other) {
          const weights = join(dir, '..', other, 'weights.safetensors');
          const name = `${c.file} equals ${other}/weights.safetensors (tensors equal)`;
          if (!existsSync(weights)) checks.push(flag(false, `${name}: ${weights} is missing`));
          else {
            const { same, total } = await sameTensors(join(dir, c.file), weights);
            checks.push({ name, actual: [same], expected: [total], metric: 'exact', tol: 0 });
          }
        }
      } finally {
        await file.close();
      }
    }
    return checks;
  },
};
