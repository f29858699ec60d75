// The runner end to end on the elementwise cases with tiny repetitions: the case list,
// probe, validation, both timings, the tfjs peer, and the CLI's JSON files.
// Its own runtime, not test/helpers' (that one NaN-fills new tensors, which would add
// fill dispatches to the timed runs).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../../src/gpu/runtime.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { unary } from '../../src/nn/elementwise.js';
import { kernelCases, matchesFilter, runBench, type KernelCase } from '../../src/bench/run.js';
import type { BenchCase } from '../../src/bench/kernels/types.js';
import { probeDevice } from '../../src/bench/probe.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt?.destroy());

const smallProbe = { copyBytes: 4 * 2 ** 20, minMs: 2, trials: 1 };

/** Cases that go wrong in each way the runner must survive. */
function failingCases(): KernelCase[] {
  const base = { flops: 1024, bytes: 8192 };
  const relu = (rt: Runtime, relL2: number) => {
    const x = Tensor.from(rt, new Float32Array(1024).fill(1), [1024]);
    return { run: () => unary(x, 'relu'), validate: async () => relL2, dispose: () => x.dispose() };
  };
  const cases: BenchCase[] = [
    { op: 'test', shape: 'bad reference', ...base, setup: (rt) => relu(rt, 2e-2) },
    { op: 'test', shape: 'bad setup', ...base, setup: () => { throw new Error('no such weights'); } },
    {
      op: 'test', shape: 'bad peer', ...base, setup: (rt) => relu(rt, 0),
      peer: () => ({ run: () => { throw new Error('tfjs has no such op'); }, dispose: () => undefined }),
    },
  ];
  return cases.map((bench) => ({ family: 'test', bench }));
}

describe('bench runner', () => {
  it('lists every src/bench/kernels family file, filters on family, op and shape', () => {
    const cases = kernelCases();
    const families = [...new Set(cases.map((c) => c.family))];
    const files = readdirSync(join(__dirname, '../../src/bench/kernels'))
      .filter((f) => f.endsWith('.ts') && f !== 'types.ts' && f !== 'index.ts')
      .map((f) => f.slice(0, -3))
      .sort();
    expect(families).toEqual(files);
    const ew = cases.filter((c) => c.family === 'elementwise');
    expect(ew.map((c) => c.bench.op)).toEqual(['silu', 'bias_add', 'add_silu']);
    expect(ew.filter((c) => matchesFilter(c, 'ELEMENTWISE'))).toHaveLength(3);
    expect(ew.filter((c) => matchesFilter(c, 'add_silu'))).toHaveLength(1);
    expect(ew.filter((c) => matchesFilter(c, '320x1x1'))).toHaveLength(1);
  });

  it('probe: positive FMA rate and copy bandwidth in both timing modes', async () => {
    const wall = await probeDevice(rt, 'wall', smallProbe);
    expect(wall.fmaGflops).toBeGreaterThan(0.1);
    expect(wall.copyGbps).toBeGreaterThan(0.01);
    if (rt.profiler) {
      const ts = await probeDevice(rt, 'timestamp', smallProbe);
      expect(ts.timing).toBe('timestamp');
      expect(ts.fmaGflops).toBeGreaterThan(0.1);
    }
  });

  it('validates and times a case against the tfjs peer; failures mark their rows only', async () => {
    const real = kernelCases().filter((c) => matchesFilter(c, 'add_silu'));
    const lines: string[] = [];
    const res = await runBench(rt, {
      cases: [...real, ...failingCases()], reps: 2, trials: 2, probe: smallProbe, progress: (l) => lines.push(l),
    });
    expect(res.rows).toHaveLength(4);
    const [r, badRef, badSetup, badPeer] = res.rows;
    expect(r.error).toBeNull();
    expect(r.valid).toBe(true);
    expect(r.rel_l2).toBeLessThan(1e-6);
    expect(r.timing).toBe(res.timing);
    expect(r.reps).toBe(2);
    for (const v of [r.ms, r.min_ms, r.gflops, r.gbps, r.roofline_pct, r.peer_ms, r.speedup, r.wall_ms, r.peer_wall_ms]) {
      expect(v).toBeGreaterThan(0);
    }
    expect(r.min_ms).toBeLessThanOrEqual(r.ms as number);
    expect(r.speedup).toBeCloseTo((r.peer_ms as number) / (r.ms as number), 9);
    expect(res.peer?.adapter).toBe(rt.adapterName);
    expect(lines.some((l) => l.includes('[1/4] elementwise: add_silu'))).toBe(true);

    expect(badRef.valid).toBe(false);
    expect(badRef.error).toMatch(/rel L2 2\.00e-2 > 1e-4/);
    expect(badRef.ms).toBeGreaterThan(0); // still timed, so the table shows what it costs
    expect(badSetup.valid).toBe(false);
    expect(badSetup.error).toBe('no such weights');
    expect(badSetup.ms).toBeNull();
    expect(badPeer.valid).toBe(true);
    expect(badPeer.error).toBe('peer: tfjs has no such op');
    expect(badPeer.ms).toBeGreaterThan(0);
    expect(badPeer.peer_ms).toBeNull();
    expect(badPeer.speedup).toBeNull();
  });

  it('`grounded-sd bench kernels --json` writes the row array and a meta sidecar', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-cli-'));
    const file = join(dir, 'out.json');
    const stdout = execFileSync(
      'node',
      ['bin/grounded-sd.mjs', 'bench', 'kernels', '--filter', 'add_silu', '--reps', '1', '--trials', '1', '--no-peer', '--json', file],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    expect(stdout).toMatch(/add_silu/);
    expect(stdout).toMatch(/targets:/);
    const rows = JSON.parse(readFileSync(file, 'utf8'));
    expect(rows).toHaveLength(1);
    expect(Object.keys(rows[0])).toEqual(expect.arrayContaining(['op', 'shape', 'ms', 'gflops', 'gbps', 'roofline_pct', 'peer_ms', 'speedup']));
    expect(rows[0].peer_ms).toBeNull();
    const meta = JSON.parse(readFileSync(`${file}.meta.json`, 'utf8'));
    expect(meta.probe.fmaGflops).toBeGreaterThan(0);
    expect(meta.probe.copyGbps).toBeGreaterThan(0);
    expect(typeof meta.adapter.description).toBe('string');
  });
});
