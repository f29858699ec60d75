// Embedding lookup (nn.Embedding forward): table [V, D] f32 or f16, ids i32 of any shape
// -> [...ids.shape, D] f32. Tables past the binding limit (CLIP's token table) are bound
// in aligned row ranges, one dispatch each. Ids outside [0, V) give zero rows.
// Inference only: the text encoder is frozen. Kernel: shaders/embedding.wgsl.
import { i32 } from '../gpu/params.js';
import { ShapeError } from '../gpu/errors.js';
import { BYTES, Tensor } from '../tensor/tensor.js';
import { bindingRuns, runBinding } from './layout.js';

const WG = 256;

/** out[..., :] = table[ids[...], :]; ids outside [0, V) give zero rows. */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  if (table.shape.length !== 2) throw new ShapeError(`embedding: table must be [V, D], got [${table.shape}]`);
  if (table.dtype !== 'f32' && table.dtype !== 'f16') throw new ShapeError(`embedding: table must be f32 or f16, got ${table.dtype}`);
  if (ids.dtype !== 'i32') throw new ShapeError(`embedding: ids must be i32, got ${ids.dtype}`);
  const [vocab, dim] = table.shape;
  const out = Tensor.empty(table.rt, [...ids.shape, dim], 'f32', 'embedding');
  if (out.size === 0) return out;
  const runs = bindingRuns(table.rt, vocab, [dim * BYTES[table.dtype]], 'embedding');
  runs.forEach((run, k) => {
    table.rt.dispatch(
      { family: 'embedding', entry: 'embedding_forward', dtype: table.dtype === 'f16' ? 'f16' : 'f32', overrides: { WG } },
      {
        params: [out.size, dim, i32(run.start), i32(run.start + run.count), i32(vocab), k === runs.length - 1 ? 1 : 0],
        bindings: [runBinding(table, run, dim), ids.binding, out.binding],
        workgroups: Math.ceil(out.size / WG),
        label: `embedding[rows ${run.start}..${run.start + run.count}]`,
      },
    );
  });
  return out;
}
