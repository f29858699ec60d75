// The benchmark's pure parts: statistics, roofline arithmetic, targets, table, JSON
// shape and the PNG chart. No adapter needed.
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import {
  chartPng, evaluateTargets, formatTable, formatTargets, makeRow, metaPath, rooflineMs, stats, writeJsonAtomic,
  type BenchRow, type ProbeResult, type RowInput,
} from '../../src/bench/report.js';

const probe: ProbeResult = { fmaGflops: 20, copyGbps: 4, timing: 'timestamp' };

function input(over: Partial<RowInput> = {}): RowInput {
  return {
    family: 'matmul', op: 'matmul', shape: '100x100x100', flops: 2e6, bytes: 1.2e5, reps: 3, timing: 'timestamp',
    samples: [2, 1, 3], wallSamples: [2.5, 2.5], peerSamples: [4, 5, 6], peerWallSamples: [6],
    relL2: 1e-7, valid: true, error: null, ...over,
  };
}

describe('bench report', () => {
  it('stats: median of odd and even counts, min', () => {
    expect(stats([3, 1, 2])).toEqual({ median: 2, min: 1 });
    expect(stats([4, 1, 3, 2])).toEqual({ median: 2.5, min: 1 });
    expect(stats([7])).toEqual({ median: 7, min: 7 });
    expect(() => stats([])).toThrow(RangeError);
  });

  it('roofline time is the slower of compute and memory', () => {
    // 2e9 flops at 20 GFLOP/s = 100 ms; 4e8 bytes at 4 GB/s = 100 ms; 8e8 bytes = 200 ms.
    expect(rooflineMs(2e9, 4e8, probe)).toBeCloseTo(100, 9);
    expect(rooflineMs(2e9, 8e8, probe)).toBeCloseTo(200, 9);
    expect(rooflineMs(4e9, 1, probe)).toBeCloseTo(200, 9);
  });

  it('makeRow: GFLOP/s, GB/s, roofline % and speedup from the medians', () => {
    const r = makeRow(input(), probe);
    expect(r.ms).toBe(2);
    expect(r.min_ms).toBe(1);
    expect(r.gflops).toBeCloseTo(1, 12); // 2e6 flops in 2 ms
    expect(r.gbps).toBeCloseTo(0.06, 12); // 1.2e5 bytes in 2 ms
    // bound: max(2e6 / 20e9, 1.2e5 / 4e9) s = max(0.1, 0.03) ms = 0.1 ms; 0.1 / 2 = 5 %.
    expect(r.roofline_pct).toBeCloseTo(5, 10);
    expect(r.peer_ms).toBe(5);
    expect(r.speedup).toBeCloseTo(2.5, 12);
    expect(r.wall_ms).toBe(2.5);
    expect(r.peer_wall_ms).toBe(6);
    const none = makeRow(input({ samples: null, peerSamples: null, valid: false, error: 'boom' }), probe);
    expect([none.ms, none.gflops, none.gbps, none.roofline_pct, none.speedup]).toEqual([null, null, null, null, null]);
  });

  it('targets: every row must meet the bar; no rows or no peer is n/a', () => {
    const rows = [
      makeRow(input({ peerSamples: [4] }), probe), // 2x
      makeRow(input({ peerSamples: [3.2] }), probe), // 1.6x
      // softmax: 8e6 bytes in 2 ms = 4 GB/s = 100% of copy
      makeRow(input({ op: 'softmax', bytes: 8e6, peerSamples: null }), probe),
      makeRow(input({ op: 'attention', peerSamples: null }), probe),
      makeRow(input({ op: 'conv2d', peerSamples: [10], valid: false, error: 'rel L2' }), probe),
    ];
    const res = evaluateTargets(rows, probe);
    const by = Object.fromEntries(res.map((r) => [r.label.split(' ')[0], r]));
    expect(by.matmul.met).toBe(true);
    expect(by.matmul.worst).toBeCloseTo(1.6, 12);
    expect(by.matmul.geomean).toBeCloseTo(Math.sqrt(2 * 1.6), 12);
    expect(by.conv2d.met).toBe(false); // 5x, but failed validation
    expect(by.attention.met).toBeNull();
    expect(by.softmax.met).toBe(true);
    expect(by.softmax.worst).toBeCloseTo(1, 12);
    expect(by.groupnorm.met).toBeNull();
    expect(by.groupnorm.note).toBe('no rows');
    const slow = evaluateTargets([makeRow(input({ peerSamples: [2.2] }), probe)], probe)[0];
    expect(slow.met).toBe(false);
    const text = formatTargets(res);
    expect(text).toMatch(/matmul >= 1\.5x tfjs\s+1\.60x \(geomean 1\.79x\)\s+met/);
    expect(text).toMatch(/conv2d .*NOT MET/);
    expect(text).toMatch(/softmax >= 50% of copy bandwidth\s+100%/);
  });

  it('table: one aligned line per row, failures marked', () => {
    const rows = [makeRow(input(), probe), makeRow(input({ op: 'softmax', shape: '8x1024x1024', valid: false, error: 'rel L2 1e-2' }), probe)];
    const lines = formatTable(rows).split('\n');
    expect(lines).toHaveLength(4);
    const col = (s: string) => lines[0].indexOf(s);
    // Right-aligned numeric columns end at the same place on every line.
    const end = col('speedup') + 'speedup'.length;
    expect(lines[2].slice(end - 5, end)).toBe('2.50x');
    expect(lines[3]).toContain('FAILED: rel L2 1e-2');
  });

  it('table without peer timings (tfjs not installed, or --no-peer) has no tfjs columns', () => {
    const rows = [makeRow(input({ peerSamples: null, peerWallSamples: null }), probe)];
    const [head, , line] = formatTable(rows).split('\n');
    expect(head).not.toMatch(/tfjs ms|speedup/);
    expect(head).toMatch(/roofline%\s+rel L2/);
    expect(line).toContain(rows[0].rel_l2?.toExponential(1));
    // A run that had a peer keeps the columns even where one row lacks its timing.
    expect(formatTable(rows, { peer: true }).split('\n')[0]).toMatch(/tfjs ms\s+speedup/);
  });

  it('JSON: an array of rows with the fixed keys, written atomically; meta beside it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-json-'));
    const file = join(dir, 'out.json');
    const rows: BenchRow[] = [makeRow(input(), probe), makeRow(input({ peerSamples: null }), probe)];
    await writeJsonAtomic(file, rows);
    await writeJsonAtomic(metaPath(file), { probe });
    const back = JSON.parse(readFileSync(file, 'utf8'));
    expect(Array.isArray(back)).toBe(true);
    for (const r of back) {
      for (const k of ['op', 'shape', 'ms', 'gflops', 'gbps', 'roofline_pct', 'peer_ms', 'speedup', 'min_ms', 'rel_l2', 'timing']) {
        expect(r).toHaveProperty(k);
      }
      expect(['timestamp', 'wall']).toContain(r.timing);
    }
    expect(back[1].speedup).toBeNull();
    expect(JSON.parse(readFileSync(`${file}.meta.json`, 'utf8')).probe.copyGbps).toBe(4);
    expect(readdirSync(dir).sort()).toEqual(['out.json', 'out.json.meta.json']); // no temp files left
  });

  it('PNG chart: one bar per row, a red 1.0x line, decodable', () => {
    const rows = [makeRow(input({ peerSamples: [6] }), probe), makeRow(input({ peerSamples: [1] }), probe), makeRow(input({ peerSamples: null }), probe)];
    const png = PNG.sync.read(chartPng(rows));
    expect(png.width).toBeGreaterThan(600);
    expect(png.height).toBe(44 + 3 * 26 + 40);
    const px = (x: number, y: number) => Array.from(png.data.subarray(4 * (y * png.width + x), 4 * (y * png.width + x) + 3));
    let green = 0;
    let red = 0;
    let line = 0;
    for (let i = 0; i < png.width * png.height; i++) {
      const [r, g, b] = png.data.subarray(4 * i, 4 * i + 3);
      if (r === 46 && g === 139 && b === 87) green++;
      if (r === 214 && g === 96 && b === 77) red++;
      if (r === 200 && g === 30 && b === 30) line++;
    }
    expect(green).toBeGreaterThan(100); // the 3x bar
    expect(red).toBeGreaterThan(50); // the 0.5x bar
    expect(line).toBeGreaterThan(100);
    expect(px(0, 0)).toEqual([255, 255, 255]);
  });
});
