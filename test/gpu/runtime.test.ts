import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { LimitError } from '../../src/gpu/errors.js';
import { f32, packParams } from '../../src/gpu/params.js';
import { pipelineKey } from '../../src/gpu/pipelines.js';
import { bucketSize } from '../../src/gpu/pool.js';
import { unary } from '../../src/nn/elementwise.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { runtime } from '../helpers.js';

describe('runtime (no adapter needed)', () => {
  it('builds pipeline keys from family, entry, dtype and sorted overrides', () => {
    expect(pipelineKey({ family: 'm', entry: 'm_forward', overrides: { TN: 64, TM: 32 } })).toBe('m_forward[TM=32,TN=64]');
    expect(pipelineKey({ family: 'm', entry: 'm_forward', dtype: 'f16' })).toBe('m_forward<f16>');
  });

  it('packs params as u32 / f32 / i32 and rejects floats posing as u32', () => {
    const buf = packParams([3, f32(0.5)]);
    expect(buf.byteLength).toBe(16);
    const v = new DataView(buf);
    expect(v.getUint32(0, true)).toBe(3);
    expect(v.getFloat32(4, true)).toBe(0.5);
    expect(() => packParams([1.5])).toThrow(/not a u32/);
  });

  it('buckets sizes with at most 25% waste', () => {
    for (const n of [1, 255, 257, 1000, 4097, 123456789]) {
      const b = bucketSize(n);
      expect(b).toBeGreaterThanOrEqual(n);
      expect(b % 256).toBe(0);
      expect(b).toBeLessThanOrEqual(Math.max(256, n * 1.25 + 256));
    }
  });
});

describe('runtime (adapter)', () => {
  it('keeps stream order when a recycled buffer is re-uploaded before submit', async () => {
    const rt = await runtime();
    const a = Tensor.from(rt, [1, 2, 3, 4], [4]);
    const b = unary(a, 'none', 2); // recorded, not submitted: reads a
    a.dispose();
    const c = Tensor.from(rt, [9, 9, 9, 9], [4]); // gets a's buffer; the upload must not overtake b
    expect(Array.from(await b.toArray())).toEqual([2, 4, 6, 8]);
    expect(Array.from(await c.toArray())).toEqual([9, 9, 9, 9]);
  });

  it("sizes 'exact' tensors (weights) to a multiple of 256 bytes, not a bucket", async () => {
    const rt = await runtime();
    const n = 5 * 2 ** 18 + 3; // 5 MiB + 12 bytes of f32: the bucket would be 6 MiB
    const before = rt.memory().liveBytes;
    const bucketed = Tensor.empty(rt, [n], 'f32', 'bucketed');
    expect(rt.memory().liveBytes - before).toBe(bucketSize(4 * n));
    const exact = Tensor.empty(rt, [n], 'f16', 'weight', 'exact');
    expect(rt.memory().liveBytes - before - bucketSize(4 * n)).toBe(Math.ceil((2 * n) / 256) * 256);
    bucketed.dispose();
    exact.dispose();
    expect(rt.memory().liveBytes).toBe(before);
  });

  it('rejects a binding larger than maxStorageBufferBindingSize with a LimitError', async () => {
    const rt = await runtime();
    const n = rt.limits.maxStorageBufferBindingSize / 4 + 64;
    const big = Tensor.empty(rt, [n], 'f32', 'big');
    expect(() => unary(big, 'relu')).toThrow(LimitError);
    expect(() => unary(big, 'relu')).toThrow(/maxStorageBufferBindingSize/);
    big.dispose();
  });

  it('times dispatches with timestamp queries when the adapter has them', async () => {
    const rt = await runtime();
    if (!rt.profiler) return expect(rt.gpu.hasTimestamps).toBe(false);
    const x = Tensor.from(rt, new Float32Array(1 << 16).fill(1), [1 << 16]);
    rt.profiler.enabled = true;
    unary(x, 'silu').dispose();
    unary(x, 'gelu').dispose();
    await rt.sync();
    rt.profiler.enabled = false;
    const timings = await rt.profiler.collect();
    expect(timings.map((t) => t.label).filter((l) => l !== 'fill').sort()).toEqual(['unary_forward[ACT=1,WG=256]', 'unary_forward[ACT=2,WG=256]']);
    for (const t of timings) expect(t.totalMs).toBeGreaterThan(0);
  });

  it('`grounded-sd info` prints the adapter with its limits and features as JSON', () => {
    const out = execFileSync('node', ['bin/grounded-sd.mjs', 'info'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const info = JSON.parse(out);
    expect(typeof info.description).toBe('string');
    expect(info.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(Array.isArray(info.features)).toBe(true);
  });
});
