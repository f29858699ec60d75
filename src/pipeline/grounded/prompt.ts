// Prompt handling of grounded generation: BPE token strings of any prompt tokenizer, the
// classes of the paper's prompt templates, DAAM's word search, and the checks that every
// class sits inside the 77-token window the text encoder sees.
//
// Templates (official train.py / test.py prompts): "a photograph of a X" and
// "a photograph of a X and a Y". Word search (castorini/daam utils.py:73-91
// compute_token_merge_indices): the prompt's and the word's BPE tokens with `</w>` removed,
// every start position where the word's tokens occur as a contiguous run (all
// occurrences), each of the run's positions + 1 (BOS).
import { InputError } from '../../gpu/errors.js';
import { HashTokenizer, type PromptTokenizer } from '../../models/sd.js';

/** A tokenizer that also gives BPE token strings (CLIPTokenizer does). */
interface TokenizingTokenizer extends PromptTokenizer {
  tokenize(text: string): string[];
}

const hasTokenize = (t: PromptTokenizer): t is TokenizingTokenizer => typeof (t as Partial<TokenizingTokenizer>).tokenize === 'function';

/** BPE token strings of `text` (with `</w>` word ends), without BOS/EOS, untruncated:
 *  CLIPTokenizer.tokenize, or one `word</w>` per whitespace-separated word for the
 *  HashTokenizer of random-weight models (which gives each word one id). */
export function tokenStrings(tokenizer: PromptTokenizer, text: string): string[] {
  if (hasTokenize(tokenizer)) return tokenizer.tokenize(text);
  if (tokenizer instanceof HashTokenizer) return text.toLowerCase().split(/\s+/).filter((w) => w.length > 0).map((w) => `${w}</w>`);
  throw new InputError('grounded generation needs token strings (class embeddings, DAAM words), but this tokenizer has no tokenize(); use a CLIPTokenizer (a model folder with tokenizer/ or the tokenizerDir option)');
}

/** The fixed part of the class query, "a photograph of a " + class (official train.py:446). */
export const CLASS_QUERY_PREFIX = 'a photograph of a ';

const TEMPLATE = /^a photograph of an? (.+?)(?: and an? (.+))?$/i;

/** The class names of a template prompt ("a photograph of a cat and a dog" -> cat, dog),
 *  in the prompt's spelling; case, repeated spaces and a final period are ignored. Other
 *  prompts: InputError saying how to pass the classes. */
export function classesFromPrompt(prompt: string): string[] {
  const norm = prompt.trim().replace(/\s+/g, ' ').replace(/\s*\.$/, '');
  const m = TEMPLATE.exec(norm);
  if (!m) {
    throw new InputError(
      `cannot read the classes from the prompt ${JSON.stringify(prompt)}: it does not follow the paper's templates ` +
        `"a photograph of a X" or "a photograph of a X and a Y"; pass the class names explicitly with the classes option (e.g. classes: ['cat', 'dog'])`,
    );
  }
  return m[2] === undefined ? [m[1]] : [m[1], m[2]];
}

const bare = (tokens: string[]) => tokens.map((t) => t.replace(/<\/w>/g, ''));

/** DAAM's merge indices: every position of every occurrence of `word`'s tokens in the
 *  prompt's, + 1 for BOS, in increasing order. Empty when the word does not occur. */
export function wordMergeIndices(promptTokens: string[], wordTokens: string[]): number[] {
  const p = bare(promptTokens);
  const w = bare(wordTokens);
  const out: number[] = [];
  if (w.length === 0) return out;
  for (let s = 0; s + w.length <= p.length; s++) {
    if (w.every((t, k) => p[s + k] === t)) for (let k = 0; k < w.length; k++) out.push(s + k + 1);
  }
  return out;
}

/** The prompt as the text encoder sees it: tokens, how many fit, what was cut. */
export interface PromptWindow {
  tokens: string[];
  /** Tokens inside the window (max_position_embeddings - 2: BOS and EOS take two). */
  kept: number;
  /** Set when tokens were cut: the text that was dropped (as diffusers warns). */
  truncated?: string;
}

export function promptWindow(tokenizer: PromptTokenizer, text: string, maxLength: number): PromptWindow {
  const tokens = tokenStrings(tokenizer, text);
  const room = maxLength - 2;
  if (tokens.length <= room) return { tokens, kept: tokens.length };
  const dropped = tokens.slice(room).join('').replace(/<\/w>/g, ' ').trim();
  return { tokens, kept: room, truncated: dropped };
}

/** Where each class occurs in the prompt; throws InputError for an empty class, a class
 *  the prompt does not contain, or one that only occurs past the token window. */
export function locateClasses(tokenizer: PromptTokenizer, window: PromptWindow, classes: string[], maxLength: number): number[][] {
  return classes.map((c) => {
    const ct = tokenStrings(tokenizer, c);
    if (c.trim() === '' || ct.length === 0) throw new InputError(`class ${JSON.stringify(c)} is empty: give each class a name (e.g. 'cat')`);
    const queryTokens = 4 + ct.length;
    if (queryTokens > maxLength - 2) {
      throw new InputError(`class '${c}' has ${ct.length} tokens: its query "${CLASS_QUERY_PREFIX}${c}" does not fit the ${maxLength}-token window of the text encoder; shorten the class name`);
    }
    const idx = wordMergeIndices(window.tokens, ct);
    if (idx.length === 0) {
      throw new InputError(`class '${c}' does not occur in the prompt (tokens: ${bare(window.tokens).join(' ')}); put the class name in the prompt or leave it out of classes`);
    }
    // Occurrences are runs of ct.length indices; keep those wholly inside the window.
    const inside: number[] = [];
    for (let k = 0; k < idx.length; k += ct.length) if (idx[k + ct.length - 1] <= window.kept) inside.push(...idx.slice(k, k + ct.length));
    if (inside.length === 0) {
      throw new InputError(
        `class '${c}' only occurs after token ${window.kept} of the prompt, which the ${maxLength}-token limit of the text encoder cuts off; move it nearer the start or shorten the prompt`,
      );
    }
    return inside;
  });
}
