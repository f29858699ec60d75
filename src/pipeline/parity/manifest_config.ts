// The model config of a parity manifest: `config` (the library's full config dict), or
// `config_args` (the constructor arguments) when `config` is absent. Anything else is an
// InputError naming the manifest and the field, not a TypeError from the model.
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'string' ? `the string ${JSON.stringify(v)}` : `${typeof v} ${String(v)}`;
}

export function manifestConfig(dir: string, manifest: Record<string, unknown>): Record<string, unknown> {
  const where = join(dir, 'manifest.json');
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObject(manifest.config)) return manifest.config;
  if (manifest.config !== undefined) {
    throw new InputError(`${where}: field 'config' must be an object of the model's config keys, found ${describe(manifest.config)}; regenerate the fixture`);
  }
  if (isObject(manifest.config_args)) return manifest.config_args;
  if (manifest.config_args !== undefined) {
    throw new InputError(`${where}: field 'config_args' must be an object of the model's constructor arguments, found ${describe(manifest.config_args)} (and there is no 'config'); regenerate the fixture`);
  }
  throw new InputError(`${where}: has neither a 'config' nor a 'config_args' object, so the model cannot be built; regenerate the fixture`);
}
