import { defineConfig } from 'vitest/config';

// Adapter tests share the (software) GPU: two forks on two cores. Time limits only catch
// hangs, they are not checks: a loaded 2-core machine may run lavapipe several times slower
// than an idle one, so no test may fail for being slow (CI's own job limit bounds the run).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 1_800_000,
    hookTimeout: 1_800_000,
    teardownTimeout: 10_000,
  },
});
