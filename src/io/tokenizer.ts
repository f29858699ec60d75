// CLIP byte-level BPE tokenizer, matching transformers 4.35 CLIPTokenizer as SD pipelines
// call it: tokenizer(text, padding="max_length", max_length=77, truncation=True).
//
// Steps (tokenization_clip.py): split out the literal special tokens (the slow tokenizer's
// added-token trie), clean each remaining piece (text_cleanup.ts; ftfy or the
// BasicTokenizer fallback), split words with CLIP's regex, map each word's UTF-8 bytes to
// printable characters (bytes_to_unicode), then merge pairs by rank with `</w>` marking
// the word end. Unknown symbols map to <|endoftext|>, the unk token of SD 1.x.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { InputError, WeightError } from '../gpu/errors.js';
import { basicClean, ftfyClean } from './text_cleanup.js';

const BOS = '<|startoftext|>';
const EOS = '<|endoftext|>';
/** CLIP keeps merges 1..48894 of its file: 49152 ids - 256 bytes - 256 bytes</w> - 2 specials. */
const NUM_MERGES = 49152 - 256 - 2;
const WORD = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+/giu;
const SPECIAL = /(<\|startoftext\|>|<\|endoftext\|>)/;
/** Bounds the BPE cache in long-running processes; prompts reuse few words. */
const CACHE_LIMIT = 50_000;

/** GPT-2/CLIP bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68
 *  bytes to U+0100 onwards, so every byte is one visible character. Returned in the
 *  order OpenAI's vocabulary lists them. */
function bytesToUnicode(): [number, string][] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  return bs.map((b, i) => [b, String.fromCharCode(cs[i])]);
}

export class CLIPTokenizer {
  readonly bosId: number;
  readonly eosId: number;
  /** SD 1.x pads with <|endoftext|>. */
  readonly padId: number;
  readonly maxLength = 77;
  private readonly byteEncoder: string[] = new Array(256);
  private readonly byteDecoder = new Map<string, number>();
  private readonly decoder: string[] = [];
  private readonly cache = new Map<string, string[]>();

  private constructor(
    private readonly encoder: Map<string, number>,
    private readonly ranks: Map<string, number>,
    private readonly ftfy: boolean,
    source: string,
  ) {
    for (const [b, ch] of bytesToUnicode()) {
      this.byteEncoder[b] = ch;
      this.byteDecoder.set(ch, b);
    }
    for (const [token, id] of encoder) this.decoder[id] = token;
    const special = (t: string) => {
      const id = encoder.get(t);
      if (id === undefined) throw new WeightError(`${source}: vocabulary has no '${t}' token`);
      return id;
    };
    this.bosId = special(BOS);
    this.eosId = special(EOS);
    this.padId = this.eosId;
  }

  /** vocab.json (token -> id) and merges.txt ("#version" line, then "a b" per merge). */
  static async fromFiles(vocabJsonPath: string, mergesTxtPath: string, opts: { ftfy?: boolean } = {}): Promise<CLIPTokenizer> {
    let vocab: unknown;
    try {
      vocab = JSON.parse(await readFile(vocabJsonPath, 'utf8'));
    } catch (err) {
      throw new WeightError(`cannot read CLIP vocabulary ${vocabJsonPath}: ${(err as Error).message}`);
    }
    if (typeof vocab !== 'object' || vocab === null || Array.isArray(vocab)) throw new WeightError(`${vocabJsonPath}: expected a JSON object of token -> id`);
    const encoder = new Map<string, number>();
    for (const [token, id] of Object.entries(vocab)) {
      if (!Number.isInteger(id)) throw new WeightError(`${vocabJsonPath}: id of '${token}' is ${JSON.stringify(id)}, expected an integer`);
      encoder.set(token, id as number);
    }
    let merges: string;
    try {
      merges = await readFile(mergesTxtPath, 'utf8');
    } catch (err) {
      throw new WeightError(`cannot read CLIP merges ${mergesTxtPath}: ${(err as Error).message}`);
    }
    return new CLIPTokenizer(encoder, mergeRanks(merges.trim().split('\n'), mergesTxtPath), opts.ftfy ?? false, vocabJsonPath);
  }

  /** A diffusers model's tokenizer/ folder (vocab.json + merges.txt). */
  static async fromFolder(dir: string, opts: { ftfy?: boolean } = {}): Promise<CLIPTokenizer> {
    return CLIPTokenizer.fromFiles(join(dir, 'vocab.json'), join(dir, 'merges.txt'), opts);
  }

  /** OpenAI's bpe_simple_vocab_16e6.txt.gz; the vocabulary is rebuilt as simple_tokenizer.py
   *  does: bytes, bytes + </w>, one token per merge, then the two specials. */
  static async fromOpenAIBpe(gzPath: string, opts: { ftfy?: boolean } = {}): Promise<CLIPTokenizer> {
    let lines: string[];
    try {
      lines = gunzipSync(await readFile(gzPath)).toString('utf8').split('\n');
    } catch (err) {
      throw new WeightError(`cannot read OpenAI BPE file ${gzPath}: ${(err as Error).message}`);
    }
    const ranks = mergeRanks(lines, gzPath);
    const symbols = bytesToUnicode().map(([, ch]) => ch);
    const merged = lines.slice(1, NUM_MERGES + 1).map((pair) => pair.replace(' ', ''));
    const vocab = [...symbols, ...symbols.map((s) => `${s}</w>`), ...merged, BOS, EOS];
    return new CLIPTokenizer(new Map(vocab.map((t, i) => [t, i])), ranks, opts.ftfy ?? false, gzPath);
  }

  /** BPE tokens (with </w>), no BOS/EOS. */
  tokenize(text: string): string[] {
    const out: string[] = [];
    // The slow tokenizer splits literal special tokens out before any cleanup, so
    // "!<|endoftext|>" is "!" then the special token, never one punctuation run.
    for (const piece of text.split(SPECIAL)) {
      if (piece === BOS || piece === EOS) {
        out.push(piece);
        continue;
      }
      if (piece.length === 0) continue;
      const cleaned = this.ftfy ? ftfyClean(piece) : basicClean(piece);
      for (const m of cleaned.matchAll(WORD)) {
        const word = m[0];
        if (word === BOS || word === EOS) {
          out.push(word);
          continue;
        }
        let mapped = '';
        for (const b of Buffer.from(word, 'utf8')) mapped += this.byteEncoder[b];
        out.push(...this.bpe(mapped));
      }
    }
    return out;
  }

  /** Token ids without BOS/EOS, untruncated. */
  encode(text: string): number[] {
    return this.tokenize(text).map((t) => this.encoder.get(t) ?? this.eosId);
  }

  /** [BOS, ids (at most maxLength - 2), EOS, pad...], always maxLength long. */
  encodePadded(text: string): number[] {
    const ids = [this.bosId, ...this.encode(text).slice(0, this.maxLength - 2), this.eosId];
    while (ids.length < this.maxLength) ids.push(this.padId);
    return ids;
  }

  /** Text of the ids, dropping BOS/EOS/padding; `</w>` becomes a space and invalid UTF-8
   *  a replacement character (transformers' errors="replace"). */
  decode(ids: number[]): string {
    const bytes: number[] = [];
    for (const id of ids) {
      if (id === this.bosId || id === this.eosId || id === this.padId) continue;
      const token = this.decoder[id];
      if (token === undefined) throw new InputError(`decode: id ${id} is not in the CLIP vocabulary (0..${this.decoder.length - 1})`);
      for (const ch of token) {
        const b = this.byteDecoder.get(ch);
        if (b === undefined) throw new InputError(`decode: token '${token}' (id ${id}) has a character outside the byte alphabet`);
        bytes.push(b);
      }
    }
    return new TextDecoder('utf-8').decode(Uint8Array.from(bytes)).replaceAll('</w>', ' ').trim();
  }

  /** Merges the lowest-ranked adjacent pair until none is in the table (tokenization_clip.py bpe). */
  private bpe(token: string): string[] {
    const hit = this.cache.get(token);
    if (hit) return hit;
    let word = [...token];
    word[word.length - 1] += '</w>';
    while (word.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < word.length; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best];
      const second = word[best + 1];
      const merged: string[] = [];
      for (let i = 0; i < word.length; i++) {
        if (word[i] === first && word[i + 1] === second && i + 1 < word.length) {
          merged.push(first + second);
          i++;
        } else {
          merged.push(word[i]);
        }
      }
      word = merged;
    }
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(token, word);
    return word;
  }
}

/** Merge ranks from the file's lines: line 0 is the version header, then CLIP keeps
 *  lines 1..NUM_MERGES (both the HF merges.txt and OpenAI's file). */
function mergeRanks(lines: string[], source: string): Map<string, number> {
  const ranks = new Map<string, number>();
  const kept = lines.slice(1, NUM_MERGES + 1);
  kept.forEach((line, i) => {
    const parts = line.split(' ');
    if (parts.length !== 2 || !parts[0] || !parts[1]) throw new WeightError(`${source}: merge line ${i + 2} is ${JSON.stringify(line)}, expected two symbols separated by one space`);
    ranks.set(line, i);
  });
  if (ranks.size === 0) throw new WeightError(`${source}: no merges found`);
  return ranks;
}
