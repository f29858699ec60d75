import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/gpu/errors.js';
import { max, mean, sum } from '../../src/nn/reduce.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { reduceRef, type ReduceKind } from '../../src/ref/reduce.js';
import { expectClose, randomTensor, runtime, TOL } from '../helpers.js';

const OPS: Record<ReduceKind, (x: Tensor, axis: number, keepDims?: boolean) => Tensor> = { sum, mean, max };
const KINDS = Object.keys(OPS) as ReduceKind[];

describe('reduce', () => {
  // Every axis of a ragged 4-D tensor: axis 3 takes the contiguous kernel, the others
  // the strided one with inner extents 3*17*5, 17*5 and 5.
  it.each([0, 1, 2, 3])('sum, mean, max over axis %i of [6,3,17,5]', async (axis) => {
    const rt = await runtime();
    const shape = [6, 3, 17, 5];
    const { t, data } = randomTensor(rt, shape, 50 + axis, -2, 2);
    for (const kind of KINDS) {
      const y = OPS[kind](t, axis);
      expect(y.shape).toEqual(shape.filter((_, i) => i !== axis));
      expectClose(await y.toArray(), reduceRef(data, shape, axis, kind), { label: `${kind} axis ${axis}`, relL2: TOL.reduction });
    }
  });

  it('keepDims keeps the axis as 1; negative axes count from the end', async () => {
    const rt = await runtime();
    const shape = [2, 33, 40];
    const { t, data } = randomTensor(rt, shape, 60);
    const y = mean(t, -2, true);
    expect(y.shape).toEqual([2, 1, 40]);
    expectClose(await y.toArray(), reduceRef(data, shape, 1, 'mean'), { label: 'mean keepDims', relL2: TOL.reduction });
  });

  it('long reductions of 262144 elements, contiguous and strided', async () => {
    const rt = await runtime();
    const n = 262144;
    const row = randomTensor(rt, [1, n], 70);
    for (const kind of KINDS) {
      expectClose(await OPS[kind](row.t, 1).toArray(), reduceRef(row.data, [1, n], 1, kind), { label: `${kind} 262144`, relL2: TOL.reduction });
    }
    const cols = randomTensor(rt, [n, 3], 71);
    for (const kind of KINDS) {
      expectClose(await OPS[kind](cols.t, 0).toArray(), reduceRef(cols.data, [n, 3], 0, kind), { label: `${kind} 262144 strided`, relL2: TOL.reduction });
    }
  });

  it('folds more than 65535 outputs into a 2-D grid', async () => {
    const rt = await runtime();
    const rows = randomTensor(rt, [70001, 3], 80);
    expectClose(await sum(rows.t, 1).toArray(), reduceRef(rows.data, [70001, 3], 1, 'sum'), { label: 'sum 70001 rows', relL2: TOL.reduction });
    // Strided: 1100 outer x 1000 inner / 16 columns per workgroup = 69300 workgroups.
    const cols = randomTensor(rt, [1100, 2, 1000], 81);
    expectClose(await max(cols.t, 1).toArray(), reduceRef(cols.data, [1100, 2, 1000], 1, 'max'), { label: 'max strided 69300 workgroups', relL2: TOL.reduction });
  });

  it('rejects a bad axis', async () => {
    const rt = await runtime();
    const { t } = randomTensor(rt, [2, 3], 90);
    expect(() => sum(t, 2)).toThrow(ShapeError);
    expect(() => sum(t, -3)).toThrow(/out of range/);
  });
});
