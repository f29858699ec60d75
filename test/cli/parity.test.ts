// Parity manifests whose model config is unusable: an InputError naming the manifest and
// the field (not a TypeError from the model constructor), reported by `grounded-sd
// parity` as one FAIL line, before any file is opened or a runtime created.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { InputError } from '../../src/gpu/errors.js';
import { runParity } from '../../src/pipeline/parity/index.js';
import { capture } from './capture.js';

const tmp = mkdtempSync(join(tmpdir(), 'gsd-cli-parity-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function fixture(name: string, manifest: Record<string, unknown>): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  return dir;
}

describe('parity manifests with a bad model config', () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['unet_null', { component: 'unet', config: null, cases: [{ name: 'a' }] }, "field 'config' must be an object of the model's config keys, found null"],
    ['vae_array', { component: 'vae', config: [1, 2], cases: [] }, "field 'config' must be an object of the model's config keys, found an array"],
    ['clip_none', { component: 'clip_text' }, "has neither a 'config' nor a 'config_args' object"],
    ['clip_args_str', { component: 'clip_text', config_args: 'hidden_size=32' }, "field 'config_args' must be an object of the model's constructor arguments, found the string \"hidden_size=32\""],
  ];
  for (const [name, manifest, message] of cases) {
    it(name, async () => {
      const dir = fixture(name, manifest);
      const err = await runParity(dir).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(InputError);
      expect((err as Error).message).toContain(`${join(dir, 'manifest.json')}: ${message}`);
    });
  }

  it('the CLI reports it as one FAIL line and exits 1; an unwritable --json fails before any fixture runs', async () => {
    const dir = join(tmp, 'unet_null');
    const r = await capture(() => main(['parity', dir]));
    expect(r.code).toBe(1);
    expect(r.out).toEqual([`${dir}: FAIL (could not run: ${join(dir, 'manifest.json')}: field 'config' must be an object of the model's config keys, found null; regenerate the fixture)`]);
    const file = join(tmp, 'plain-file');
    writeFileSync(file, '');
    const j = await capture(() => main(['parity', dir, '--json', join(file, 'report.json')]));
    expect(j.code).toBe(1);
    expect(j.out).toEqual([]);
    expect(j.err).toEqual([`grounded-sd parity: InputError: --json: ${file} is a file, so ${join(file, 'report.json')} cannot be created under it; choose another --json`]);
  });
});
