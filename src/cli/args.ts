// Option parsing shared by the subcommands: negative numbers as option values, and
// numeric options checked for syntax, finiteness and range, each failure a UsageError
// naming the option, the allowed range and the value found.
import { UsageError } from '../gpu/errors.js';

/** parseArgs reads `--steps -1` as the option `-1` ("argument is ambiguous"). Joining a
 *  value that looks like a negative number to its option (`--steps=-1`) lets the range
 *  check report it instead. Only the given numeric options are joined. */
export function joinNegativeValues(argv: readonly string[], numeric: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = argv[i + 1];
    if (a.startsWith('--') && numeric.includes(a.slice(2)) && next !== undefined && /^-(\d|\.\d|Infinity|inf)/i.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

export interface NumberSpec {
  integer?: boolean;
  min: number;
  max: number;
  /** Why the bounds are what they are, added to a range message. */
  why?: string;
}

const INTEGER = /^[+-]?\d+$/;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** `raw` as a number within [min, max] (an integer when `integer`), or `fallback` when
 *  the option was not given. Hex, blanks, 'Infinity' and the like are refused. */
export function numberOption(name: string, raw: string | undefined, fallback: number, spec: NumberSpec): number {
  if (raw === undefined) return fallback;
  const kind = spec.integer ? 'an integer' : 'a number';
  const range = `${spec.min}..${spec.max}`;
  if (!(spec.integer ? INTEGER : DECIMAL).test(raw.trim()) || raw.trim() !== raw) {
    throw new UsageError(`--${name} must be ${kind} in ${range}, got '${raw}'`);
  }
  const v = Number(raw);
  const why = spec.why ? ` (${spec.why})` : '';
  if (!Number.isFinite(v)) throw new UsageError(`--${name} must be a finite number in ${range}, got ${raw}`);
  if (spec.integer && !Number.isSafeInteger(v)) throw new UsageError(`--${name} must be <= ${spec.max}${why}, got ${raw}`);
  if (v < spec.min) throw new UsageError(`--${name} must be >= ${spec.min}, got ${raw}`);
  if (v > spec.max) throw new UsageError(`--${name} must be <= ${spec.max}${why}, got ${raw}`);
  return v;
}

/** `raw` when it is one of `allowed`; undefined when the option was not given. */
export function choiceOption<T extends string>(name: string, raw: string | undefined, allowed: readonly T[]): T | undefined {
  if (raw === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(raw)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got '${raw}'`);
  return raw as T;
}
