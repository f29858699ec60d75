import { defineConfig } from 'vitest/config';

// Adapter tests share the (software) GPU: two forks on two cores, generous timeouts
// because lavapipe runs about 2.5 GFLOP/s.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 120_000,
    hookTimeout: 120_000,
    teardownTimeout: 10_000,
  },
});
