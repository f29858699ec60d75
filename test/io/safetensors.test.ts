// safetensors: the golden fixtures read against an independent DataView parse, writer round
// trips, every header corruption giving a WeightError, and chunked streaming to the GPU
// (F32/F16/BF16 sources into f32 and f16 tensors).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WeightError } from '../../src/gpu/errors.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { fromHalf, toHalf } from '../../src/tensor/f16.js';
import { goldenDir, randomArray, runtime } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'safetensors-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A file from a header object (or raw header text) and data bytes, written by hand. */
function rawFile(name: string, header: unknown, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): string {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([len, json, data]));
  return path;
}

/** Independent reader: header by hand, then one tensor's float32 values through DataView. */
function dataViewF32(path: string, name: string): { shape: number[]; values: number[] } {
  const buf = readFileSync(path);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const e = header[name];
  expect(e.dtype).toBe('F32');
  const values: number[] = [];
  for (let p = 8 + n + e.data_offsets[0]; p < 8 + n + e.data_offsets[1]; p += 4) values.push(view.getFloat32(p, true));
  return { shape: e.shape, values };
}

async function expectWeightError(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err, `expected a WeightError matching ${pattern}`).toBeInstanceOf(WeightError);
  expect((err as Error).message).toMatch(pattern);
}

describe('safetensors reader on golden fixtures', () => {
  const clipDir = goldenDir('clip_text');
  it.skipIf(!clipDir)('clip_text weights: shapes from the manifest config, values as a DataView parse reads them', async () => {
    const g = clipDir as string;
    const manifest = JSON.parse(readFileSync(join(g, 'manifest.json'), 'utf8'));
    const { hidden_size: hidden, vocab_size: vocab, max_position_embeddings: positions, intermediate_size: inter } = manifest.config;
    const path = join(g, 'weights.safetensors');
    const f = await SafetensorsFile.open(path);
    try {
      expect(f.info('text_model.embeddings.token_embedding.weight').shape).toEqual([vocab, hidden]);
      expect(f.info('text_model.embeddings.position_embedding.weight').shape).toEqual([positions, hidden]);
      expect(f.info('text_model.encoder.layers.0.mlp.fc1.weight').shape).toEqual([inter, hidden]);
      for (const name of ['text_model.embeddings.token_embedding.weight', 'text_model.encoder.layers.4.mlp.fc2.bias', 'text_model.final_layer_norm.weight']) {
        const ref = dataViewF32(path, name);
        const got = await f.readF32(name);
        expect(f.info(name).shape).toEqual(ref.shape);
        expect(Array.from(got)).toEqual(ref.values);
        const sum = ref.values.reduce((a, b) => a + b, 0);
        expect(got.reduce((a, b) => a + b, 0)).toBeCloseTo(sum, 9);
      }
    } finally {
      await f.close();
    }
  });

  it.skipIf(!clipDir)('clip_text io: every header shape matches the manifest, input_ids read as I64', async () => {
    const g = clipDir as string;
    const manifest = JSON.parse(readFileSync(join(g, 'manifest.json'), 'utf8'));
    const path = join(g, 'io.safetensors');
    const f = await SafetensorsFile.open(path);
    try {
      const described = manifest.io.tensors as Record<string, { shape: number[]; dtype: string }>;
      for (const [name, t] of Object.entries(described)) expect(f.info(name).shape, name).toEqual(t.shape);
      const info = f.info('input_ids');
      expect(info.dtype).toBe('I64');
      const ids = await f.readI64('input_ids');
      const buf = readFileSync(path);
      const n = Number(buf.readBigUInt64LE(0));
      const ref = Array.from({ length: ids.length }, (_, i) => buf.readBigInt64LE(8 + n + info.begin + 8 * i));
      expect(Array.from(ids)).toEqual(ref);
      expect(Array.from(await f.readF32('input_ids'))).toEqual(ref.map(Number));
    } finally {
      await f.close();
    }
  });
});

describe('safetensors writer', () => {
  it('round trips F32, F16, I64 and I32 with metadata, atomically, header padded to 8', async () => {
    const path = join(dir, 'roundtrip.safetensors');
    const a = randomArray(15, 1);
    const half = Uint16Array.from(randomArray(7, 2), toHalf);
    const ids = BigInt64Array.from([49406n, 1n, -3n, 2n ** 40n, 49407n]);
    const small = Int32Array.from([-7, 0, 123456]);
    await writeSafetensors(path, {
      'z.last': { dtype: 'F32', shape: [3, 5], data: a },
      half: { dtype: 'F16', shape: [7], data: half },
      ids: { dtype: 'I64', shape: [1, 5], data: ids },
      small: { dtype: 'I32', shape: [3], data: small },
    }, { format: 'pt', note: 'héllo' });
    expect(readdirSync(dir).filter((n) => n.includes('roundtrip') && n.endsWith('.tmp'))).toEqual([]);
    const buf = readFileSync(path);
    const n = Number(buf.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    expect(Object.keys(JSON.parse(buf.subarray(8, 8 + n).toString('utf8')))).toEqual(['__metadata__', 'z.last', 'half', 'ids', 'small']);
    const f = await SafetensorsFile.open(path);
    try {
      expect(f.metadata).toEqual({ format: 'pt', note: 'héllo' });
      expect([...f.tensors.keys()]).toEqual(['z.last', 'half', 'ids', 'small']);
      expect(f.info('z.last')).toEqual({ name: 'z.last', dtype: 'F32', shape: [3, 5], begin: 0, end: 60 });
      expect(Array.from(await f.readF32('z.last'))).toEqual(Array.from(a));
      expect(Array.from(await f.readF32('half'))).toEqual(Array.from(half, fromHalf));
      expect(Array.from(new Uint16Array((await f.readRaw('half')).buffer))).toEqual(Array.from(half));
      expect(Array.from(await f.readI64('ids'))).toEqual(Array.from(ids));
      expect(Array.from(await f.readI64('small'))).toEqual([-7n, 0n, 123456n]);
      expect(Array.from(await f.readF32('small'))).toEqual([-7, 0, 123456]);
    } finally {
      await f.close();
    }
  });

  it('rejects data whose size does not match the shape, leaving no file', async () => {
    const path = join(dir, 'bad_write.safetensors');
    await expectWeightError(writeSafetensors(path, { x: { dtype: 'F32', shape: [4], data: new Float32Array(3) } }), /'x' F32\[4\] needs 16 bytes, data has 12/);
    expect(readdirSync(dir).filter((n) => n.includes('bad_write'))).toEqual([]);
  });
});

describe('safetensors corruption gives WeightErrors', () => {
  const ok = { x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const eight = new Uint8Array(8);
  const cases: [string, () => string, RegExp][] = [
    ['shorter than 8 bytes', () => { const p = join(dir, 'short'); writeFileSync(p, Buffer.from([1, 2, 3])); return p; }, /3 bytes is too short/],
    ['header length past the end', () => rawFile('past', ok, eight, 4096n), /header length 4096 runs past the end/],
    ['absurd header length', () => rawFile('absurd', ok, eight, 1n << 40n), /exceeds the 100000000-byte limit/],
    ['header not JSON', () => rawFile('notjson', '{"x": {"dtype": "F32",', eight), /not valid UTF-8 JSON/],
    ['header not an object', () => rawFile('array', '[1, 2, 3]', eight), /must be a JSON object.*array/],
    ['entry without dtype', () => rawFile('nodtype', { x: { shape: [2], data_offsets: [0, 8] } }, eight), /'x': entry has no dtype/],
    ['entry without shape', () => rawFile('noshape', { x: { dtype: 'F32', data_offsets: [0, 8] } }, eight), /'x': entry has no shape/],
    ['entry without data_offsets', () => rawFile('nooff', { x: { dtype: 'F32', shape: [2] } }, eight), /'x': entry has no data_offsets/],
    ['unknown dtype', () => rawFile('dtype', { x: { dtype: 'F8_E9', shape: [2], data_offsets: [0, 8] } }, eight), /unknown dtype "F8_E9"/],
    ['bad shape', () => rawFile('shape', { x: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 8] } }, eight), /shape must be an array of non-negative integers/],
    ['offsets out of order', () => rawFile('order', { x: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, eight), /out of order/],
    ['overlapping tensors', () => rawFile('overlap', {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    }, new Uint8Array(12)), /'b' bytes \[4, 12\) overlap 'a' \[0, 8\)/],
    ['byte size != numel*itemsize', () => rawFile('size', { x: { dtype: 'F16', shape: [3], data_offsets: [0, 8] } }, eight), /F16\[3\] needs 6 bytes but data_offsets \[0, 8\] span 8/],
    ['bad metadata', () => rawFile('meta', { __metadata__: { n: 3 }, ...ok }, eight), /__metadata__\.n must be a string/],
    ['truncated file', () => { const p = rawFile('trunc', ok, eight); truncateSync(p, readFileSync(p).length - 3); return p; }, /'x' ends at data byte 8 but the data section has 5 bytes; the file is truncated/],
    ['missing file', () => join(dir, 'does-not-exist.safetensors'), /cannot open safetensors file/],
    ['a folder', () => dir, /is not a regular file/],
  ];
  for (const [what, make, pattern] of cases) {
    it(what, async () => {
      await expectWeightError(SafetensorsFile.open(make()), pattern);
    });
  }

  it('missing tensor and wrong expected shape name the file and tensor', async () => {
    const path = rawFile('good', ok, eight);
    const f = await SafetensorsFile.open(path);
    try {
      expect(() => f.info('y')).toThrow(WeightError);
      expect(() => f.info('y')).toThrow(new RegExp(`${path}: no tensor named 'y'`));
      const rt = await runtime();
      await expectWeightError(f.toTensor(rt, 'x', 'f32', [3]), /tensor 'x' has shape \[2\], expected \[3\]/);
    } finally {
      await f.close();
    }
  });
});

describe('safetensors toTensor (GPU, chunked)', () => {
  // 1001 elements with a 64-byte chunk: 63 chunks, an odd tail, f16 writes at 4-byte offsets.
  const n = 1001;
  const values = randomArray(n, 7, -3, 3);
  const f16Bits = Uint16Array.from(values, toHalf);
  const bf16Bits = Uint16Array.from(values, (v) => new Uint32Array(Float32Array.of(v).buffer)[0] >>> 16);
  const bf16Values = Array.from(bf16Bits, (b) => new Float32Array(Uint32Array.of(b << 16).buffer)[0]);

  it('streams F32/F16/BF16 sources into f32 and f16 tensors exactly', async () => {
    const rt = await runtime();
    const path = join(dir, 'gpu.safetensors');
    await writeSafetensors(path, {
      f32: { dtype: 'F32', shape: [7, 11, 13], data: values },
      f16: { dtype: 'F16', shape: [n], data: f16Bits },
    });
    const bytes = readFileSync(path);
    const hdrLen = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + hdrLen).toString('utf8'));
    const dataEnd = header.f16.data_offsets[1];
    header.bf16 = { dtype: 'BF16', shape: [n], data_offsets: [dataEnd, dataEnd + 2 * n] };
    const bfPath = rawFile('gpu_bf16.safetensors', header,
      Buffer.concat([bytes.subarray(8 + hdrLen), Buffer.from(bf16Bits.buffer)]));

    const f = await SafetensorsFile.open(bfPath, { chunkBytes: 64 });
    try {
      const asHalf = (xs: ArrayLike<number>) => Array.from(xs, (v) => fromHalf(toHalf(v)));
      const expected: [string, 'f32' | 'f16', number[]][] = [
        ['f32', 'f32', Array.from(values)],
        ['f32', 'f16', asHalf(values)],
        ['f16', 'f32', Array.from(f16Bits, fromHalf)],
        ['f16', 'f16', Array.from(f16Bits, fromHalf)],
        ['bf16', 'f32', bf16Values],
        ['bf16', 'f16', asHalf(bf16Values)],
      ];
      for (const [name, dtype, ref] of expected) {
        const t = await f.toTensor(rt, name, dtype, f.info(name).shape);
        expect(t.dtype).toBe(dtype);
        expect(t.shape).toEqual(f.info(name).shape);
        expect(Array.from(await t.toArray()), `${name} -> ${dtype}`).toEqual(ref);
        t.dispose();
      }
      await expectWeightError(SafetensorsFile.open(path).then(async (g) => {
        try { await g.toTensor(rt, 'f16', 'f32', [n, 1]); } finally { await g.close(); }
      }), /'f16' has shape \[1001\], expected \[1001,1\]/);
    } finally {
      await f.close();
    }
  });

  it('refuses integer tensors with a hint', async () => {
    const rt = await runtime();
    const path = join(dir, 'ints.safetensors');
    await writeSafetensors(path, { ids: { dtype: 'I64', shape: [2], data: BigInt64Array.of(1n, 2n) } });
    const f = await SafetensorsFile.open(path);
    try {
      await expectWeightError(f.toTensor(rt, 'ids'), /'ids' is I64; only F32\/F16\/BF16\/F64 load as float tensors/);
    } finally {
      await f.close();
    }
  });
});

describe('safetensors strictness (the reference reader\'s rules)', () => {
  const f32 = (n: number, seed: number) => new Uint8Array(randomArray(n, seed).buffer);
  /** A file whose 8-byte length field says `n` while the header text is `header`. */
  const withLength = (name: string, header: string, data: Uint8Array, n: number) => rawFile(name, header, data, BigInt(n));

  it('a header length one byte short or long is refused, not read one byte off', async () => {
    // Padded header (trailing spaces inside N are allowed): N - 1 still parses as JSON,
    // so the data section gains a byte at the front that no tensor covers.
    const data = f32(4, 11);
    const padded = `${JSON.stringify({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } })}   `;
    const good = withLength('len_ok', padded, data, padded.length);
    const f = await SafetensorsFile.open(good);
    expect(Array.from(await f.readF32('x'))).toEqual(Array.from(new Float32Array(data.buffer)));
    await f.close();
    // One short: the last padding space becomes data. The file's bytes are the same.
    const bytes = readFileSync(good);
    bytes.writeBigUInt64LE(BigInt(padded.length - 1), 0);
    const short = join(dir, 'len_short');
    writeFileSync(short, bytes);
    await expectWeightError(SafetensorsFile.open(short), /cover 16 data bytes but the file has 17 after the header \(1 trailing bytes\)/);
    // Unpadded header one short: the closing brace falls outside N.
    const tight = JSON.stringify({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } });
    await expectWeightError(SafetensorsFile.open(withLength('len_short2', tight, data, tight.length - 1)), /not valid UTF-8 JSON ending at byte/);
    // One long: the first data byte becomes part of the header text.
    await expectWeightError(SafetensorsFile.open(withLength('len_long', tight, data, tight.length + 1)), /not valid UTF-8 JSON|trailing|cover/);
  });

  it('trailing bytes after the last tensor are refused', async () => {
    const p = rawFile('trailing', { x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(9));
    await expectWeightError(SafetensorsFile.open(p), /cover 8 data bytes but the file has 9 after the header \(1 trailing bytes\)/);
  });

  it('gaps between tensors, and data not starting at 0, are refused', async () => {
    const gap = rawFile('gap', {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [12, 20] },
    }, new Uint8Array(20));
    await expectWeightError(SafetensorsFile.open(gap), /'b' starts at data byte 12 but 'a' ends at 8: a 4-byte gap/);
    const late = rawFile('late', { a: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12));
    await expectWeightError(SafetensorsFile.open(late), /'a' starts at data byte 4 but the data section starts at 0/);
  });

  it('zero-size tensors and header padding are accepted; tensors tile the data in any header order', async () => {
    const header = `${JSON.stringify({
      b: { dtype: 'F16', shape: [3], data_offsets: [8, 14] }, empty: { dtype: 'F32', shape: [0, 5], data_offsets: [8, 8] },
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    })}\n  `;
    const data = new Uint8Array(14).map((_, i) => i + 1);
    const f = await SafetensorsFile.open(rawFile('tiled', header, data));
    expect([...f.tensors.keys()]).toEqual(['b', 'empty', 'a']);
    expect(Array.from(await f.readRaw('b'))).toEqual([9, 10, 11, 12, 13, 14]);
    expect((await f.readRaw('empty')).byteLength).toBe(0);
    await f.close();
  });

  it('a header that does not start with { is refused', async () => {
    const p = rawFile('lead', ` ${JSON.stringify({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } })}`, new Uint8Array(8));
    await expectWeightError(SafetensorsFile.open(p), /must be a JSON object starting with '\{' at byte 8, found byte 0x20/);
  });

  it('duplicate keys are refused (JSON.parse would keep the last one silently)', async () => {
    const entry = (o: number) => `{"dtype": "F32", "shape": [2], "data_offsets": [${o}, ${o + 8}]}`;
    const top = rawFile('dup_top', `{"x": ${entry(0)}, "y": ${entry(8)}, "x": ${entry(8)}}`, new Uint8Array(16));
    await expectWeightError(SafetensorsFile.open(top), /tensor 'x' appears twice in the header/);
    // The same key spelled with a \u escape is still the same key.
    const escaped = rawFile('dup_escape', `{"ab": ${entry(0)}, "a\\u0062": ${entry(8)}}`, new Uint8Array(16));
    await expectWeightError(SafetensorsFile.open(escaped), /tensor 'ab' appears twice/);
    const inner = rawFile('dup_inner', '{"x": {"dtype": "F16", "shape": [2], "dtype": "F32", "data_offsets": [0, 8]}}', new Uint8Array(8));
    await expectWeightError(SafetensorsFile.open(inner), /key 'dtype' of 'x' appears twice/);
    const meta = rawFile('dup_meta', `{"__metadata__": {"k": "1", "k": "2"}, "x": ${entry(0)}}`, new Uint8Array(8));
    await expectWeightError(SafetensorsFile.open(meta), /key 'k' of '__metadata__' appears twice/);
  });

  it('quoted text that looks like a key, and equal keys in different objects, are not duplicates', async () => {
    const header = '{"__metadata__": {"note": "\\"x\\": {\\"dtype\\"} y: x", "x": "meta x"}, '
      + '"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "x\\\\": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}';
    const f = await SafetensorsFile.open(rawFile('nodup', header, new Uint8Array(12)));
    expect([...f.tensors.keys()]).toEqual(['x', 'x\\']);
    expect(f.metadata).toEqual({ note: '"x": {"dtype"} y: x', x: 'meta x' });
    await f.close();
  });

  it('a FIFO is refused at once instead of blocking the open forever', async () => {
    const fifo = join(dir, 'pipe.safetensors');
    execFileSync('mkfifo', [fifo]);
    await expectWeightError(SafetensorsFile.open(fifo), /pipe\.safetensors is not a regular file \(it is a named pipe \(FIFO\)\)/);
  }, 10_000);

  it('weights with NaN or Inf are refused when loaded as weights, naming the tensor and element', async () => {
    const rt = await runtime();
    const good = randomArray(1000, 5);
    const nan = Float32Array.from(good);
    nan[637] = NaN;
    const inf = Uint16Array.from(good, toHalf);
    inf[12] = 0xfc00; // -Infinity in f16
    const big = Float32Array.from(good);
    big[999] = 1e6; // finite in f32, past the f16 range
    const path = join(dir, 'nonfinite.safetensors');
    await writeSafetensors(path, {
      good: { dtype: 'F32', shape: [10, 100], data: good },
      nan: { dtype: 'F32', shape: [10, 100], data: nan },
      inf: { dtype: 'F16', shape: [1000], data: inf },
      big: { dtype: 'F32', shape: [1000], data: big },
    });
    // A 64-byte chunk: the bad element sits in a later chunk than the first.
    const f = await SafetensorsFile.open(path, { chunkBytes: 64 });
    const finite = { finite: true };
    try {
      const t = await f.toTensor(rt, 'good', 'f32', undefined, finite);
      expect(Array.from(await t.toArray())).toEqual(Array.from(good));
      t.dispose();
      await expectWeightError(f.toTensor(rt, 'nan', 'f32', undefined, finite), /tensor 'nan' F32\[10,100\]: element 637 is NaN; a non-finite weight/);
      await expectWeightError(f.toTensor(rt, 'nan', 'f16', undefined, finite), /tensor 'nan' F32\[10,100\]: element 637 is NaN/);
      await expectWeightError(f.toTensor(rt, 'inf', 'f32', undefined, finite), /tensor 'inf' F16\[1000\]: element 12 is -Infinity/);
      await expectWeightError(f.toTensor(rt, 'big', 'f16', undefined, finite), /tensor 'big' F32\[1000\]: element 999 = 1000000 overflows f16/);
      const asF32 = await f.toTensor(rt, 'big', 'f32', undefined, finite);
      expect((await asF32.toArray())[999]).toBe(1e6);
      asF32.dispose();
      // Data tensors (parity inputs) are read as stored unless asked.
      const raw = await f.toTensor(rt, 'nan');
      expect(Number.isNaN((await raw.toArray())[637])).toBe(true);
      raw.dispose();
    } finally {
      await f.close();
    }
  });
});
