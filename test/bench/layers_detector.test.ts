// `grounded-sd bench layers --model detector`: the CI smoke test at 32x32 with random
// weights and at most 2 detections (in-process through the CLI): every stage present as
// a profiler model, the module scopes the model opens (ResNet blocks, FPN blocks, RPN
// levels, RoI pools, heads), the box and mask heads' matmul FLOPs equal to the analytic
// count from the pass's own proposal and detection numbers, throughput fields; option
// mistakes refused before anything runs.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DETECTOR_STAGES } from '../../src/bench/layers_detector.js';
import type { LayersReport } from '../../src/bench/layers_report.js';
import { benchCommand } from '../../src/cli/bench.js';
import { runCommand } from '../../src/cli/main.js';
import { capture } from '../cli/capture.js';

const dir = mkdtempSync(join(tmpdir(), 'bench-det-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const run = (args: string[]) => capture(() => runCommand('bench', benchCommand, args));

describe('bench layers --model detector', () => {
  it('refuses option mistakes before running', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--model', 'detector'], /--model detector needs --detector CKPT/],
      [['--model', 'tiny', '--detector', 'random'], /--detector: only with --model detector/],
      [['--model', 'detector', '--detector', 'random', '--dtype', 'f16'], /--dtype: not with --model detector/],
      [['--model', 'detector', '--detector', join(dir, 'none.pth')], /--detector .*none\.pth does not exist/],
      [['--model', 'detector', '--detector', 'random', '--detector-arch', 'v3'], /--detector-arch must be v1 or v2/],
      [['--model', 'detector', '--detector', 'random', '--size', '16'], /--size needs an integer >= 32/],
      [['--model', 'detector', '--detector', 'random', '--max-detections', '0'], /--max-detections needs an integer >= 1/],
    ];
    for (const [args, msg] of cases) {
      const r = await run(['layers', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err.join('\n'), args.join(' ')).toMatch(msg);
    }
  });

  it('profiles every stage with module scopes; head FLOPs match the pass\'s proposals and detections (CI smoke test)', async () => {
    const json = join(dir, 'det.json');
    const r = await run(['layers', '--model', 'detector', '--detector', 'random', '--size', '32', '--max-detections', '2', '--json', json]);
    expect(r.code, r.err.join('\n')).toBe(0);
    const report = JSON.parse(readFileSync(json, 'utf8')) as LayersReport;
    const s = report.summary;
    const d = s.detector;
    expect(d).toBeDefined();
    if (!d) return;
    expect(d).toMatchObject({ weights: 'random', arch: 'v1', sha256: null, timed_images: 1 });
    expect(d.proposals).toBeGreaterThan(0);
    expect(d.detections).toBeGreaterThanOrEqual(1);
    expect(d.detections).toBeLessThanOrEqual(2);
    expect(d.images_per_second).toBeCloseTo(1 / d.seconds_per_image, 9);
    expect(d.seconds_per_image).toBeGreaterThan(0);
    for (const v of Object.values(d.host_ms)) expect(v).toBeGreaterThanOrEqual(0);
    // Every stage ran, in order, and nothing outside them.
    expect(s.models.map((m) => m.model)).toEqual([...DETECTOR_STAGES]);
    expect(new Set(report.rows.map((row) => row.model))).toEqual(new Set(DETECTOR_STAGES));
    const modules = (m: string) => new Set(report.rows.filter((row) => row.model === m).map((row) => row.module));
    const blocks = [3, 4, 6, 3].flatMap((n, l) => Array.from({ length: n }, (_, i) => `layer${l + 1}.${i}`));
    expect(modules('det_backbone')).toEqual(new Set(['conv1', ...blocks]));
    expect(modules('det_fpn')).toEqual(new Set(['inner_blocks.0', 'inner_blocks.1', 'inner_blocks.2', 'inner_blocks.3', 'layer_blocks.0', 'layer_blocks.1', 'layer_blocks.2', 'layer_blocks.3', 'pool']));
    expect(modules('det_rpn')).toEqual(new Set(['head.level_0', 'head.level_1', 'head.level_2', 'head.level_3', 'head.level_pool']));
    expect(modules('det_box_head')).toEqual(new Set(['box_roi_pool', 'box_head', 'box_predictor']));
    expect(modules('det_mask_head')).toEqual(new Set(['mask_roi_pool', 'mask_head', 'mask_predictor']));
    expect(modules('det_postprocess')).toEqual(new Set(['paste_masks']));
    // Analytic matmul FLOPs of the heads (v1, 91 classes): box head fc6 12544->1024, fc7
    // 1024->1024, predictor 1024->91 and 1024->364 per proposal; mask head four 3x3
    // 256->256 convs on 14x14, ConvTranspose 2x2 (256 -> 4*256 on 14x14), 1x1 256->91 on
    // 28x28 per detection.
    const matmulFlops = (m: string) => report.rows.filter((row) => row.model === m && row.op === 'matmul').reduce((a, row) => a + row.flops, 0);
    expect(matmulFlops('det_box_head')).toBe(2 * d.proposals * (12544 * 1024 + 1024 * 1024 + 1024 * 91 + 1024 * 364));
    expect(matmulFlops('det_mask_head')).toBe(2 * d.detections * (4 * 196 * 256 * 2304 + 196 * 1024 * 256 + 784 * 91 * 256));
    for (const m of s.models) {
      expect(m.gpu_ms, m.model).toBeGreaterThan(0);
      expect(s.efficiency[m.model], m.model).toBeCloseTo(m.gflops / s.matmul_gflops, 9);
    }
    expect(r.out.join('\n')).toMatch(/Detector v1 \(random\): \d+ proposals, [12] detections; [\d.]+ images\/s/);
  });
});
