// torch.save reading: every golden fixture file against its manifest (tensors with their
// geometry and values, plain leaves with their Python types, nothing extra), the refusals
// (a global outside the allowlist, named; a truncated file, named), segmodule.pth equal
// to the grounding safetensors fixture, and archives built here by an independent minimal
// writer (stored, deflated and ZIP64 zips; a legacy stream) holding views with non-zero
// storage offsets and non-contiguous strides, plus corrupt variants. Then the tensor
// source: Lightning state_dict names, bf16/f16 widening, GPU loads, and SD single-file
// loading of a .ckpt through sd_weights.ts.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError, WeightError } from '../../src/gpu/errors.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { openSdWeights } from '../../src/io/sd_weights.js';
import { LazyTensor, TorchPickleError, leaves, loadCheckpoint, readTorchFile } from '../../src/io/torch_pickle.js';
import { equalsFixture, handler } from '../../src/pipeline/parity/torch_pickle.js';
import { evaluate } from '../../src/pipeline/parity/types.js';
import { goldenDir, rng, runtime } from '../helpers.js';

const dir = goldenDir('torch_pickle');
const tmp = mkdtempSync(join(tmpdir(), 'gsd-torch-pickle-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface TCase { path: string; dtype: string; shape: number[]; stride: number[]; storage_offset: number; contiguous: boolean; values?: number[]; head?: number[]; sum?: number; l2?: number }
interface Case { file: string; format: string; kind: string; note: string; tensors?: TCase[]; plain?: { path: string; type: string; value: unknown }[] }
const manifest = (): { cases: Case[] } => JSON.parse(readFileSync(join(dir ?? '', 'manifest.json'), 'utf8'));
/** Cases as it.each rows; without fixtures one placeholder row, so the skip is visible. */
const rows = (refuse: boolean): (readonly [string, Case])[] =>
  dir ? manifest().cases.filter((c) => (c.kind === 'refuse') === refuse).map((c) => [c.file, c] as const) : [['(fixtures missing)', {} as Case]];
const readable = () => (dir ? manifest().cases.filter((c) => c.kind !== 'refuse') : []);

async function rejection(p: Promise<unknown>): Promise<Error> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err, 'expected the call to fail').toBeInstanceOf(Error);
  return err as Error;
}

describe('torch_pickle: golden fixture files', () => {
  it.skipIf(!dir).each(rows(false))('%s reads back as the manifest lists it', async (_f, c) => {
    const file = await readTorchFile(join(dir ?? '', c.file));
    try {
      expect(file.format).toBe(c.format);
      const tree = new Map(leaves(file.root));
      const tensors = c.tensors ?? [];
      const plain = c.plain ?? [];
      expect([...tree.values()].filter((v) => v instanceof LazyTensor).length, 'tensor count').toBe(tensors.length);
      expect(tree.size - tensors.length, 'plain leaf count').toBe(plain.length);
      for (const t of tensors) {
        const v = tree.get(t.path);
        expect(v, t.path).toBeInstanceOf(LazyTensor);
        const lt = v as LazyTensor;
        expect({ dtype: lt.dtype, shape: lt.shape, stride: lt.stride, offset: lt.storageOffset, contiguous: lt.contiguous }, t.path)
          .toEqual({ dtype: t.dtype, shape: t.shape, stride: t.stride, offset: t.storage_offset, contiguous: t.contiguous });
        const values = Array.from(await lt.readF64());
        if (t.values) {
          expect(values, t.path).toEqual(t.values);
        } else {
          expect(values.slice(0, (t.head ?? []).length), `${t.path} head`).toEqual(t.head);
          const sum = values.reduce((a, b) => a + b, 0);
          const l2 = Math.sqrt(values.reduce((a, b) => a + b * b, 0));
          expect(Math.abs(sum - (t.sum ?? NaN)), `${t.path} sum`).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(t.sum ?? 0)));
          expect(Math.abs(l2 - (t.l2 ?? NaN)), `${t.path} l2`).toBeLessThanOrEqual(1e-12 * (t.l2 ?? 0));
        }
      }
      for (const p of plain) {
        const v = tree.get(p.path);
        const js = { int: 'bigint', float: 'number', str: 'string', bool: 'boolean', NoneType: 'object' }[p.type];
        expect(typeof v, `${p.path} is a Python ${p.type}`).toBe(js);
        expect(p.type === 'int' ? Number(v) : v, p.path).toEqual(p.value);
      }
    } finally {
      await file.close();
    }
  });

  it.skipIf(!dir).each(rows(true))('%s is refused with an error naming the file', async (_f, c) => {
    const path = join(dir ?? '', c.file);
    const err = await rejection(readTorchFile(path));
    expect(err).toBeInstanceOf(WeightError);
    expect(err.message).toContain(path);
    const global = /references\s+([A-Za-z_][\w.]*[A-Za-z_0-9])/.exec(c.note)?.[1];
    if (global) {
      expect(err).toBeInstanceOf(TorchPickleError);
      expect(err.message).toMatch(/refusing global \S+/);
      expect(err.message).toContain(global);
    }
    // The source form must fail the same way (nothing half-loaded).
    expect(await rejection(loadCheckpoint(path))).toBeInstanceOf(WeightError);
  });

  it.skipIf(!dir)('the parity handler passes every check it builds from the manifest', async () => {
    const rows = (await handler.run(dir ?? '', manifest() as unknown as Record<string, unknown>, () => {})).map(evaluate);
    const bad = rows.filter((r) => !r.pass).map((r) => `${r.name} ${r.error ?? ''}`);
    expect(bad, bad.join('\n')).toEqual([]);
    // Layout + values per tensor, one row per plain value and per refusal, at least.
    const c = manifest().cases;
    expect(rows.length).toBeGreaterThan(c.reduce((s, x) => s + 2 * (x.tensors ?? []).length + (x.plain ?? []).length, 0));
  });

  // A case note may say the file equals another fixture's weights ("equals the fixture
  // grounding/B_small weights.safetensors"): compare them tensor for tensor.
  const twins = dir ? manifest().cases.flatMap((c) => {
    const other = equalsFixture(c.note);
    return other ? [[c.file, other] as const] : [];
  }) : [];
  it.skipIf(!dir || twins.length === 0).each(twins.length ? twins : [['(none)', '']] as const)('%s holds the tensors of %s/weights.safetensors', async (file, other) => {
    const ckpt = await loadCheckpoint(join(dir ?? '', file));
    const st = await SafetensorsFile.open(join(dir ?? '', '..', other, 'weights.safetensors'));
    try {
      expect(ckpt.names().sort()).toEqual([...st.tensors.keys()].sort());
      for (const name of ckpt.names()) {
        expect(ckpt.shape(name), name).toEqual(st.info(name).shape);
        expect(Buffer.from((await ckpt.readF32(name)).buffer).equals(Buffer.from((await st.readF32(name)).buffer)), name).toBe(true);
      }
    } finally {
      await ckpt.close();
      await st.close();
    }
  });
});

// ---- An independent minimal writer: pickle opcodes and ZIP records by hand. ----

const enc = new TextEncoder();
const u16 = (n: number) => [n & 0xff, (n >>> 8) & 0xff];
const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
const u64 = (n: number) => [...u32(n % 2 ** 32), ...u32(Math.floor(n / 2 ** 32))];
const str = (s: string) => [0x58, ...u32(enc.encode(s).length), ...enc.encode(s)];
const int = (n: number) => (n < 256 ? [0x4b, n] : [0x4a, ...u32(n)]);
const tup = (items: number[][]) => [0x28, ...items.flat(), 0x74];
const glob = (m: string, n: string) => [0x63, ...enc.encode(`${m}\n${n}\n`)];

interface TensorSpec { key: string; storage: string; numel: number; offset: number; size: number[]; stride: number[] }

/** _rebuild_tensor_v2((storage pid), offset, size, stride, False, OrderedDict()) as torch writes it. */
function tensorPickle(t: TensorSpec, pidFields: number[][]): number[] {
  return [
    ...glob('torch._utils', '_rebuild_tensor_v2'),
    0x28, ...tup([str('storage'), glob('torch', t.storage), str(t.key), str('cpu'), int(t.numel), ...pidFields]), 0x51,
    ...int(t.offset), ...tup(t.size.map(int)), ...tup(t.stride.map(int)), 0x89,
    ...glob('collections', 'OrderedDict'), 0x29, 0x52, 0x74, 0x52,
  ];
}

/** A protocol-2 pickle of {name: tensor, ...} plus extra raw (key, value) opcode pairs. */
function dictPickle(tensors: Record<string, TensorSpec>, pidFields: number[][] = [], extra: number[][] = []): Uint8Array {
  const items = Object.entries(tensors).flatMap(([name, t]) => [...str(name), ...tensorPickle(t, pidFields)]);
  return Uint8Array.from([0x80, 2, 0x7d, 0x28, ...items, ...extra.flat(), 0x75, 0x2e]);
}

function crcRef(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** A ZIP archive: stored or deflated members, optionally with ZIP64 records throughout. */
function zipArchive(members: [string, Uint8Array][], opts: { deflate?: boolean; zip64?: boolean } = {}): Uint8Array {
  const parts: number[] = [];
  const central: number[] = [];
  for (const [name, data] of members) {
    const body = opts.deflate ? new Uint8Array(deflateRawSync(data)) : data;
    const method = opts.deflate ? 8 : 0;
    const nameBytes = [...enc.encode(name)];
    const offset = parts.length;
    parts.push(...u32(0x04034b50), ...u16(45), ...u16(0), ...u16(method), ...u32(0), ...u32(crcRef(data)), ...u32(body.length), ...u32(data.length),
      ...u16(nameBytes.length), ...u16(0), ...nameBytes, ...body);
    const big = opts.zip64 ? 0xffffffff : -1;
    const extra = opts.zip64 ? [...u16(1), ...u16(24), ...u64(data.length), ...u64(body.length), ...u64(offset)] : [];
    central.push(...u32(0x02014b50), ...u16(45), ...u16(45), ...u16(0), ...u16(method), ...u32(0), ...u32(crcRef(data)),
      ...u32(big >= 0 ? big : body.length), ...u32(big >= 0 ? big : data.length), ...u16(nameBytes.length), ...u16(extra.length),
      ...u16(0), ...u16(0), ...u16(0), ...u32(0), ...u32(big >= 0 ? big : offset), ...nameBytes, ...extra);
  }
  const cdOffset = parts.length;
  parts.push(...central);
  if (opts.zip64) {
    const rec = parts.length;
    parts.push(...u32(0x06064b50), ...u64(44), ...u16(45), ...u16(45), ...u32(0), ...u32(0), ...u64(members.length), ...u64(members.length),
      ...u64(central.length), ...u64(cdOffset));
    parts.push(...u32(0x07064b50), ...u32(0), ...u64(rec), ...u32(1));
    parts.push(...u32(0x06054b50), ...u16(0), ...u16(0), ...u16(0xffff), ...u16(0xffff), ...u32(0xffffffff), ...u32(0xffffffff), ...u16(0));
  } else {
    parts.push(...u32(0x06054b50), ...u16(0), ...u16(0), ...u16(members.length), ...u16(members.length), ...u32(central.length), ...u32(cdOffset), ...u16(0));
  }
  return Uint8Array.from(parts);
}

const f32Bytes = (a: Float32Array) => new Uint8Array(a.buffer.slice(0));

/** Row-major values of a strided view over `storage`, computed directly. */
function viewValues(storage: Float32Array, offset: number, size: number[], stride: number[]): number[] {
  const out: number[] = [];
  const rec = (d: number, at: number) => {
    if (d === size.length) return void out.push(storage[at]);
    for (let i = 0; i < size[d]; i++) rec(d + 1, at + i * stride[d]);
  };
  rec(0, offset);
  return out;
}

function seeded(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * 4 - 2);
}

describe('torch_pickle: hand-built archives', () => {
  const storage = seeded(40, 7);
  const views: Record<string, TensorSpec> = {
    // A [3, 4] slice at offset 5 with row stride 7: non-zero offset, non-contiguous.
    sliced: { key: '0', storage: 'FloatStorage', numel: 40, offset: 5, size: [3, 4], stride: [7, 1] },
    // The transpose of a [4, 5] block at offset 2: strides (1, 5).
    transposed: { key: '0', storage: 'FloatStorage', numel: 40, offset: 2, size: [5, 4], stride: [1, 5] },
    // Every third element from 1 (a 1-d strided view) and a contiguous tail.
    stepped: { key: '0', storage: 'FloatStorage', numel: 40, offset: 1, size: [13], stride: [3] },
    tail: { key: '0', storage: 'FloatStorage', numel: 40, offset: 30, size: [2, 5], stride: [5, 1] },
  };

  const check = async (path: string) => {
    const file = await readTorchFile(path);
    try {
      const tree = new Map(leaves(file.root));
      expect([...tree.keys()].sort()).toEqual(Object.keys(views).sort());
      for (const [name, v] of Object.entries(views)) {
        const t = tree.get(name) as LazyTensor;
        expect({ shape: t.shape, stride: t.stride, offset: t.storageOffset }).toEqual({ shape: v.size, stride: v.stride, offset: v.offset });
        expect(Array.from(await t.readF32()), name).toEqual(viewValues(storage, v.offset, v.size, v.stride));
      }
    } finally {
      await file.close();
    }
  };
  const members = (pkl: Uint8Array): [string, Uint8Array][] => [['arch/data.pkl', pkl], ['arch/data/0', f32Bytes(storage)], ['arch/version', enc.encode('3\n')]];

  it('reads views (offset, strides) from stored, deflated and ZIP64 archives', async () => {
    for (const [label, opts] of [['stored', {}], ['deflate', { deflate: true }], ['zip64', { zip64: true }]] as const) {
      const path = join(tmp, `views-${label}.pth`);
      writeFileSync(path, zipArchive(members(dictPickle(views)), opts));
      await check(path);
    }
  });

  it('reads a legacy stream with storages in key order and refuses it truncated', async () => {
    const a = seeded(6, 11);
    const b = new Float64Array([1.5, -2.25, 3.125]);
    const tensors: Record<string, TensorSpec> = {
      a: { key: 'k1', storage: 'FloatStorage', numel: 6, offset: 1, size: [2, 2], stride: [1, 2] },
      b: { key: 'k0', storage: 'DoubleStorage', numel: 3, offset: 0, size: [3], stride: [1] },
    };
    const magic = [0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e];
    const proto = [0x80, 2, 0x4d, ...u16(1001), 0x2e];
    const sys = [0x80, 2, 0x7d, 0x28, ...str('little_endian'), 0x88, 0x75, 0x2e];
    const main = dictPickle(tensors, [[0x4e]]);
    const keys = [0x80, 2, 0x5d, 0x28, ...str('k0'), ...str('k1'), 0x65, 0x2e];
    const bBytes = new Uint8Array(b.buffer);
    const aBytes = f32Bytes(a);
    const bytes = Uint8Array.from([...magic, ...proto, ...sys, ...main, ...keys, ...u64(3), ...bBytes, ...u64(6), ...aBytes]);
    const path = join(tmp, 'legacy.pt');
    writeFileSync(path, bytes);
    const file = await readTorchFile(path);
    const tree = new Map(leaves(file.root));
    expect(file.format).toBe('legacy');
    expect(Array.from(await (tree.get('a') as LazyTensor).readF32())).toEqual(viewValues(a, 1, [2, 2], [1, 2]));
    expect(Array.from(await (tree.get('b') as LazyTensor).readF64())).toEqual(Array.from(b));
    await file.close();
    const cut = join(tmp, 'legacy-cut.pt');
    writeFileSync(cut, bytes.subarray(0, bytes.length - 5));
    const err = await rejection(readTorchFile(cut));
    expect(err).toBeInstanceOf(WeightError);
    expect(err.message).toContain(cut);
    expect(err.message).toMatch(/truncated/);
  });

  it('rebuilds parameters, Size, protocol-2 bytes, OrderedDict metadata, Lightning callback keys and numpy scalars', async () => {
    const t: TensorSpec = { key: '0', storage: 'FloatStorage', numel: 40, offset: 4, size: [2, 3], stride: [3, 1] };
    const latin1 = (b: number[]) => [...glob('_codecs', 'encode'), 0x28, ...str(String.fromCharCode(...b)), ...str('latin1'), 0x74, 0x52];
    const f8 = [...new Uint8Array(new Float64Array([0.1875]).buffer)];
    const numpyDType = [...glob('numpy', 'dtype'), 0x28, ...str('f8'), 0x89, 0x88, 0x74, 0x52,
      0x28, ...int(3), ...str('<'), 0x4e, 0x4e, 0x4e, 0x4a, ...u32(0xffffffff), 0x4a, ...u32(0xffffffff), ...int(0), 0x74, 0x62];
    const ordered = [...glob('collections', 'OrderedDict'), 0x29, 0x52];
    const extra = [
      // {'param': _rebuild_parameter(<tensor>, True, OrderedDict())}
      [...str('param'), ...glob('torch._utils', '_rebuild_parameter'), 0x28, ...tensorPickle(t, []), 0x88, ...ordered, 0x74, 0x52],
      // _rebuild_from_type_v2(_rebuild_tensor_v2, torch.Tensor, (args), {})
      [...str('typed'), ...glob('torch._tensor', '_rebuild_from_type_v2'), 0x28, ...glob('torch._utils', '_rebuild_tensor_v2'), ...glob('torch', 'Tensor'),
        0x28, 0x28, ...str('storage'), ...glob('torch', 'FloatStorage'), ...str('0'), ...str('cpu'), ...int(40), 0x74, 0x51, ...int(4), ...tup([int(2), int(3)]), ...tup([int(3), int(1)]), 0x89, ...ordered, 0x74,
        0x7d, 0x74, 0x52],
      [...str('size'), ...glob('torch', 'Size'), 0x28, ...tup([int(2), int(300)]), 0x74, 0x52],
      [...str('blob'), ...latin1([0, 200, 255])],
      // An OrderedDict with BUILD state {'_metadata': {...}}, as module.state_dict() pickles.
      [...str('sub'), ...ordered, 0x28, ...str('w'), ...int(5), 0x75, 0x7d, ...str('_metadata'), ...ordered, 0x73, 0x62],
      [...str('callbacks'), 0x7d, ...glob('pytorch_lightning.callbacks.model_checkpoint', 'ModelCheckpoint'), 0x7d, ...str('best_model_score'),
        ...glob('numpy.core.multiarray', 'scalar'), 0x28, ...numpyDType, ...latin1(f8), 0x74, 0x52, 0x73, 0x73],
    ];
    const path = join(tmp, 'shapes.pth');
    writeFileSync(path, zipArchive(members(dictPickle({}, [], extra))));
    const file = await readTorchFile(path);
    try {
      const tree = new Map(leaves(file.root));
      const expected = viewValues(storage, 4, [2, 3], [3, 1]);
      for (const name of ['param', 'typed']) {
        const x = tree.get(name) as LazyTensor;
        expect(x, name).toBeInstanceOf(LazyTensor);
        expect(Array.from(await x.readF32()), name).toEqual(expected);
      }
      expect((tree.get('param') as LazyTensor).requiresGrad).toBe(true);
      expect([tree.get('size.0'), tree.get('size.1')]).toEqual([2n, 300n]);
      expect(Array.from(tree.get('blob') as Uint8Array)).toEqual([0, 200, 255]);
      expect(tree.get('sub.w')).toBe(5n);
      expect(tree.get('callbacks.pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint.best_model_score')).toBe(0.1875);
    } finally {
      await file.close();
    }
  });

  it('refuses globals outside the allowlist by name, however they are spelled', async () => {
    const cases: [string, number[]][] = [
      ['os.system', [0x80, 4, 0x8c, 2, ...enc.encode('os'), 0x8c, 6, ...enc.encode('system'), 0x93, 0x8c, 4, ...enc.encode('echo'), 0x85, 0x52, 0x2e]],
      ['subprocess.Popen', [0x80, 2, 0x28, 0x8c, 2, ...enc.encode('ls'), 0x69, ...enc.encode('subprocess\nPopen\n'), 0x2e]],
      ['builtins.eval', [0x80, 2, 0x7d, ...str('x'), ...glob('builtins', 'eval'), 0x73, 0x2e]],
      ['torch.load', [0x80, 2, ...glob('torch', 'load'), 0x29, 0x52, 0x2e]],
    ];
    for (const [name, pkl] of cases) {
      const path = join(tmp, `bad-${name}.pth`);
      writeFileSync(path, zipArchive([['arch/data.pkl', Uint8Array.from(pkl)]]));
      const err = await rejection(readTorchFile(path));
      expect(err, name).toBeInstanceOf(TorchPickleError);
      expect(err.message).toContain(`refusing global ${name}`);
      expect(err.message).toContain(path);
    }
  });

  it('names corrupt inputs: CRC, missing or short storage, view past its storage, no data.pkl, not a checkpoint, a FIFO or folder', async () => {
    const bad = async (label: string, bytes: Uint8Array, pattern: RegExp) => {
      const path = join(tmp, `corrupt-${label}.pth`);
      writeFileSync(path, bytes);
      const err = await rejection(readTorchFile(path));
      expect(err, label).toBeInstanceOf(WeightError);
      expect(err.message, label).toContain(path);
      expect(err.message, label).toMatch(pattern);
    };
    const good = zipArchive(members(dictPickle(views)));
    const flipped = good.slice();
    flipped[30 + 'arch/data.pkl'.length + 20] ^= 0xff; // a byte of data.pkl (after its local header and name)
    await bad('crc', flipped, /CRC-32|pickle|opcode/);
    await bad('missing', zipArchive([['arch/data.pkl', dictPickle(views)]]), /no member arch\/data\/0/);
    await bad('short', zipArchive([['arch/data.pkl', dictPickle(views)], ['arch/data/0', f32Bytes(storage).subarray(0, 100)]]), /needs 40 x 4/);
    const past = { x: { key: '0', storage: 'FloatStorage', numel: 40, offset: 30, size: [3, 5], stride: [5, 1] } };
    await bad('past', zipArchive(members(dictPickle(past))), /reaches element 44/);
    await bad('nopkl', zipArchive([['arch/other.txt', enc.encode('hi')]]), /data\.pkl/);
    await bad('text', enc.encode('not a checkpoint at all'), /not a torch\.save file/);
    // A FIFO would block the open forever: refused after a stat, like a folder.
    const fifo = join(tmp, 'pipe.pth');
    execFileSync('mkfifo', [fifo]);
    for (const path of [fifo, tmp]) {
      const err = await rejection(readTorchFile(path));
      expect(err).toBeInstanceOf(WeightError);
      expect(err.message).toMatch(/is not a regular file/);
    }
  });
});

describe('torch_pickle: checkpoint source', () => {
  it.skipIf(!dir)("serves a Lightning checkpoint's state_dict by name, widening f16/bf16 exactly, and loads to the GPU", async () => {
    const cases = manifest().cases;
    const lightning = cases.find((c) => c.file === 'lightning.ckpt');
    const sd = cases.find((c) => c.file === 'state_dict.pth');
    if (!lightning || !sd) return;
    const ckpt = await loadCheckpoint(join(dir ?? '', lightning.file));
    const rt = await runtime();
    try {
      const expected = (lightning.tensors ?? []).map((t) => t.path.replace(/^state_dict\./, ''));
      expect(ckpt.names().sort()).toEqual(expected.sort());
      for (const t of lightning.tensors ?? []) {
        const name = t.path.replace(/^state_dict\./, '');
        expect(ckpt.info(name)).toEqual({ name, dtype: t.dtype, shape: t.shape });
        if (!['float32', 'float16', 'bfloat16'].includes(t.dtype) || !t.values) continue;
        expect(Array.from(await ckpt.readF32(name)), name).toEqual(t.values);
        for (const dtype of ['f32', 'f16'] as const) {
          const g = await ckpt.load(rt, name, dtype);
          const back = Array.from(await g.toArray());
          g.dispose();
          // f16 holds these values exactly when they came from f16; f32 ones round once.
          const round = dtype === 'f16' && t.dtype !== 'float16';
          const ref = t.values as number[];
          back.forEach((x, i) => expect(Math.abs(x - ref[i]), `${name} ${dtype} [${i}]`).toBeLessThanOrEqual(round ? 2 ** -11 * Math.abs(ref[i]) + 2 ** -25 : 0));
        }
      }
      const ids = (lightning.tensors ?? []).find((t) => t.dtype === 'int64');
      if (ids) await expect(ckpt.load(rt, ids.path.replace(/^state_dict\./, ''), 'f32')).rejects.toThrow(/int64; only float32/);
    } finally {
      await ckpt.close();
    }
    const plain = await loadCheckpoint(join(dir ?? '', sd.file));
    try {
      for (const t of (sd.tensors ?? []).filter((x) => x.dtype === 'bfloat16' || x.dtype === 'float16')) {
        expect(Array.from(await plain.readF32(t.path)), t.path).toEqual(t.values);
      }
    } finally {
      await plain.close();
    }
  });

  it('opens an LDM single-file .ckpt through sd_weights like a safetensors file', async () => {
    const rt = await runtime();
    const w = seeded(8 * 4 * 3 * 3, 3);
    const v = seeded(16 * 4 * 3 * 3, 4);
    const n = seeded(32, 5);
    const store = (key: string, size: number[]): TensorSpec => ({ key, storage: 'FloatStorage', numel: size.reduce((a, b) => a * b, 1), offset: 0, size, stride: size.map((_, i) => size.slice(i + 1).reduce((a, b) => a * b, 1)) });
    const sdTensors = {
      'model.diffusion_model.input_blocks.0.0.weight': store('0', [8, 4, 3, 3]),
      'first_stage_model.decoder.conv_in.weight': store('1', [16, 4, 3, 3]),
      'cond_stage_model.transformer.text_model.final_layer_norm.weight': store('2', [32]),
    };
    const inner = dictPickle(sdTensors).subarray(2, -1); // the dict without PROTO and STOP
    const pkl = Uint8Array.from([0x80, 2, 0x7d, 0x28, ...str('state_dict'), ...inner, ...str('epoch'), ...int(3), 0x75, 0x2e]);
    const path = join(tmp, 'sd-ldm.ckpt');
    writeFileSync(path, zipArchive([['sd/data.pkl', pkl], ['sd/data/0', f32Bytes(w)], ['sd/data/1', f32Bytes(v)], ['sd/data/2', f32Bytes(n)]]));
    const weights = await openSdWeights(path);
    try {
      expect(weights.kind).toBe('single-file');
      expect(weights.sources.unet.names()).toEqual(['conv_in.weight']);
      expect(weights.sources.vae.names()).toEqual(['decoder.conv_in.weight']);
      expect(weights.sources.text_encoder.names()).toEqual(['text_model.final_layer_norm.weight']);
      for (const [src, name, ref] of [[weights.sources.unet, 'conv_in.weight', w], [weights.sources.vae, 'decoder.conv_in.weight', v], [weights.sources.text_encoder, 'text_model.final_layer_norm.weight', n]] as const) {
        const t = await src.load(rt, name, 'f32');
        expect(Array.from(await t.toArray()), name).toEqual(Array.from(ref));
        t.dispose();
      }
    } finally {
      await weights.close();
    }
    const other = join(tmp, 'model.onnx');
    writeFileSync(other, 'x');
    const err = await rejection(openSdWeights(other));
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toMatch(/\.ckpt, \.pth, \.pt, \.bin/);
  });
});
