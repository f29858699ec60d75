// The only place the engine reads environment variables. Everything else receives
// options from cli/ or the library caller.

export interface DebugFlags {
  /** GROUNDED_SD_DUMP_WGSL=1: print every WGSL module as it is compiled. */
  dumpWgsl: boolean;
  /** GROUNDED_SD_BACKEND: force Dawn's backend (vulkan, metal, d3d12, opengles, ...). */
  backend?: string;
  /** GROUNDED_SD_ADAPTER: 'software', 'hardware', or a substring of the adapter name. */
  adapter?: string;
  /** GROUNDED_SD_VALIDATE=1: wrap every dispatch in an error scope (slow, precise). */
  validate: boolean;
  /** GROUNDED_SD_VARIANTS=matmul=tiled,softmax=subgroup: force kernel variants
   *  (gpu/variants.ts) in every runtime, e.g. to run a test suite on the GPU kernels. */
  variants?: string;
}

export function debugFlags(env: NodeJS.ProcessEnv = process.env): DebugFlags {
  return {
    dumpWgsl: env.GROUNDED_SD_DUMP_WGSL === '1',
    backend: env.GROUNDED_SD_BACKEND || undefined,
    adapter: env.GROUNDED_SD_ADAPTER || undefined,
    validate: env.GROUNDED_SD_VALIDATE === '1',
    variants: env.GROUNDED_SD_VARIANTS || undefined,
  };
}
