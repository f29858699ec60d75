// Command-line front end. Each subcommand lives in its own file; this one dispatches
// and turns errors into messages and exit codes (the only place that does): usage
// mistakes exit 2 with the usage, other EngineErrors and system errors (a full disk, a
// permission) 1 with one line, and anything else is a bug: "internal error", the stack,
// and 70 (EX_SOFTWARE), so that it never reads as the user's mistake.
import { EngineError, UsageError } from '../gpu/errors.js';
import { benchCommand } from './bench.js';
import { convertCommand } from './convert.js';
import { datasetCommand } from './dataset.js';
import { demoCommand } from './demo.js';
import { detectCommand } from './detect.js';
import { evalCommand } from './eval.js';
import { exportCommand } from './export.js';
import { generateCommand } from './generate.js';
import { infoCommand } from './info.js';
import { parityCommand } from './parity.js';
import { synthCommand } from './synth.js';
import { trainCommand } from './train.js';

export interface Command {
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number>;
}

/** Exit status of an unexpected error (sysexits.h EX_SOFTWARE). */
export const EXIT_INTERNAL = 70;

const commands: Record<string, Command> = {
  info: infoCommand,
  parity: parityCommand,
  bench: benchCommand,
  train: trainCommand,
  generate: generateCommand,
  demo: demoCommand,
  convert: convertCommand,
  eval: evalCommand,
  dataset: datasetCommand,
  synth: synthCommand,
  export: exportCommand,
  detect: detectCommand,
};

function help(): string {
  const lines = ['usage: grounded-sd <command> [options]', '', 'commands:'];
  for (const [n, c] of Object.entries(commands)) lines.push(`  ${n.padEnd(10)} ${c.summary}`);
  lines.push('', 'Run `grounded-sd <command> --help` for its options.');
  return lines.join('\n');
}

/** Node's own errors from a system call (ENOSPC, EACCES, EISDIR): the environment, not a bug. */
function isSystemError(e: unknown): e is Error & { code: string; syscall: string } {
  return e instanceof Error && typeof (e as { syscall?: unknown }).syscall === 'string' && typeof (e as { code?: unknown }).code === 'string';
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(help());
    return name ? 0 : 1;
  }
  if (!Object.hasOwn(commands, name)) {
    console.error(`grounded-sd: unknown command '${name}' (commands: ${Object.keys(commands).join(', ')}; try --help)`);
    return 2;
  }
  return runCommand(name, commands[name], rest);
}

/** Runs one command and maps what it throws to a message and an exit status. */
export async function runCommand(name: string, cmd: Command, argv: string[]): Promise<number> {
  if (argv[0] === '--help' || argv[0] === '-h') {
    console.log(`${cmd.summary}\n\nusage: ${cmd.usage}`);
    return 0;
  }
  try {
    return await cmd.run(argv);
  } catch (e) {
    const code = String((e as { code?: unknown } | null)?.code ?? '');
    if (e instanceof UsageError || code.startsWith('ERR_PARSE_ARGS')) {
      console.error(`grounded-sd ${name}: ${(e as Error).message}\nusage: ${cmd.usage.split('\n\n')[0]}`);
      return 2;
    }
    if (e instanceof EngineError) {
      console.error(`grounded-sd ${name}: ${e.name}: ${e.message}`);
      return 1;
    }
    if (isSystemError(e)) {
      console.error(`grounded-sd ${name}: ${e.message}`);
      return 1;
    }
    const detail = e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e);
    console.error(`grounded-sd ${name}: internal error (a bug in grounded-sd, not a problem with the input; please report it with this output):\n${detail}`);
    return EXIT_INTERNAL;
  }
}
