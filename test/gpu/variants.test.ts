// Kernel variant selection (gpu/variants.ts): the per-adapter defaults, overrides and
// their refusals, and the runtime wiring (Runtime.create({ variants }), rt.variants).
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/gpu/errors.js';
import { Runtime } from '../../src/gpu/runtime.js';
import { debugFlags } from '../../src/gpu/debug.js';
import { defaultVariants, KernelVariants, parseVariantList, VARIANTS } from '../../src/gpu/variants.js';

const SOFTWARE = { software: true, features: new Set(['shader-f16', 'subgroups']), name: "'lavapipe'" };
const GPU = { software: false, features: new Set(['shader-f16', 'subgroups']), name: "'gpu'" };
const OLD_GPU = { software: false, features: new Set<string>(), name: "'old gpu'" };

describe('kernel variants (no adapter)', () => {
  it('keeps the CPU-tuned kernels on the software adapter and picks the GPU ones elsewhere', () => {
    expect(defaultVariants(SOFTWARE)).toEqual({ matmul: 'rows8', softmax: 'tree', group_norm: 'tree', layer_norm: 'tree', attention: 'rows4', conv2d: 'auto' });
    expect(defaultVariants(GPU)).toEqual({ matmul: 'tiled', softmax: 'subgroup', group_norm: 'subgroup', layer_norm: 'subgroup', attention: 'per_tile', conv2d: 'auto' });
    // Without the subgroups feature the reductions stay on workgroup-memory trees.
    expect(defaultVariants(OLD_GPU)).toEqual({ matmul: 'tiled', softmax: 'tree', group_norm: 'tree', layer_norm: 'tree', attention: 'per_tile', conv2d: 'auto' });
    // Every default is a listed variant, the software adapter's first.
    for (const [family, names] of Object.entries(VARIANTS)) {
      expect(names).toContain(defaultVariants(GPU)[family as keyof typeof VARIANTS]);
      expect(defaultVariants(SOFTWARE)[family as keyof typeof VARIANTS]).toBe(names[0]);
    }
  });

  it('applies overrides, and refuses unknown families, unknown variants and missing features by name', () => {
    const v = new KernelVariants(SOFTWARE, { matmul: 'tiled' }, 'options.variants');
    expect(v.matmul).toBe('tiled');
    expect(v.defaults.matmul).toBe('rows8');
    v.softmax = 'subgroup';
    expect(v.toJSON()).toEqual({ matmul: 'tiled', softmax: 'subgroup', group_norm: 'tree', layer_norm: 'tree', attention: 'rows4', conv2d: 'auto' });
    expect(() => new KernelVariants(SOFTWARE, { conv: 'tiled' }, 'options.variants')).toThrow(/options\.variants: no kernel family 'conv'.*matmul: rows8\|tiled/);
    expect(() => v.set('matmul', 'tiled64')).toThrow(InputError);
    expect(() => v.set('matmul', 'tiled64')).toThrow(/matmul has no variant 'tiled64'; choose rows8 or tiled/);
    const old = new KernelVariants(OLD_GPU);
    expect(() => (old.layer_norm = 'subgroup')).toThrow(/'subgroup' needs the 'subgroups' feature, which 'old gpu' does not offer; choose tree/);
    expect(old.layer_norm).toBe('tree');
    expect(old.supports('subgroup')).toBe(false);
  });

  it('with() forces variants for one call and restores them, also on throw', () => {
    const v = new KernelVariants(GPU);
    expect(v.with({ matmul: 'rows8', group_norm: 'tree' }, () => [v.matmul, v.group_norm])).toEqual(['rows8', 'tree']);
    expect([v.matmul, v.group_norm]).toEqual(['tiled', 'subgroup']);
    expect(() => v.with({ softmax: 'tree' }, () => {
      throw new Error('boom');
    })).toThrow('boom');
    expect(v.softmax).toBe('subgroup');
  });

  it('parses GROUNDED_SD_VARIANTS lists', () => {
    expect(parseVariantList(' matmul=tiled , softmax=subgroup,', 'GROUNDED_SD_VARIANTS')).toEqual({ matmul: 'tiled', softmax: 'subgroup' });
    expect(() => parseVariantList('matmul', 'GROUNDED_SD_VARIANTS')).toThrow(/GROUNDED_SD_VARIANTS: 'matmul' is not FAMILY=VARIANT/);
    expect(debugFlags({ GROUNDED_SD_VARIANTS: 'matmul=tiled' }).variants).toBe('matmul=tiled');
    expect(debugFlags({}).variants).toBeUndefined();
  });
});

describe('kernel variants (adapter)', () => {
  it('Runtime.create({ variants }) forces a family; rt.variants is assignable', async () => {
    const rt = await Runtime.create({ variants: { matmul: 'tiled' } });
    try {
      expect(rt.variants.matmul).toBe('tiled');
      rt.variants.matmul = 'rows8';
      expect(rt.variants.toJSON().matmul).toBe('rows8');
      expect(rt.gpu.variants).toBe(rt.variants);
    } finally {
      rt.destroy();
    }
    await expect(Runtime.create({ variants: { matmul: 'fast' } })).rejects.toThrow(/options\.variants: matmul has no variant 'fast'/);
  });
});
