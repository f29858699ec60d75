// The grounding benchmark: per-layer rows from profiler scopes (pure, on made-up
// timings), and one run of the tiny module on the adapter, whose rows must cover every
// module of the state dict with no dispatch left outside a module scope.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { benchGrounding, groundingRows, UNSCOPED } from '../../src/bench/grounding.js';
import type { KernelTiming } from '../../src/gpu/profiler.js';
import { Runtime } from '../../src/gpu/runtime.js';

const t = (scope: string, label: string, calls: number, totalMs: number): KernelTiming => ({ scope, label, calls, totalMs });

describe('groundingRows', () => {
  it('splits scopes into phase and layer, sums per layer, orders by parameter name', () => {
    const params = ['low_feature_conv.0.weight', 'mid_feature_mix_conv.conv1.weight', 'to_q.weight'];
    const r = groundingRows([
      t('forward/to_q', 'matmul', 1, 0.5),
      t('backward/to_q', 'matmul', 2, 1.5),
      t('forward/low_feature_conv', 'matmul', 3, 2),
      t('forward/low_feature_conv', 'resize', 1, 0.25),
      t('backward/mid_feature_mix_conv', 'conv', 4, 3),
      t('forward/output', 'matmul', 1, 0.125),
      t('forward', 'stray', 1, 1),
      t('', 'bce', 2, 0.75),
    ], params);
    expect(r.layers.map((l) => l.layer)).toEqual(['low_feature_conv', 'mid_feature_mix_conv', 'to_q', 'output', UNSCOPED]);
    expect(r.layers[0]).toEqual({ layer: 'low_feature_conv', forwardMs: 2.25, backwardMs: 0, dispatches: 4 });
    expect(r.layers[2]).toEqual({ layer: 'to_q', forwardMs: 0.5, backwardMs: 1.5, dispatches: 3 });
    expect(r.forwardMs).toBe(2.25 + 0.5 + 0.125 + 1);
    expect(r.backwardMs).toBe(4.5);
    expect(r.lossMs).toBe(0.75);
  });
});

describe('benchGrounding (tiny module)', () => {
  let rt: Runtime;
  beforeAll(async () => {
    rt = await Runtime.create();
  });
  afterAll(() => rt?.destroy());

  it('times every module forward and backward and one training step', async () => {
    const r = await benchGrounding(rt, { config: 'tiny', classes: 2, reps: 1 });
    expect(r.stepMs).toBeGreaterThan(0);
    expect(r.timestamps).toBe(rt.profiler !== null);
    if (!r.timestamps) return expect(r.layers).toEqual([]);
    const layers = r.layers.map((l) => l.layer);
    expect(layers).toEqual([
      'low_feature_conv', 'mid_feature_conv', 'mid_feature_mix_conv', 'high_feature_conv', 'high_feature_mix_conv',
      'highest_feature_conv', 'highest_feature_mix_conv',
      'transfromer_decoder.layers.0', 'transfromer_decoder.layers.1',
      'mlp.layers.0', 'mlp.layers.1', 'mlp.layers.2', 'to_k', 'to_q', 'output',
    ]);
    for (const l of r.layers) expect(l.dispatches, l.layer).toBeGreaterThan(0);
    expect(r.forwardMs).toBeGreaterThan(0);
    expect(r.backwardMs).toBeGreaterThan(0);
    const sum = (f: (l: (typeof r.layers)[number]) => number) => r.layers.reduce((a, l) => a + f(l), 0);
    expect(sum((l) => l.forwardMs)).toBeCloseTo(r.forwardMs, 9);
    expect(sum((l) => l.backwardMs)).toBeCloseTo(r.backwardMs, 9);
    expect(r.lossMs).toBeGreaterThan(0);
  });

  it('`grounded-sd bench grounding --help` prints its usage', () => {
    const out = execFileSync('node', ['bin/grounded-sd.mjs', 'bench', 'grounding', '--help'], { encoding: 'utf8' });
    expect(out).toMatch(/usage: grounded-sd bench grounding \[--json FILE\]/);
    expect(out).toMatch(/--config C/);
  });
});
