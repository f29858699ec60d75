// `grounded-sd info` reports the kernel variants chosen for the adapter (and forced ones)
// and the subgroup-matrix probe, in a child process (each gets its own device).
import { describe, expect, it } from 'vitest';
import { defaultVariants, VARIANTS } from '../../src/gpu/variants.js';
import { spawnCli } from './capture.js';

function info(env: Record<string, string | undefined> = {}) {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  const set = (vars: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(vars)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  set(env);
  try {
    return spawnCli(['info']);
  } finally {
    set(saved);
  }
}

describe('grounded-sd info', () => {
  it('reports the variants the adapter runs and the subgroup-matrix probe', () => {
    const r = info({ GROUNDED_SD_VARIANTS: undefined });
    expect(r.code, r.stderr.join('\n')).toBe(0);
    const rep = JSON.parse(r.stdout.join('\n'));
    const expected = defaultVariants({ software: rep.isFallbackAdapter, features: new Set(rep.deviceFeatures), name: '' });
    expect(rep.kernelVariants).toEqual(expected);
    expect(Object.keys(rep.kernelVariants).sort()).toEqual(Object.keys(VARIANTS).sort());
    expect(rep.subgroupMatrix.feature).toBe('chromium-experimental-subgroup-matrix');
    expect(typeof rep.subgroupMatrix.available).toBe('boolean');
    expect(Array.isArray(rep.subgroupMatrix.configs)).toBe(true);
    // No kernel uses the feature; the report says so whether or not it is present.
    expect(rep.subgroupMatrix.used).toBe(false);
    if (!rep.subgroupMatrix.available) expect(rep.subgroupMatrix.configs).toEqual([]);
  });

  it('shows variants forced through GROUNDED_SD_VARIANTS and refuses unknown ones by name', () => {
    const r = info({ GROUNDED_SD_VARIANTS: 'matmul=tiled' });
    expect(r.code, r.stderr.join('\n')).toBe(0);
    expect(JSON.parse(r.stdout.join('\n')).kernelVariants.matmul).toBe('tiled');
    const bad = info({ GROUNDED_SD_VARIANTS: 'matmul=fast' });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.join('\n')).toMatch(/GROUNDED_SD_VARIANTS: matmul has no variant 'fast'; choose rows8 or tiled/);
  });
});
