// Exit statuses and messages of the CLI front end: usage errors (2, with the usage),
// engine and system errors (1, one line), anything else an internal error (70, with the
// stack) so that a bug never reads as the user's mistake.
import { describe, expect, it } from 'vitest';
import { InputError, UsageError } from '../../src/gpu/errors.js';
import { EXIT_INTERNAL, main, runCommand, type Command } from '../../src/cli/main.js';
import { capture } from './capture.js';

const fake = (f: () => never): Command => ({ summary: 'fake', usage: 'grounded-sd fake [--x N]\n\n  --x N  details', run: async () => f() });

describe('CLI error mapping', () => {
  it('a RangeError (or any unexpected error) is an internal error with the stack, exit 70', async () => {
    const r = await capture(() => runCommand('fake', fake(() => {
      throw new RangeError('Invalid typed array length: -4');
    }), []));
    expect(r.code).toBe(EXIT_INTERNAL);
    expect(r.code).toBe(70);
    expect(r.err).toHaveLength(1);
    const [first, ...stack] = r.err[0].split('\n');
    expect(first).toBe('grounded-sd fake: internal error (a bug in grounded-sd, not a problem with the input; please report it with this output):');
    expect(stack[0]).toBe('RangeError: Invalid typed array length: -4');
    expect(stack[1]).toMatch(/^\s+at /);
    expect(r.err[0]).not.toContain('usage:');
  });

  it('a UsageError prints the message and the usage line, exit 2', async () => {
    const r = await capture(() => runCommand('fake', fake(() => {
      throw new UsageError('--x must be >= 1, got -1');
    }), []));
    expect(r.code).toBe(2);
    expect(r.err).toEqual(['grounded-sd fake: --x must be >= 1, got -1\nusage: grounded-sd fake [--x N]']);
  });

  it('other EngineErrors and system errors are one line, exit 1', async () => {
    const a = await capture(() => runCommand('fake', fake(() => {
      throw new InputError('model path /x does not exist');
    }), []));
    expect(a).toMatchObject({ code: 1, err: ['grounded-sd fake: InputError: model path /x does not exist'] });
    const sys = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: 'ENOSPC', syscall: 'write', errno: -28 });
    const b = await capture(() => runCommand('fake', fake(() => {
      throw sys;
    }), []));
    expect(b).toMatchObject({ code: 1, err: ['grounded-sd fake: ENOSPC: no space left on device, write'] });
  });

  it('parseArgs errors are usage errors; unknown commands exit 2; --help exits 0', async () => {
    const r = await capture(() => main(['generate', '--bogus']));
    expect(r.code).toBe(2);
    expect(r.err[0]).toMatch(/^grounded-sd generate: Unknown option '--bogus'[^]*\nusage: grounded-sd generate /);
    const u = await capture(() => main(['frobnicate']));
    expect(u.code).toBe(2);
    expect(u.err).toHaveLength(1);
    expect(u.err[0]).toMatch(/^grounded-sd: unknown command 'frobnicate' \(commands: info, parity, bench, train, generate[a-z, ]*; try --help\)$/);
    const h = await capture(() => main(['generate', '--help']));
    expect(h.code).toBe(0);
    expect(h.out[0]).toContain('usage: grounded-sd generate');
    const all = await capture(() => main(['--help']));
    expect(all.code).toBe(0);
    for (const c of ['info', 'parity', 'bench', 'train', 'generate']) expect(all.out[0]).toMatch(new RegExp(`^  ${c} +\\S`, 'm'));
  });
});
