// WGSL text shipped inside the JavaScript, keyed by path under shaders/ ('matmul.wgsl',
// 'lib/activation.wgsl'). In a source checkout this is null and pipelines.ts reads
// shaders/ from disk, so an edited .wgsl takes effect at once and no generated copy can go
// stale. The build (scripts/build.mjs) overwrites the compiled dist/gpu/shader_sources.js
// with every shaders/**/*.wgsl inlined, so the installed package, and a single-file bundle
// of it, needs no shaders/ folder next to it.
export const SHADER_SOURCES: Readonly<Record<string, string>> | null = null;
