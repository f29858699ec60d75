// Class embeddings of the grounding module (official train.py:446-457, test.py:244-252):
// per class c, "a photograph of a " + c through the frozen CLIP text encoder; the rows of
// last_hidden_state after BOS and the four template tokens, 5 .. len(tokenize(query)),
// i.e. the class's own word-pieces; their mean when there are several, else the row as is.
import { InputError, ShapeError } from '../../gpu/errors.js';
import type { StableDiffusion } from '../../models/sd.js';
import { concat, slice } from '../../nn/layout.js';
import { mean } from '../../nn/reduce.js';
import { scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { CLASS_QUERY_PREFIX, tokenStrings } from './prompt.js';

/** Tokens of the template before the class ("a photograph of a"). */
const TEMPLATE_TOKENS = 4;
/** First row of the class in last_hidden_state: BOS + the template tokens. */
const FIRST_CLASS_ROW = 1 + TEMPLATE_TOKENS;

/** The class query's token count beyond the template, checked against the window. */
export function classTokenCount(sd: StableDiffusion, cls: string): number {
  const k = tokenStrings(sd.tokenizer, CLASS_QUERY_PREFIX + cls).length - TEMPLATE_TOKENS;
  const window = sd.textEncoder.config.max_position_embeddings;
  if (k < 1) throw new InputError(`class ${JSON.stringify(cls)} is empty: give each class a name (e.g. 'cat')`);
  if (FIRST_CLASS_ROW + k > window - 1) {
    throw new InputError(`class '${cls}' has ${k} tokens: its query "${CLASS_QUERY_PREFIX}${cls}" does not fit the ${window}-token window of the text encoder; shorten the class name`);
  }
  return k;
}

/** Rows FIRST_CLASS_ROW .. FIRST_CLASS_ROW + counts[j] - 1 of query j's states
 *  [n, L, D], averaged per class: [1, n, D] (classes in order). */
export function classEmbeddingsFromStates(states: Tensor, counts: number[]): Tensor {
  const [n, L, D] = states.shape;
  if (states.shape.length !== 3 || n !== counts.length || counts.some((k) => k < 1 || FIRST_CLASS_ROW + k > L)) {
    throw new ShapeError(`class embeddings: states [${states.shape}] do not hold ${counts.length} queries with [${counts}] class tokens each after row ${FIRST_CLASS_ROW}`);
  }
  return scope(() => {
    const rows = counts.map((k, j) => mean(slice(slice(states, 0, j, j + 1), 1, FIRST_CLASS_ROW, FIRST_CLASS_ROW + k), 1));
    return concat(rows, 0).reshape([1, n, D]);
  });
}

/** The grounding module's text input for `classes`: [1, n, hidden] (one batched text
 *  encoder call over the n queries; rows do not interact, so this equals n batch-1 calls). */
export function classEmbeddings(sd: StableDiffusion, classes: string[]): Tensor {
  if (classes.length === 0) throw new InputError('class embeddings: no classes given; pass at least one class name');
  const counts = classes.map((c) => classTokenCount(sd, c));
  const ids = classes.map((c) => sd.tokenizer.encodePadded(CLASS_QUERY_PREFIX + c));
  return scope(() => classEmbeddingsFromStates(sd.textEncoder.forward(sd.rt, ids).lastHiddenState, counts));
}
