// Error types of the engine. Messages say what happened, what was expected, what was
// found, and how to fix it; only cli/ turns them into exit codes.

export class EngineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A tensor shape that does not fit the op (names the op and both shapes). */
export class ShapeError extends EngineError {}

/** A missing, unexpected, mis-shaped or corrupt weight. */
export class WeightError extends EngineError {}

/** An adapter limit exceeded (binding size, workgroup storage, dispatch size). */
export class LimitError extends EngineError {}

/** No adapter, a failed device request, a validation error or a lost device. */
export class GpuError extends EngineError {}

/** A user-supplied option or file that cannot be used. */
export class InputError extends EngineError {}

/** A command-line option or argument that is malformed or out of range; the CLI prints
 *  the command's usage with it and exits with status 2. */
export class UsageError extends InputError {}

export function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}
