// Runtimes created and destroyed while another is in use: Dawn aborted the process
// ("futex facility returned an unexpected error code", std::system_error) when a released
// instance was garbage-collected, at whatever moment the collector ran. The scenario runs
// in a child process with --expose-gc forcing collections, so a regression fails this
// test instead of killing the test worker.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('./scripts/second_runtime.mts', import.meta.url));

describe('runtime lifetime', () => {
  it('a runtime survives other runtimes being destroyed and collected', () => {
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', script], { encoding: 'utf8', env: process.env });
    const out = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => !l.startsWith('Warning: maxDynamic')).join('\n');
    expect(r.signal, out).toBeNull();
    expect(r.status, out).toBe(0);
    expect(r.stdout).toContain('survived: 1,2,3,4');
  });
});
