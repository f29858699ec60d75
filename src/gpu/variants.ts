// Kernel variants: for each op family that has more than one kernel, which one runs.
// The choice is made per adapter when the device is acquired: the software adapter
// (lavapipe) keeps the kernels tuned for a CPU driver, where a workgroup barrier costs
// as much as hundreds of loads (and a load is a per-lane gather unless its address is
// built from constants, docs/PERFORMANCE.md "Attention kernels"); a hardware
// adapter gets the kernels GPUs want (workgroup-memory tiles, subgroup reductions).
// Tests and benchmarks force a variant on any adapter that can run it, so CI on the
// software adapter covers the code only a GPU would pick:
//   Runtime.create({ variants: { matmul: 'tiled' } })     for a whole runtime
//   rt.variants.matmul = 'tiled'                          from now on
//   rt.variants.with({ softmax: 'subgroup' }, () => ...)  for one call
// GROUNDED_SD_VARIANTS (read in gpu/debug.ts) forces them for any command.
// Ops read their family's choice at dispatch time (nn/matmul.ts, nn/softmax.ts, ...).
import { InputError } from './errors.js';

/** Every variant of every family, the software adapter's choice first. */
export const VARIANTS = {
  /** rows8: 8 rows x 4 columns per thread, a read straight from storage (uniform over the
   *  workgroup), no workgroup memory (shaders/matmul.wgsl). tiled: 64x64 or 128x64 output
   *  tiles, 16x16 threads of 4x4 or 8x4, k tiles of 16 in workgroup memory (matmul_tiled.wgsl). */
  matmul: ['rows8', 'tiled'],
  /** tree: workgroup-memory tree reductions (softmax.wgsl). subgroup: subgroupMax /
   *  subgroupAdd, then one workgroup-memory step (softmax_subgroup.wgsl). */
  softmax: ['tree', 'subgroup'],
  /** The statistics pass of group norm, as for softmax (group_norm_subgroup.wgsl). */
  group_norm: ['tree', 'subgroup'],
  /** Layer norm's row sums, forward and input backward (layer_norm_subgroup.wgsl). */
  layer_norm: ['tree', 'subgroup'],
  /** The fused attention forward's online softmax: rows4 is per_key with four query rows
   *  per thread, so each K/V tile read feeds four rows (attention_rows4.wgsl); per_key
   *  rescales the accumulator at every key, one row per thread (attention.wgsl); per_tile
   *  takes one max and one rescale per key tile, the tile's scores kept in workgroup
   *  memory (attention_tiled.wgsl). */
  attention: ['rows4', 'per_key', 'per_tile'],
  /** The conv2d forward: direct tiles 8 output channels x 4 adjacent columns of one output
   *  row per thread over the rows of one image (conv2d.wgsl); igemm is an implicit GEMM
   *  with 8 pixels (flattened over batch and rows) per workgroup and 4 channels per lane
   *  (conv2d_igemm.wgsl); gemm copies the im2col matrix and runs the production matmul
   *  (conv2d_gemm.wgsl + matmul); auto picks per shape (nn/conv2d.ts). */
  conv2d: ['auto', 'direct', 'igemm', 'gemm'],
} as const;

export type VariantFamily = keyof typeof VARIANTS;
export type VariantName<F extends VariantFamily> = (typeof VARIANTS)[F][number];
export type VariantChoice = { -readonly [F in VariantFamily]: VariantName<F> };

/** Device features a variant needs (WGSL `enable` directives). */
const NEEDS: Partial<Record<string, string>> = { subgroup: 'subgroups' };

const FAMILIES = Object.keys(VARIANTS) as VariantFamily[];

/** What the choice depends on: the adapter kind and the features the device was created with. */
export interface VariantDevice {
  software: boolean;
  features: ReadonlySet<string>;
  /** Shown in errors, e.g. the adapter description. */
  name: string;
}

/** The variants an adapter runs unless told otherwise. */
export function defaultVariants(dev: VariantDevice): VariantChoice {
  if (dev.software) return { matmul: 'rows8', softmax: 'tree', group_norm: 'tree', layer_norm: 'tree', attention: 'rows4', conv2d: 'auto' };
  const reduction = dev.features.has('subgroups') ? 'subgroup' : 'tree';
  return { matmul: 'tiled', softmax: reduction, group_norm: reduction, layer_norm: reduction, attention: 'per_tile', conv2d: 'auto' };
}

/** Parses 'matmul=tiled,softmax=subgroup' (GROUNDED_SD_VARIANTS) into overrides. */
export function parseVariantList(text: string, where: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new InputError(`${where}: '${item}' is not FAMILY=VARIANT (e.g. matmul=tiled); families: ${describeVariants()}`);
    out[item.slice(0, eq).trim()] = item.slice(eq + 1).trim();
  }
  return out;
}

/** 'matmul: rows8|tiled; softmax: tree|subgroup; ...' for messages and usage lines. */
export function describeVariants(): string {
  return FAMILIES.map((f) => `${f}: ${VARIANTS[f].join('|')}`).join('; ');
}

/** The runtime's variant choice: one field per family, checked on every assignment. */
export class KernelVariants {
  /** What the adapter would run without overrides. */
  readonly defaults: Readonly<VariantChoice>;
  private chosen: VariantChoice;

  constructor(private readonly dev: VariantDevice, overrides: Readonly<Record<string, string | undefined>> = {}, where = 'variants') {
    this.defaults = defaultVariants(dev);
    this.chosen = { ...this.defaults };
    for (const [family, name] of Object.entries(overrides)) if (name !== undefined) this.set(family, name, where);
  }

  get matmul(): VariantName<'matmul'> { return this.chosen.matmul; }
  set matmul(v: VariantName<'matmul'>) { this.set('matmul', v); }
  get softmax(): VariantName<'softmax'> { return this.chosen.softmax; }
  set softmax(v: VariantName<'softmax'>) { this.set('softmax', v); }
  get group_norm(): VariantName<'group_norm'> { return this.chosen.group_norm; }
  set group_norm(v: VariantName<'group_norm'>) { this.set('group_norm', v); }
  get layer_norm(): VariantName<'layer_norm'> { return this.chosen.layer_norm; }
  set layer_norm(v: VariantName<'layer_norm'>) { this.set('layer_norm', v); }
  get attention(): VariantName<'attention'> { return this.chosen.attention; }
  set attention(v: VariantName<'attention'>) { this.set('attention', v); }
  get conv2d(): VariantName<'conv2d'> { return this.chosen.conv2d; }
  set conv2d(v: VariantName<'conv2d'>) { this.set('conv2d', v); }

  /** Whether this device can run the variant (its feature was requested). */
  supports(name: string): boolean {
    const need = NEEDS[name];
    return need === undefined || this.dev.features.has(need);
  }

  /** Chooses `name` for `family`; an unknown family or variant, or one the device cannot
   *  run, is an InputError naming `where` (the option it came from). */
  set(family: string, name: string, where = 'variants'): void {
    if (!(FAMILIES as string[]).includes(family)) {
      throw new InputError(`${where}: no kernel family '${family}' has variants; choose from ${describeVariants()}`);
    }
    const f = family as VariantFamily;
    const names: readonly string[] = VARIANTS[f];
    if (!names.includes(name)) throw new InputError(`${where}: ${family} has no variant '${name}'; choose ${names.join(' or ')}`);
    if (!this.supports(name)) {
      throw new InputError(`${where}: ${family} variant '${name}' needs the '${NEEDS[name]}' feature, which ${this.dev.name} does not offer; choose ${names.filter((n) => this.supports(n)).join(' or ')}`);
    }
    (this.chosen as Record<VariantFamily, string>)[f] = name;
  }

  /** Runs fn with the given families forced, then restores the previous choice (also on
   *  throw). fn must record its dispatches synchronously, as ops do. */
  with<R>(forced: Partial<VariantChoice>, fn: () => R): R {
    const saved = { ...this.chosen };
    try {
      for (const [family, name] of Object.entries(forced)) if (name !== undefined) this.set(family, name);
      return fn();
    } finally {
      this.chosen = saved;
    }
  }

  /** The current choice, one entry per family (for `info`, reports and result files). */
  toJSON(): VariantChoice {
    return { ...this.chosen };
  }
}

/** The smallest workgroup a subgroup-reduction kernel may use on an adapter: a power of
 *  two (so a multiple of every subgroup size up to it, and every subgroup is full), at
 *  least the adapter's largest subgroup (128, Vulkan's ceiling, when Dawn does not say)
 *  and at least 32. */
export function subgroupWorkgroupFloor(subgroupMaxSize: number | null): number {
  const need = Math.max(32, subgroupMaxSize ?? 128);
  let wg = 32;
  while (wg < need) wg *= 2;
  return wg;
}
