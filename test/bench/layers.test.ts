// `grounded-sd bench layers`: the CI smoke test (the tiny models with the grounding
// backward, in-process through the CLI, every field of every row checked, module paths
// checked against the models' own parameter names), --dtype f16 (and its refusal without
// shader-f16), the wall-clock fallback's replay (values and attribution as without it),
// and the pure arithmetic of the report on made-up dispatches.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { benchLayers, layerModels } from '../../src/bench/layers.js';
import {
  attribute, buildRows, chartOps, formatMarkdown, modelSummaries, opTotals, splitSegments, TOP_LEVEL,
  type LayerRow, type LayersReport, type OpTotal,
} from '../../src/bench/layers_report.js';
import type { ProbeResult } from '../../src/bench/report.js';
import { benchCommand } from '../../src/cli/bench.js';
import { LimitError } from '../../src/gpu/errors.js';
import { acquireGpu } from '../../src/gpu/device.js';
import type { DispatchInfo, DispatchTiming } from '../../src/gpu/profiler.js';
import { Runtime } from '../../src/gpu/runtime.js';
import { CLIPTextModel } from '../../src/models/clip.js';
import { Linear } from '../../src/models/layers/linear.js';
import { moduleScope, nameModules } from '../../src/models/layers/module_scope.js';
import { GroupNorm } from '../../src/models/layers/norms.js';
import { TINY_CONFIGS } from '../../src/models/sd.js';
import { UNet2DConditionModel } from '../../src/models/unet/index.js';
import { AutoencoderKL } from '../../src/models/vae/vae.js';
import { Module, namedParams } from '../../src/nn/module.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { randomArray, requireF16, runtime } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'bench-layers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ROW_NUMBERS = ['ms', 'flops', 'bytes', 'gflops', 'gbps', 'roofline_pct', 'share', 'model_share', 'calls'] as const;

describe('bench layers --model tiny --backward (CI smoke test)', () => {
  it('writes rows with every field, shares summing to 1, analytic matmul FLOPs, every model and the summary', async () => {
    const json = join(dir, 'layers.json');
    const md = join(dir, 'layers.md');
    const png = join(dir, 'layers.png');
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    const progress = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    let code: number;
    try {
      code = await benchCommand.run(['layers', '--model', 'tiny', '--backward', '--json', json, '--markdown', md, '--png', png]);
    } finally {
      log.mockRestore();
      progress.mockRestore();
    }
    expect(code).toBe(0);
    const report = JSON.parse(readFileSync(json, 'utf8')) as LayersReport;
    const { rows, summary } = report;
    expect(rows.length).toBeGreaterThan(100);
    for (const r of rows) {
      for (const k of ['model', 'module', 'op', 'shape', 'kernel'] as const) expect(typeof r[k], `${k} of ${JSON.stringify(r)}`).toBe('string');
      expect(r.dtype).toBe('f32');
      expect(r.module.length).toBeGreaterThan(0);
      for (const k of ROW_NUMBERS) expect(Number.isFinite(r[k]) && r[k] >= 0, `${k} of ${JSON.stringify(r)}`).toBe(true);
      expect(r.share).toBeLessThanOrEqual(1);
      expect(r.gflops).toBeCloseTo(r.ms > 0 ? r.flops / 1e6 / r.ms : 0, 6);
    }
    expect(rows.reduce((a, r) => a + r.share, 0)).toBeCloseTo(1, 9);
    // Matmul rows: FLOPs = calls * 2*B*M*N*K of the shape they print.
    const matmuls = rows.filter((r) => r.op === 'matmul');
    expect(matmuls.length).toBeGreaterThan(20);
    for (const r of matmuls) {
      const m = r.shape.match(/^B(\d+) M(\d+) N(\d+) K(\d+)/);
      expect(m, r.shape).not.toBeNull();
      const [B, M, N, K] = (m as RegExpMatchArray).slice(1).map(Number);
      expect(r.flops).toBe(r.calls * 2 * B * M * N * K);
    }
    const models = layerModels(true);
    expect([...new Set(rows.map((r) => r.model))].sort()).toEqual([...models].sort());
    expect(summary.models.map((m) => m.model).sort()).toEqual([...models].sort());
    for (const m of summary.models) {
      expect(m.dispatches).toBeGreaterThan(0);
      for (const v of [m.gpu_ms, m.flops, m.host_ms, m.host_us_per_dispatch, m.wall_ms, m.peak_bytes]) expect(Number.isFinite(v) && v >= 0).toBe(true);
    }
    expect(summary.timing).toBe('timestamp');
    expect(summary.matmul_gflops).toBeGreaterThan(0);
    for (const k of ['text_encoder', 'unet', 'vae_decoder'] as const) {
      expect(Number.isFinite(summary.efficiency[k]) && summary.efficiency[k] > 0, `efficiency.${k}`).toBe(true);
    }
    expect(summary.peak_bytes).toBeGreaterThan(0);
    expect(Number.isFinite(summary.probe.fma_gflops) && Number.isFinite(summary.probe.copy_gbps)).toBe(true);
    const opShares = new Map<string, number>();
    for (const o of summary.ops) opShares.set(o.model, (opShares.get(o.model) ?? 0) + o.share);
    for (const s of opShares.values()) expect(s).toBeCloseTo(1, 9);

    // Module paths are the models' own names: the weights of a conv2d row's module are 4-D
    // parameters, a matmul row sits in a module with weights, the attention of a UNet
    // transformer block in attn1 / attn2.
    const params = new Set([
      ...[...namedParams(new CLIPTextModel(TINY_CONFIGS.text_encoder)).keys()],
      ...[...namedParams(new UNet2DConditionModel(TINY_CONFIGS.unet)).keys()],
      ...[...namedParams(new AutoencoderKL(TINY_CONFIGS.vae)).keys()],
    ]);
    const sd = rows.filter((r) => ['text_encoder', 'unet', 'vae_decoder', 'vae_encoder'].includes(r.model));
    for (const r of sd.filter((x) => x.op === 'conv2d')) expect(params.has(`${r.module}.weight`), r.module).toBe(true);
    for (const r of sd.filter((x) => x.op === 'matmul')) {
      expect(params.has(`${r.module}.weight`) || params.has(`${r.module}.to_q.weight`), r.module).toBe(true);
    }
    const unetAttention = rows.filter((r) => r.model === 'unet' && r.op === 'attention');
    expect(unetAttention.length).toBeGreaterThan(0);
    for (const r of unetAttention) expect(r.module).toMatch(/\.transformer_blocks\.\d+\.attn[12]$/);
    expect(rows.some((r) => r.model === 'text_encoder' && r.module === 'text_model.encoder.layers.0.self_attn' && r.op === 'attention')).toBe(true);
    expect(rows.some((r) => r.model === 'vae_decoder' && r.module === 'decoder.mid_block.attentions.0.to_q')).toBe(true);
    expect(rows.some((r) => r.model === 'grounding_optimizer' && r.op === 'optimizer')).toBe(true);

    const text = readFileSync(md, 'utf8');
    for (const m of models) expect(text).toContain(`**${m}**`);
    const img = PNG.sync.read(readFileSync(png));
    expect(img.width).toBeGreaterThan(200);
    expect(img.height).toBeGreaterThan(100);
  }, 600_000);

  it('--dtype f16 runs the SD models in f16 and the grounding module in f32', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    rt.poison = false;
    const { rows, summary } = await benchLayers(rt, { model: 'tiny', size: 64, backward: false, dtype: 'f16', warmup: 0 });
    expect(summary.dtype).toBe('f16');
    const mm = (model: string) => rows.filter((r) => r.model === model && r.op === 'matmul');
    for (const model of ['text_encoder', 'unet', 'vae_decoder']) {
      expect(mm(model).length, model).toBeGreaterThan(0);
      expect(mm(model).every((r) => r.dtype === 'f16'), model).toBe(true);
    }
    expect(mm('grounding').length).toBeGreaterThan(0);
    expect(mm('grounding').every((r) => r.dtype === 'f32')).toBe(true);
    // f16 bytes: 2 per element of a, b and the output (+ the bias) of the UNet's to_q.
    const q = mm('unet').find((r) => r.module.endsWith('attn1.to_q'));
    const [B, M, N, K] = (q?.shape.match(/^B(\d+) M(\d+) N(\d+) K(\d+)/) ?? []).slice(1).map(Number);
    expect(q?.bytes).toBe((q?.calls ?? 0) * 2 * (B * M * K + K * N + B * M * N));
    expect(summary.notes.some((n) => n.includes('grounding module runs in f32'))).toBe(true);
  }, 600_000);

  it('refuses --dtype f16 on an adapter without shader-f16, before running anything', async () => {
    const rt = new Runtime({ ...(await acquireGpu()), hasF16: false });
    try {
      const run = benchLayers(rt, { model: 'tiny', size: 64, backward: false, dtype: 'f16', warmup: 0 });
      await expect(run).rejects.toThrow(LimitError);
      await expect(benchLayers(rt, { model: 'tiny', size: 64, backward: false, dtype: 'f16', warmup: 0 })).rejects.toThrow(/shader-f16.*--dtype f32/);
      expect(rt.recorder.dispatchesTotal).toBe(0);
    } finally {
      rt.destroy();
    }
  });
});

class Tiny extends Module {
  proj = new Linear(8, 12);
  norm = new GroupNorm(4, 12);
}

describe('wall-clock fallback (an adapter without timestamp-query)', () => {
  it('replays held submits and uploads in order: same values, one timed segment per scope', async () => {
    // A device seen as one without timestamp-query.
    const rt = new Runtime({ ...(await acquireGpu()), hasTimestamps: false });
    try {
      expect(rt.profiler).toBeNull();
      const m = new Tiny();
      nameModules(m, 'tiny');
      const w = randomArray(12 * 8, 1);
      const b = randomArray(12, 2);
      m.proj.weight.set(Tensor.from(rt, w, [12, 8]));
      m.proj.bias?.set(Tensor.from(rt, b, [12]));
      m.norm.weight.set(Tensor.from(rt, new Float32Array(12).fill(1), [12]));
      m.norm.bias.set(Tensor.from(rt, new Float32Array(12).fill(0), [12]));
      const xs = [randomArray(3 * 8, 3), randomArray(3 * 8, 4)];
      const run = () => {
        // x2 reuses x1's pooled buffer while the first product is still unsubmitted: the
        // upload must wait for it (held in order), or y1 would read x2.
        const x1 = Tensor.from(rt, xs[0], [3, 8]);
        const y1 = m.proj.forward(x1);
        x1.dispose();
        const x2 = Tensor.from(rt, xs[1], [3, 8]);
        const y2 = m.proj.forward(x2);
        x2.dispose();
        return [y1, m.norm.forward(y2.reshape([3, 12, 1]))];
      };
      const plain = await Promise.all(run().map((t) => t.toArray()));
      const prof = rt.useWallProfiler();
      expect(prof.timestamps).toBe(false);
      expect(rt.profiler).toBe(prof);
      prof.detail = true;
      prof.enabled = true;
      let outs: Tensor[];
      try {
        outs = run();
        expect(prof.scope).toBe('');
        await rt.sync();
      } finally {
        prof.enabled = false;
      }
      const got = await Promise.all(outs.map((t) => t.toArray()));
      expect(got).toEqual(plain);
      // The reference for y1: x W^T + b in float64.
      const ref = Array.from({ length: 36 }, (_, i) => {
        const [r, o] = [Math.floor(i / 12), i % 12];
        let acc = b[o];
        for (let k = 0; k < 8; k++) acc += xs[0][r * 8 + k] * w[o * 8 + k];
        return acc;
      });
      for (let i = 0; i < 36; i++) expect(got[0][i]).toBeCloseTo(ref[i], 4);
      const recs = await prof.collectDispatches();
      const scoped = recs.filter((r) => r.scope !== '');
      expect(scoped.map((r) => r.scope)).toEqual(['tiny.proj', 'tiny.proj', 'tiny.norm', 'tiny.norm', 'tiny.norm']);
      const segs = new Set(scoped.map((r) => r.segment));
      expect(segs.size).toBe(3); // proj | (x2's upload) proj | norm
      for (const r of scoped) {
        expect(r.segment).toBeGreaterThanOrEqual(0);
        expect(r.segmentMs).toBeGreaterThan(0);
        expect(r.info?.entry).toBeDefined();
      }
      for (const s of segs) {
        const mine = scoped.filter((r) => r.segment === s);
        expect(mine.reduce((a, r) => a + r.ms, 0)).toBeCloseTo(mine[0].segmentMs, 9);
      }
      for (const t of [...outs]) t.dispose();
    } finally {
      rt.destroy();
    }
  });

  it('moduleScope opens no scope while profiling is off', async () => {
    const rt = await runtime();
    {
      const prof = rt.profiler ?? rt.useWallProfiler();
      const m = new Tiny();
      nameModules(m);
      expect(moduleScope(m.proj, rt, () => prof.scope)).toBe('');
      prof.enabled = true;
      try {
        expect(moduleScope(m.proj, rt, () => prof.scope)).toBe('proj');
        expect(moduleScope(new Linear(2, 2), rt, () => prof.scope)).toBe(''); // never named
      } finally {
        prof.enabled = false;
      }
    }
  });
});

// ---- pure report arithmetic on made-up dispatches ----

const PROBE: ProbeResult = { fmaGflops: 10, copyGbps: 5, timing: 'timestamp' };

function info(entry: string, params: number[], overrides: Record<string, number> = {}, uniqueBytes = 0, pipelineMs = 0): DispatchInfo {
  return { family: entry.split('_')[0], entry, dtype: 'f32', overrides, params, bindingBytes: [], uniqueBytes, pipelineMs };
}
const rec = (scope: string, i: DispatchInfo | null, ms: number, hostAt: number, segment = -1, segmentMs = 0): DispatchTiming =>
  ({ scope, label: i?.entry ?? 'x', info: i, ms, hostAt, segment, segmentMs });

describe('layers report', () => {
  const mm = info('matmul_forward', [4, 8, 16, 2, 64, 0, 1, 1], {});
  const un = info('unary_forward', [100], {}, 800);
  const records = [
    rec('unet/down_blocks.0/down_blocks.0.resnets.0.conv1', mm, 2, 0, -1),
    rec('unet/down_blocks.0/down_blocks.0.resnets.0.conv1', mm, 1, 1, -1),
    rec('unet/down_blocks.0', un, 1, 2.5, -1, 0),
    rec('unet', un, 1, 3, -1),
    rec('', un, 5, 10, -1),
  ];

  it('attributes model and module from the scope path and aggregates rows', () => {
    const ds = attribute(records, 'grounding_backward');
    expect(ds.map((d) => [d.model, d.module])).toEqual([
      ['unet', 'down_blocks.0.resnets.0.conv1'], ['unet', 'down_blocks.0.resnets.0.conv1'], ['unet', 'down_blocks.0'],
      ['unet', TOP_LEVEL], ['grounding_backward', TOP_LEVEL],
    ]);
    const rows = buildRows(ds, PROBE);
    const conv1 = rows[0] as LayerRow;
    expect(conv1).toMatchObject({ module: 'down_blocks.0.resnets.0.conv1', op: 'matmul', calls: 2, ms: 3, flops: 2 * 2 * 2 * 4 * 8 * 16 });
    expect(conv1.share).toBeCloseTo(3 / 10, 12);
    expect(conv1.model_share).toBeCloseTo(3 / 5, 12);
    expect(conv1.gflops).toBeCloseTo(conv1.flops / 1e6 / 3, 12);
    // Roofline: the slower of compute (flops / 10 GFLOP/s) and memory (bytes / 5 GB/s).
    const roof = 1000 * Math.max(conv1.flops / 1e10, conv1.bytes / 5e9);
    expect(conv1.roofline_pct).toBeCloseTo((100 * roof) / 3, 9);
    const ops: OpTotal[] = opTotals(rows, PROBE);
    expect(ops.filter((o) => o.model === 'unet').map((o) => [o.op, o.ms, o.calls])).toEqual([['matmul', 3, 2], ['elementwise', 2, 2]]);
    expect(chartOps(ops)).toEqual(['elementwise', 'matmul']);
  });

  it('sums host gaps per model less pipeline creation, and splits wall segments by roofline time', () => {
    const withPipeline = [rec('m', info('unary_forward', [10], {}, 80, 0.5), 1, 0), rec('m', info('unary_forward', [10], {}, 80, 0.25), 1, 2)];
    withPipeline.push(rec('m', info('unary_forward', [10], {}, 80), 1, 2.75));
    const [s] = modelSummaries(attribute(withPipeline, 'x'), new Map([['m', { wallMs: 9, peakBytes: 7 }]]));
    expect(s.host_ms).toBeCloseTo(2.75 - 0.75, 12);
    expect(s.host_us_per_dispatch).toBeCloseTo(1000 * 2 / 2, 9);
    expect(s).toMatchObject({ model: 'm', dispatches: 3, gpu_ms: 3, wall_ms: 9, peak_bytes: 7, pipeline_ms: 0.75 });

    const big = info('unary_forward', [300], {}, 2400);
    const small = info('unary_forward', [100], {}, 800);
    const wall = attribute([rec('a', big, 3, 0, 4, 8), rec('a', small, 3, 1, 4, 8), rec('b', small, 6, 2, 5, 6)], 'x');
    splitSegments(wall, PROBE);
    expect(wall.map((d) => d.ms)).toEqual([6, expect.closeTo(2, 12), 6]);
  });

  it('formats the top layers and op totals of each model as markdown tables', () => {
    const ds = attribute(records, 'grounding_backward');
    const rows = buildRows(ds, PROBE);
    const models = modelSummaries(ds, new Map());
    const report: LayersReport = {
      rows,
      summary: {
        adapter: 'test', date: '2026-01-01', model: 'tiny', size: 64, dtype: 'f32', backward: false, warmup: 0,
        timing: 'timestamp', timing_note: 'n', probe: { fma_gflops: 10, copy_gbps: 5 }, matmul_case: 'matmul 1024x1024x1024',
        matmul_gflops: 4, efficiency: { text_encoder: 0, unet: 0.5, vae_decoder: 0 }, peak_bytes: 2 ** 20, total_ms: 10,
        host_ms: 1, host_us_per_dispatch: 1, models, ops: opTotals(rows, PROBE), notes: ['a note'],
      },
    };
    const md = formatMarkdown(report, 1);
    expect(md).toContain('**unet**: top 1 layers by GPU time');
    expect(md).toContain('| down_blocks.0.resnets.0.conv1 | matmul | B2 M4 N8 K16 | 2 | 3.00 |');
    expect(md).toContain('| unet | 5.0 |');
    expect(md).toContain('| 50.0% |');
    expect(md).toContain('- a note');
  });
});
