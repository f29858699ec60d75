// Profiler scopes: dispatches are totalled per (scope path, kernel label); nested scopes
// join with '/'; a scope is popped when its function throws; with profiling off a scope
// records nothing and withScope just calls the function. Its own runtime (test/helpers'
// NaN-fills new tensors, which would add fill dispatches).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withScope } from '../../src/gpu/profiler.js';
import { Runtime } from '../../src/gpu/runtime.js';
import { unary } from '../../src/nn/elementwise.js';
import { Tensor } from '../../src/tensor/tensor.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt?.destroy());

describe('profiler scopes', () => {
  it('tag every dispatch with the open scope path', async () => {
    const prof = rt.profiler;
    if (!prof) return expect(rt.gpu.hasTimestamps).toBe(false);
    const x = Tensor.from(rt, Float32Array.from({ length: 4096 }, (_, i) => Math.sin(i) + 0.5), [4096]);
    await rt.sync();
    await prof.collect();
    prof.enabled = true;
    try {
      const out = withScope(rt, 'outer', () => {
        unary(x, 'silu').dispose();
        const inner = withScope(rt, 'inner', () => {
          expect(prof.scope).toBe('outer/inner');
          unary(x, 'gelu').dispose();
          unary(x, 'gelu').dispose();
          return 7;
        });
        expect(() => withScope(rt, 'throws', () => {
          throw new RangeError('boom');
        })).toThrow('boom');
        expect(prof.scope).toBe('outer');
        unary(x, 'silu').dispose();
        return inner;
      });
      expect(out).toBe(7);
      expect(prof.scope).toBe('');
      unary(x, 'gelu').dispose();
      await rt.sync();
    } finally {
      prof.enabled = false;
    }
    const rows = (await prof.collect()).map((t) => `${t.scope}|${t.label}|${t.calls}`).sort();
    expect(rows).toEqual([
      'outer/inner|unary_forward[ACT=2,WG=256]|2',
      'outer|unary_forward[ACT=1,WG=256]|2',
      '|unary_forward[ACT=2,WG=256]|1',
    ]);
    x.dispose();
  });

  it('record nothing while profiling is off', async () => {
    const prof = rt.profiler;
    const x = Tensor.from(rt, new Float32Array(256).fill(0.25), [256]);
    const y = withScope(rt, 'off', () => {
      if (prof) expect(prof.scope).toBe('');
      return unary(x, 'silu');
    });
    const got = await y.toArray();
    expect(got[0]).toBeCloseTo(0.25 / (1 + Math.exp(-0.25)), 6);
    if (prof) expect(await prof.collect()).toEqual([]);
    x.dispose();
    y.dispose();
  });
});
