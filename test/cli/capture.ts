// Runs a CLI entry in-process and captures what it prints (console.log, console.error,
// process.stderr.write), so tests see exactly the lines a user would; or, for commands
// that create a GPU runtime, in a child process.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface Captured {
  code: number;
  out: string[];
  err: string[];
  /** Everything written to process.stderr directly (progress lines). */
  progress: string;
}

export async function capture(run: () => Promise<number>): Promise<Captured> {
  const log = console.log;
  const error = console.error;
  const write = process.stderr.write.bind(process.stderr);
  const out: string[] = [];
  const err: string[] = [];
  let progress = '';
  console.log = (...a: unknown[]) => out.push(a.map(String).join(' '));
  console.error = (...a: unknown[]) => err.push(a.map(String).join(' '));
  process.stderr.write = ((s: string | Uint8Array) => {
    progress += typeof s === 'string' ? s : Buffer.from(s).toString('utf8');
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await run();
    return { code, out, err, progress };
  } finally {
    console.log = log;
    console.error = error;
    process.stderr.write = write;
  }
}

/** Runs bin/grounded-sd.mjs in a child process (for cases that create a GPU runtime:
 *  each process gets its own). Dawn's own "Warning:" lines are dropped from stderr. */
export function spawnCli(args: string[]): { code: number | null; stdout: string[]; stderr: string[] } {
  const r = spawnSync(process.execPath, [fileURLToPath(new URL('../../bin/grounded-sd.mjs', import.meta.url)), ...args], {
    encoding: 'utf8',
    env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
    timeout: 120_000,
  });
  const lines = (s: string) => s.split('\n').filter((l) => l.length > 0);
  return { code: r.status, stdout: lines(r.stdout), stderr: lines(r.stderr).filter((l) => !l.startsWith('Warning: ')) };
}
