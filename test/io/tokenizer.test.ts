// CLIP tokenizer against the golden cases (transformers 4.35 CLIPTokenizer, ids exact), the
// ftfy column, OpenAI's original BPE file, and the ftfy-like cleanup's individual fixes
// (expected strings from ftfy 6.1.1's own docstrings).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError, WeightError } from '../../src/gpu/errors.js';
import { fixText } from '../../src/io/text_cleanup.js';
import { CLIPTokenizer } from '../../src/io/tokenizer.js';
import { goldenDir } from '../helpers.js';

interface Case { text: string; ids: number[]; ids_ftfy: number[]; ftfy_differs: boolean; num_tokens_untruncated: number; tokens: string[] }

const tokDir = goldenDir('tokenizer');
const bpeGz = goldenDir('clip_tokenizer') && join(goldenDir('clip_tokenizer') as string, 'bpe_simple_vocab_16e6.txt.gz');
const cases: Case[] = tokDir ? JSON.parse(readFileSync(join(tokDir, 'cases.json'), 'utf8')).cases : [];
const label = (c: Case) => JSON.stringify(c.text.length > 40 ? `${c.text.slice(0, 40)}…` : c.text);

describe.runIf(tokDir)('CLIPTokenizer on the golden cases', () => {
  let plain: CLIPTokenizer;
  let ftfy: CLIPTokenizer;
  beforeAll(async () => {
    plain = await CLIPTokenizer.fromFolder(tokDir as string);
    ftfy = await CLIPTokenizer.fromFiles(join(tokDir as string, 'vocab.json'), join(tokDir as string, 'merges.txt'), { ftfy: true });
  });

  it('has SD 1.x special ids', () => {
    expect([plain.bosId, plain.eosId, plain.padId, plain.maxLength]).toEqual([49406, 49407, 49407, 77]);
  });

  it('matches `ids` (no ftfy) exactly on every case, with the untruncated lengths and tokens', () => {
    expect(cases.length).toBe(62);
    for (const c of cases) {
      expect(plain.encodePadded(c.text), label(c)).toEqual(c.ids);
      expect(plain.encode(c.text).length + 2, label(c)).toBe(c.num_tokens_untruncated);
      expect(['<|startoftext|>', ...plain.tokenize(c.text), '<|endoftext|>'].slice(0, c.tokens.length), label(c)).toEqual(c.tokens);
    }
  });

  it('matches `ids_ftfy` exactly on every case with { ftfy: true }', () => {
    let passed = 0;
    let passedDiffering = 0;
    for (const c of cases) {
      expect(ftfy.encodePadded(c.text), label(c)).toEqual(c.ids_ftfy);
      passed++;
      if (c.ftfy_differs) passedDiffering++;
    }
    console.log(`ftfy column: ${passed}/${cases.length} cases exact, ${passedDiffering}/${cases.filter((c) => c.ftfy_differs).length} of those where ftfy changes the ids`);
    expect(passed).toBe(cases.length);
  });

  it.runIf(bpeGz)('fromOpenAIBpe gives identical ids and the same vocabulary order', async () => {
    const openai = await CLIPTokenizer.fromOpenAIBpe(bpeGz as string);
    const vocab = JSON.parse(readFileSync(join(tokDir as string, 'vocab.json'), 'utf8')) as Record<string, number>;
    expect(Object.keys(vocab).length).toBe(49408);
    expect([openai.bosId, openai.eosId, openai.padId]).toEqual([49406, 49407, 49407]);
    for (const c of cases) expect(openai.encodePadded(c.text), label(c)).toEqual(c.ids);
    // Same token behind every id: decoding each id alone agrees with vocab.json's tokenizer.
    for (let id = 0; id < 49406; id++) expect(openai.decode([id]), `id ${id}`).toBe(plain.decode([id]));
  });

  it('splits literal special tokens out before cleanup, as the slow tokenizer does', () => {
    expect(plain.tokenize('wow!<|endoftext|>!')).toEqual(['wow</w>', '!</w>', '<|endoftext|>', '!</w>']);
    expect(plain.encode('<|startoftext|>a')).toEqual([49406, 320]);
  });

  it('normalises to NFC and drops format characters before BPE (BasicTokenizer)', () => {
    expect(plain.encode('Cafe\u0301')).toEqual(plain.encode('café'));
    expect(plain.encode('zero\u200bwidth')).toEqual(plain.encode('zerowidth'));
    expect(plain.encode('日本')).toEqual(plain.encode(' 日 本 '));
  });

  it('truncates to 75 content tokens and pads with EOS', () => {
    const long = Array.from({ length: 100 }, (_, i) => `w${i}`).join(' ');
    const ids = plain.encodePadded(long);
    expect(ids.length).toBe(77);
    expect(ids.slice(1, 76)).toEqual(plain.encode(long).slice(0, 75));
    expect([ids[0], ids[76]]).toEqual([49406, 49407]);
    expect(plain.encodePadded('')).toEqual([49406, ...new Array(76).fill(49407)]);
  });

  it('decodes back to the cleaned text, dropping specials', () => {
    expect(plain.decode(plain.encodePadded('A Photograph of an ASTRONAUT,  riding!'))).toBe('a photograph of an astronaut , riding !');
    expect(plain.decode(plain.encode('café 日本 😀'))).toBe('café 日 本 😀');
    // '本' is two tokens that split its UTF-8 bytes; the first alone decodes to U+FFFD (errors="replace").
    const hon = plain.encode('本');
    expect(hon.length).toBe(2);
    expect(plain.decode(hon.slice(0, 1))).toBe('\ufffd');
    expect(() => plain.decode([49408])).toThrow(InputError);
  });

  it('gives the same ids from the cache on repeat', () => {
    const text = 'supercalifragilisticexpialidocious repeat repeat';
    expect(plain.encode(text)).toEqual(plain.encode(text));
  });
});

describe('tokenizer files', () => {
  it('missing vocabulary, merges or BPE file is a WeightError naming the path', async () => {
    await expect(CLIPTokenizer.fromFiles('/nonexistent/vocab.json', '/nonexistent/merges.txt')).rejects.toThrow(WeightError);
    await expect(CLIPTokenizer.fromFolder('/nonexistent')).rejects.toThrow(/\/nonexistent\/vocab\.json/);
    await expect(CLIPTokenizer.fromOpenAIBpe('/nonexistent/bpe.txt.gz')).rejects.toThrow(/cannot read OpenAI BPE file/);
  });
});

describe('ftfy-like fixText (ftfy 6.1.1 docstring examples)', () => {
  it('unescapes HTML entities, numeric references and all-caps names', () => {
    expect(fixText('&lt;tag&gt;')).toBe('<tag>');
    expect(fixText('P&EACUTE;REZ')).toBe('PÉREZ');
    expect(fixText('BUNDESSTRA&SZLIG;E')).toBe('BUNDESSTRASSE');
    expect(fixText('&ntilde; &Ntilde; &NTILDE; &nTILDE;')).toBe('ñ Ñ Ñ &nTILDE;');
    expect(fixText('it&#x2019;s &#8220;x&#8221; &#150; &#0;')).toBe('it\'s "x" – \ufffd');
    expect(fixText('this&not that &amp')).toBe('this&not that &amp');
  });

  it('leaves entities alone once a line contains "<" (ftfy auto mode), for later lines too', () => {
    expect(fixText('<b>&amp;</b>')).toBe('<b>&amp;</b>');
    expect(fixText('&amp;\n<p>\n&amp;')).toBe('&\n<p>\n&amp;');
  });

  it('fixes width, ligatures, quotes, C1 controls, line breaks, escapes and control characters', () => {
    expect(fixText('ＬＯＵＤ　ＮＯＩＳＥＳ')).toBe('LOUD NOISES');
    expect(fixText('ｳﾀｰﾝ')).toBe('ウターン');
    expect(fixText('ﬂuﬃest')).toBe('fluffiest');
    expect(fixText('\u201chere\u2019s a test\u201d')).toBe('"here\'s a test"');
    expect(fixText('\x93quoted\x94 \x85')).toBe('"quoted" …');
    expect(fixText('a\r\nb\rc\u2028d\u2029e')).toBe('a\nb\nc\nd\ne');
    expect(fixText("\x1b[36;44mI'm blue\x1b[0m")).toBe("I'm blue");
    expect(fixText('a\x00b\x07c\ufeffd\u200de\t')).toBe('abcd\u200de\t');
    expect(fixText('e\u0301')).toBe('é');
    expect(fixText('x\ud800y')).toBe('x\ufffdy');
  });
});
