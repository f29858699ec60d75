import { describe, expect, it } from 'vitest';
import { bceWithLogits, bceWithLogitsBackward, diceLoss, diceLossBackward } from '../../src/nn/loss.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { bceBackwardRef, bceRef, diceBackwardRef, diceRef } from '../../src/ref/loss.js';
import { expectClose, finiteDiff, randomArray, rng, runtime, TOL } from '../helpers.js';

/** Logits in [-8, 8] and targets that are mostly a binary mask with some soft values. */
function inputs(R: number, P: number, seed: number) {
  const x = randomArray(R * P, seed, -8, 8);
  const r = rng(seed + 1);
  const t = Float32Array.from({ length: R * P }, () => {
    const u = r();
    return u < 0.45 ? 0 : u < 0.9 ? 1 : r();
  });
  return { x, t };
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-30);

describe('losses', () => {
  // Ragged rows (not multiples of a chunk) with one weight-0 row (a class without a
  // mask) and fractional weights (1 / batch folded in); unweighted; a 512x512 row.
  const cases = [
    [5, 1000, [0.5, 0, 0.5, 1, 0.25]],
    [3, 4097, undefined],
    [2, 262144, [0.5, 0.5]],
  ] as const;

  it.each(cases)('BCE R=%i P=%i weights=%j: loss and dlogits match float64', async (R, P, wts) => {
    const rt = await runtime();
    const { x, t } = inputs(R, P, P);
    const lt = Tensor.from(rt, x, [R, P]);
    const tt = Tensor.from(rt, t, [R, P]);
    const wt = wts ? Tensor.from(rt, wts, [R]) : undefined;
    const loss = await bceWithLogits(lt, tt, wt).toArray();
    expect(loss.length).toBe(1);
    const ref = bceRef(x, t, R, P, wts);
    expect(rel(loss[0], ref), `bce ${loss[0]} vs ${ref}`).toBeLessThan(TOL.reduction);
    const dx = await bceWithLogitsBackward(lt, tt, 1.7, wt).toArray();
    expectClose(dx, bceBackwardRef(x, t, R, P, 1.7, wts), { label: 'bce dlogits', relL2: TOL.elementwise * 4 });
  });

  it.each(cases)('Dice R=%i P=%i weights=%j: loss and dlogits match float64', async (R, P, wts) => {
    const rt = await runtime();
    const { x, t } = inputs(R, P, P + 7);
    const lt = Tensor.from(rt, x, [R, P]);
    const tt = Tensor.from(rt, t, [R, P]);
    const wt = wts ? Tensor.from(rt, wts, [R]) : undefined;
    const loss = await diceLoss(lt, tt, 1, wt).toArray();
    const ref = diceRef(x, t, R, P, 1, wts);
    expect(rel(loss[0], ref), `dice ${loss[0]} vs ${ref}`).toBeLessThan(TOL.reduction);
    const dx = await diceLossBackward(lt, tt, 0.8, 1, wt).toArray();
    expectClose(dx, diceBackwardRef(x, t, R, P, 0.8, 1, wts), { label: 'dice dlogits', relL2: TOL.reduction });
  });

  it('backward references agree with central differences of the float64 losses', () => {
    const [R, P] = [3, 40];
    const { x, t } = inputs(R, P, 99);
    const w = [1, 0, 0.5];
    const x64 = Float64Array.from(x, (v) => v / 3); // keep sigmoid away from saturation
    const idx = [0, 17, P, 2 * P + 5, R * P - 1];
    const gb = bceBackwardRef(x64, t, R, P, 1.3, w);
    finiteDiff((v) => 1.3 * bceRef(v, t, R, P, w), x64, idx).forEach((fd, k) => expect(Math.abs(fd - gb[idx[k]])).toBeLessThan(1e-8));
    const gd = diceBackwardRef(x64, t, R, P, 0.9, 0.5, w);
    finiteDiff((v) => 0.9 * diceRef(v, t, R, P, 0.5, w), x64, idx).forEach((fd, k) => expect(Math.abs(fd - gd[idx[k]])).toBeLessThan(1e-8));
    // The weight-0 row gets no gradient.
    expect(gb[P + 3]).toBe(0);
    expect(gd[P + 3]).toBe(0);
  });

  it('BCE stays accurate for confident logits (log(1 + exp(-|x|)) for large |x|)', async () => {
    const rt = await runtime();
    const x = Float32Array.from({ length: 64 }, (_, i) => (i % 2 ? 1 : -1) * (12 + i / 4));
    const t = Float32Array.from({ length: 64 }, (_, i) => (i % 2 ? 1 : 0));
    const loss = await bceWithLogits(Tensor.from(rt, x, [1, 64]), Tensor.from(rt, t, [1, 64])).toArray();
    const ref = bceRef(x, t, 1, 64);
    expect(rel(loss[0], ref), `bce ${loss[0]} vs ${ref}`).toBeLessThan(1e-5);
  });

  it('folds more than 65535 row chunks into a 2-D grid', async () => {
    const rt = await runtime();
    const [R, P] = [65600, 3];
    const { x, t } = inputs(R, P, 5);
    const lt = Tensor.from(rt, x, [R, P]);
    const tt = Tensor.from(rt, t, [R, P]);
    const loss = await bceWithLogits(lt, tt).toArray();
    expect(rel(loss[0], bceRef(x, t, R, P))).toBeLessThan(TOL.reduction);
    const dx = await diceLossBackward(lt, tt, 1, 1).toArray();
    expectClose(dx, diceBackwardRef(x, t, R, P, 1, 1), { label: 'dice dlogits 65600 rows', relL2: TOL.reduction });
  });
});
