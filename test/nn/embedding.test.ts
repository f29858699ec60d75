import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/gpu/errors.js';
import { embedding } from '../../src/nn/embedding.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { embeddingRef } from '../../src/ref/embedding.js';
import { expectClose, randomArray, randomTensor, requireF16, rng, runtime } from '../helpers.js';

describe('embedding', () => {
  it('gathers rows of a small f32 table for ids of any shape', async () => {
    const rt = await runtime();
    const [vocab, dim] = [37, 19];
    const table = randomTensor(rt, [vocab, dim], 1);
    const r = rng(2);
    const idData = Int32Array.from({ length: 15 }, (_, i) => (i === 0 ? 0 : i === 1 ? vocab - 1 : Math.floor(r() * vocab)));
    const y = embedding(table.t, Tensor.from(rt, idData, [3, 5], 'i32'));
    expect(y.shape).toEqual([3, 5, dim]);
    expect(y.dtype).toBe('f32');
    expectClose(await y.toArray(), embeddingRef(table.data, [vocab, dim], idData), { label: 'embedding 37x19', relL2: 0 });
  });

  it('ids outside [0, V) give zero rows', async () => {
    const rt = await runtime();
    const table = randomTensor(rt, [10, 6], 3);
    const idData = Int32Array.from([-1, 3, 10, 9, -2147483648]);
    const y = await embedding(table.t, Tensor.from(rt, idData, [5], 'i32')).toArray();
    expectClose(y, embeddingRef(table.data, [10, 6], idData), { label: 'invalid ids', relL2: 0 });
    expect(Array.from(y.subarray(0, 6))).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('widens an f16 table to f32', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const table = Tensor.from(rt, randomArray(21 * 9, 4), [21, 9], 'f16');
    const idData = Int32Array.from([20, 0, 5, 5, 13, 1, 7]);
    const y = embedding(table, Tensor.from(rt, idData, [7], 'i32'));
    expect(y.dtype).toBe('f32');
    expectClose(await y.toArray(), embeddingRef(await table.toArray(), [21, 9], idData), { label: 'embedding f16', relL2: 0 });
  });

  it('binds a table past the binding limit in row ranges', async () => {
    const rt = await runtime();
    // 33,000 x 1024 f32 = 135 MB > 128 MiB: rows [0, 32768) and [32768, 33000).
    const [vocab, dim] = [33000, 1024];
    const value = (row: number, col: number) => row * 256 + (col % 256) - 3e6; // exact in f32 (|v| < 2^24)
    const table = Tensor.empty(rt, [vocab, dim], 'f32', 'big_table');
    expect(table.bytes).toBeGreaterThan(rt.limits.maxStorageBufferBindingSize);
    const rows = 2048;
    const chunk = new Float32Array(rows * dim);
    for (let r0 = 0; r0 < vocab; r0 += rows) {
      const nr = Math.min(rows, vocab - r0);
      for (let r = 0; r < nr; r++) for (let c = 0; c < dim; c++) chunk[r * dim + c] = value(r0 + r, c);
      table.write(chunk.subarray(0, nr * dim), r0 * dim);
    }
    const idData = Int32Array.from([32767, 32768, 0, 32999, 12345, 32768, 40000, 1, 32800, -1]);
    const y = await embedding(table, Tensor.from(rt, idData, [2, 5], 'i32')).toArray();
    const ref = new Float64Array(idData.length * dim);
    idData.forEach((id, t) => {
      if (id >= 0 && id < vocab) for (let c = 0; c < dim; c++) ref[t * dim + c] = value(id, c);
    });
    expectClose(y, ref, { label: 'embedding 33000x1024', relL2: 0 });
    table.dispose();
  });

  it('rejects non-i32 ids and non-2-D tables', async () => {
    const rt = await runtime();
    const table = randomTensor(rt, [4, 3], 5).t;
    expect(() => embedding(table, randomTensor(rt, [2], 6).t)).toThrow(ShapeError);
    expect(() => embedding(randomTensor(rt, [4, 3, 1], 7).t, Tensor.from(rt, [1], [1], 'i32'))).toThrow(ShapeError);
  });
});
