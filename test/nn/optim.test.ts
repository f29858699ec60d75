import { describe, expect, it } from 'vitest';
import { Adam, AdamW, adamUpdate } from '../../src/nn/optim.js';
import { slice } from '../../src/nn/layout.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { adamRef } from '../../src/ref/optim.js';
import { expectClose, randomArray, runtime } from '../helpers.js';

describe('optim', () => {
  const steps = 5;
  const n = 1031;
  const grads = Array.from({ length: steps }, (_, k) => randomArray(n, 100 + k, -2, 2));
  // Tiny gradients too: eps matters there.
  grads[1].subarray(0, 50).forEach((_, i, a) => (a[i] *= 1e-7));

  it.each([
    ['Adam', { lr: 1e-3, weightDecay: 0 }],
    ['Adam + L2', { lr: 1e-2, weightDecay: 0.1 }],
    ['AdamW', { lr: 1e-2, weightDecay: 0.05 }],
  ] as const)('%s matches the float64 reference of torch over several steps', async (kind, o) => {
    const rt = await runtime();
    const p0 = randomArray(n, 7);
    const p = Tensor.from(rt, p0, [n]);
    const Opt = kind === 'AdamW' ? AdamW : Adam;
    const opt = new Opt(new Map([['w', p]]), { lr: o.lr, betas: [0.9, 0.999], eps: 1e-8, weightDecay: o.weightDecay });
    const ref = adamRef(p0, grads, { lr: o.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: o.weightDecay, decoupled: kind === 'AdamW' });
    for (let k = 0; k < steps; k++) {
      opt.update(new Map([['w', Tensor.from(rt, grads[k], [n])]]));
      const got = await p.toArray();
      const upd = Float64Array.from(got, (x, i) => x - (k === 0 ? p0[i] : ref[k - 1].param[i]));
      const refUpd = ref[k].param.map((x, i) => x - (k === 0 ? p0[i] : ref[k - 1].param[i]));
      // The update itself (not the parameter, whose size hides it) against the reference.
      expectClose(upd, refUpd, { label: `${kind} step ${k + 1} update`, relL2: 1e-4 });
    }
    const st = opt.state();
    expect(st.step).toBe(steps);
    expectClose(await st.expAvg.get('w')!.toArray(), ref[steps - 1].m, { label: 'exp_avg', relL2: 1e-6 });
    expectClose(await st.expAvgSq.get('w')!.toArray(), ref[steps - 1].v, { label: 'exp_avg_sq', relL2: 1e-6 });
    opt.dispose();
  });

  it('state exports and reloads (checkpoint resume gives the same next step)', async () => {
    const rt = await runtime();
    const p0 = randomArray(n, 8);
    const a = Tensor.from(rt, p0, [n]);
    const b = Tensor.from(rt, p0, [n]);
    const optA = new Adam(new Map([['w', a]]), { lr: 1e-3 });
    const optB = new Adam(new Map([['w', b]]), { lr: 1e-3 });
    optA.update(new Map([['w', Tensor.from(rt, grads[0], [n])]]));
    optB.update(new Map([['w', Tensor.from(rt, grads[0], [n])]]));
    const s = optA.state();
    // Round trip through host arrays, as a checkpoint file would.
    const host = async (t: Tensor) => Tensor.from(rt, await t.toArray(), [n]);
    optB.loadState({ step: s.step, expAvg: new Map([['w', await host(s.expAvg.get('w')!)]]), expAvgSq: new Map([['w', await host(s.expAvgSq.get('w')!)]]) });
    optA.update(new Map([['w', Tensor.from(rt, grads[1], [n])]]));
    optB.update(new Map([['w', Tensor.from(rt, grads[1], [n])]]));
    expect(Array.from(await b.toArray())).toEqual(Array.from(await a.toArray()));
  });

  it('crosses 65535 workgroups (folded 2-D grid)', async () => {
    const rt = await runtime();
    const big = 65536 * 256 + 3;
    const p = Tensor.zeros(rt, [big]);
    const g = Tensor.zeros(rt, [big]);
    g.fillBits(0x3f800000); // 1.0
    const m = Tensor.zeros(rt, [big]);
    const v = Tensor.zeros(rt, [big]);
    adamUpdate(p, g, m, v, { lr: 0.5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: false, step: 1 });
    // First step with g = 1: -lr * 1 / (1 + eps); read back only the ends and the fold.
    for (const i of [0, 65535 * 256, big - 1]) expect((await slice(p, 0, i, i + 1).toArray())[0]).toBeCloseTo(-0.5, 6);
  });
});
