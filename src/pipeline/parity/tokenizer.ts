// Parity for the CLIP tokenizer fixture: every case's 77 ids must match exactly (`ids`,
// transformers without ftfy), the manifest's tolerance. The `ids_ftfy` column (OpenAI's
// original cleanup, a stretch goal) is covered by test/io/tokenizer.test.ts instead.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { CLIPTokenizer } from '../../io/tokenizer.js';
import type { ParityCheck, ParityHandler } from './types.js';

interface TokenizerCase {
  text: string;
  ids: number[];
}

export const handler: ParityHandler = {
  async run(dir, manifest) {
    const files = (manifest.files ?? {}) as { vocab?: string; merges?: string; cases?: string };
    const vocab = join(dir, files.vocab ?? 'vocab.json');
    const merges = join(dir, files.merges ?? 'merges.txt');
    const casesPath = join(dir, files.cases ?? 'cases.json');
    const doc = JSON.parse(await readFile(casesPath, 'utf8')) as { cases?: TokenizerCase[] };
    if (!Array.isArray(doc.cases)) throw new InputError(`${casesPath} has no 'cases' array`);
    const plain = await CLIPTokenizer.fromFiles(vocab, merges);
    const checks: ParityCheck[] = [];
    doc.cases.forEach((c, i) => {
      const label = JSON.stringify(c.text.length > 24 ? `${c.text.slice(0, 24)}…` : c.text);
      checks.push({ name: `case ${i} ${label}`, actual: plain.encodePadded(c.text), expected: c.ids, metric: 'exact', tol: 0 });
    });
    return checks;
  },
};
