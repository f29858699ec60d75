// `grounded-sd convert`: golden torch.save fixtures (zip, views, legacy, Lightning)
// rewritten as safetensors and read back, values compared with the fixture manifest
// through an independent DataView decode; --dtype f32/f16 and --prefix; a file the
// manifest says equals a fixture weights file (segmodule.pth) byte-equal to it; the malicious file refused without
// leaving any output; usage errors exit 2.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { convertCheckpoint, convertCommand } from '../../src/cli/convert.js';
import { TorchPickleError } from '../../src/io/torch_pickle.js';
import { equalsFixture } from '../../src/pipeline/parity/torch_pickle.js';
import { goldenDir } from '../helpers.js';

const dir = goldenDir('torch_pickle');
const tmp = mkdtempSync(join(tmpdir(), 'gsd-convert-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface TCase { path: string; dtype: string; shape: number[]; values?: number[]; head?: number[] }
interface Case { file: string; kind: string; note?: string; tensors?: TCase[] }
const cases = (): Case[] => JSON.parse(readFileSync(join(dir ?? '', 'manifest.json'), 'utf8')).cases;
const find = (file: string) => cases().find((c) => c.file === file);

const SAFE: Record<string, string> = {
  float32: 'F32', float16: 'F16', bfloat16: 'BF16', float64: 'F64', int64: 'I64', int32: 'I32', uint8: 'U8', bool: 'BOOL', int16: 'I16', int8: 'I8',
};

/** Every tensor of a safetensors file decoded by hand (header JSON, then DataView reads). */
function readBack(path: string): { meta: Record<string, string>; tensors: Map<string, { dtype: string; shape: number[]; values: number[] }> } {
  const buf = readFileSync(path);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const half = (h: number) => {
    const e = (h >> 10) & 31;
    const m = h & 1023;
    const s = h & 0x8000 ? -1 : 1;
    return e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  };
  const read: Record<string, [number, (at: number) => number]> = {
    F32: [4, (at) => dv.getFloat32(at, true)], F64: [8, (at) => dv.getFloat64(at, true)], F16: [2, (at) => half(dv.getUint16(at, true))],
    BF16: [2, (at) => new Float32Array(new Uint32Array([dv.getUint16(at, true) << 16]).buffer)[0]], I64: [8, (at) => Number(dv.getBigInt64(at, true))],
    I32: [4, (at) => dv.getInt32(at, true)], I16: [2, (at) => dv.getInt16(at, true)], I8: [1, (at) => dv.getInt8(at)], U8: [1, (at) => dv.getUint8(at)], BOOL: [1, (at) => dv.getUint8(at)],
  };
  const tensors = new Map<string, { dtype: string; shape: number[]; values: number[] }>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [size, get] = read[e.dtype];
    const values: number[] = [];
    for (let at = 8 + n + e.data_offsets[0]; at < 8 + n + e.data_offsets[1]; at += size) values.push(get(at));
    tensors.set(name, { dtype: e.dtype, shape: e.shape, values });
  }
  return { meta: (header.__metadata__ ?? {}) as unknown as Record<string, string>, tensors };
}

describe('grounded-sd convert', () => {
  it.skipIf(!dir)('keeps every tensor of the zip, views and legacy fixtures with its dtype, shape and values', async () => {
    for (const file of ['state_dict.pth', 'views.pth', 'legacy.pth']) {
      const c = find(file);
      if (!c) continue;
      const out = join(tmp, `${file}.safetensors`);
      const logs: string[] = [];
      const r = await convertCheckpoint(join(dir ?? '', file), out, { dtype: 'keep', log: (m) => logs.push(m) });
      expect(r.tensors).toBe((c.tensors ?? []).length);
      expect(logs.at(-1)).toContain(`${r.tensors}/${r.tensors} tensors (100%)`);
      const back = readBack(out);
      expect(back.meta.format).toBe('pt');
      expect([...back.tensors.keys()].sort()).toEqual((c.tensors ?? []).map((t) => t.path).sort());
      for (const t of c.tensors ?? []) {
        const got = back.tensors.get(t.path);
        expect({ dtype: got?.dtype, shape: got?.shape }, `${file} ${t.path}`).toEqual({ dtype: SAFE[t.dtype], shape: t.shape });
        expect(got?.values, `${file} ${t.path}`).toEqual(t.values);
      }
    }
  });

  it.skipIf(!dir)('takes the state_dict of a Lightning checkpoint, widens to f32 or rounds to f16, and filters by --prefix', async () => {
    const c = find('lightning.ckpt');
    if (!c) return;
    const input = join(dir ?? '', c.file);
    const f32 = join(tmp, 'lightning-f32.safetensors');
    await convertCheckpoint(input, f32, { dtype: 'f32' });
    const wide = readBack(f32).tensors;
    for (const t of c.tensors ?? []) {
      const name = t.path.replace(/^state_dict\./, '');
      const got = wide.get(name);
      const float = t.dtype.startsWith('float') || t.dtype === 'bfloat16';
      expect(got?.dtype, name).toBe(float ? 'F32' : SAFE[t.dtype]);
      expect(got?.values, name).toEqual(t.values);
    }
    const prefix = 'model.diffusion_model.';
    const f16 = join(tmp, 'lightning-f16.safetensors');
    const code = await convertCommand.run([input, f16, '--dtype', 'f16', '--prefix', prefix]);
    expect(code).toBe(0);
    const half = readBack(f16).tensors;
    const under = (c.tensors ?? []).filter((t) => t.path.startsWith(`state_dict.${prefix}`));
    expect([...half.keys()].sort()).toEqual(under.map((t) => t.path.replace(/^state_dict\./, '')).sort());
    for (const t of under) {
      const got = half.get(t.path.replace(/^state_dict\./, ''));
      expect(got?.dtype).toBe('F16');
      // Round to nearest: within half an f16 ulp (relative 2^-11, or 2^-25 near zero).
      got?.values.forEach((v, i) => expect(Math.abs(v - (t.values as number[])[i])).toBeLessThanOrEqual(2 ** -11 * Math.abs((t.values as number[])[i]) + 2 ** -25));
    }
  });

  const twin = dir ? cases().find((c) => equalsFixture(c.note)) : undefined;
  it.skipIf(!twin)('a file the manifest says equals a fixture weights file converts to the same tensors', async () => {
    const c = twin as Case;
    const out = join(tmp, 'twin.safetensors');
    await convertCheckpoint(join(dir ?? '', c.file), out, { dtype: 'keep' });
    const a = readBack(out).tensors;
    const b = readBack(join(dir ?? '', '..', equalsFixture(c.note) ?? '', 'weights.safetensors')).tensors;
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    for (const [name, t] of b) expect(a.get(name), name).toEqual(t);
  });

  it.skipIf(!dir)('refuses the malicious fixture and leaves no output or temp file', async () => {
    const out = join(tmp, 'refused', 'bad.safetensors');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(tmp, 'refused'));
    const err = await convertCheckpoint(join(dir ?? '', 'malicious.pth'), out, { dtype: 'keep' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TorchPickleError);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(join(tmp, 'refused'))).toEqual([]);
  });

  it('exits 2 on usage errors and refuses a non-safetensors output', async () => {
    const errors: string[] = [];
    const orig = console.error;
    console.error = (m: string) => void errors.push(m);
    try {
      expect(await convertCommand.run(['only-one.ckpt'])).toBe(2);
      expect(await convertCommand.run(['a.ckpt', 'b.safetensors', '--dtype', 'bf16'])).toBe(2);
    } finally {
      console.error = orig;
    }
    expect(errors.join('\n')).toMatch(/--dtype must be f32, f16 or keep, got 'bf16'/);
    await expect(convertCheckpoint('a.ckpt', join(tmp, 'out.ckpt'), { dtype: 'keep' })).rejects.toThrow(/must end in \.safetensors/);
  });
});
