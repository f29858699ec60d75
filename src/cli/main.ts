// Command-line front end. Each subcommand lives in its own file; this one dispatches
// and turns EngineErrors into messages and exit codes (the only place that does).
import { EngineError } from '../gpu/errors.js';
import { infoCommand } from './info.js';

export interface Command {
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number>;
}

const commands: Record<string, () => Promise<Command>> = {
  info: async () => infoCommand,
  parity: async () => (await import('./parity.js')).parityCommand,
  bench: async () => (await import('./bench.js')).benchCommand,
  train: async () => (await import('./train.js')).trainCommand,
  generate: async () => (await import('./generate.js')).generateCommand,

};

function help(): string {
  const lines = ['usage: grounded-sd <command> [options]', '', 'commands:'];
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    const out = [help()];
    for (const [n, load] of Object.entries(commands)) {
      const c = await load();
      out.push(`  ${n.padEnd(10)} ${c.summary}`);
    }
    out.push('', 'Run `grounded-sd <command> --help` for its options.');
    console.log(out.join('\n'));
    return name ? 0 : 1;
  }
  const load = commands[name];
  if (!load) {
    console.error(`grounded-sd: unknown command '${name}' (try --help)`);
    return 2;
  }
  const cmd = await load();
  if (rest[0] === '--help' || rest[0] === '-h') {
    console.log(`${cmd.summary}\n\nusage: ${cmd.usage}`);
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof EngineError) {
      console.error(`grounded-sd ${name}: ${e.name}: ${e.message}`);
      return 1;
    }
    const code = (e as { code?: string }).code ?? '';
    if (code.startsWith('ERR_PARSE_ARGS') || e instanceof RangeError) {
      console.error(`grounded-sd ${name}: ${(e as Error).message}\nusage: ${cmd.usage.split('\n\n')[0]}`);
      return 2;
    }
    throw e;
  }
}
