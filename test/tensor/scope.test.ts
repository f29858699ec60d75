import { describe, expect, it } from 'vitest';
import { keep, scope } from '../../src/tensor/scope.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { runtime } from '../helpers.js';

describe('tensor scopes and the buffer pool', () => {
  it('disposes intermediates, keeps returned and kept tensors, and reuses buffers', async () => {
    const rt = await runtime();
    const before = rt.memory().liveBytes;
    let kept: Tensor | null = null;
    const out = scope(() => {
      const a = Tensor.from(rt, [1, 2, 3, 4], [4]);
      Tensor.from(rt, new Float32Array(1000), [1000]);
      kept = keep(Tensor.from(rt, [5], [1]));
      return { y: a.reshape([2, 2]) };
    });
    expect(out.y.shape).toEqual([2, 2]);
    expect(Array.from(await out.y.toArray())).toEqual([1, 2, 3, 4]);
    const live = rt.memory().liveBytes - before;
    expect(live).toBe(512); // two 256-byte buckets: y's storage and `kept`
    out.y.dispose();
    (kept as Tensor | null)?.dispose();
    expect(rt.memory().liveBytes).toBe(before);
    const allocs = rt.memory().allocations;
    Tensor.from(rt, new Float32Array(1000), [1000]).dispose();
    expect(rt.memory().allocations).toBe(allocs); // served from the pool
  });

  it('frees everything when the scoped function throws', async () => {
    const rt = await runtime();
    const before = rt.memory().liveBytes;
    expect(() =>
      scope(() => {
        Tensor.from(rt, [1, 2], [2]);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(rt.memory().liveBytes).toBe(before);
  });

  it('rejects bad shapes and disposed use with clear errors', async () => {
    const rt = await runtime();
    expect(() => Tensor.from(rt, [1, 2, 3], [2, 2])).toThrow(/3 values do not fill shape \[2,2\]/);
    const t = Tensor.from(rt, [1, 2, 3, 4], [4]);
    expect(() => t.reshape([3])).toThrow(/cannot reshape/);
    t.dispose();
    expect(() => t.binding).toThrow(/disposed/);
  });
});
