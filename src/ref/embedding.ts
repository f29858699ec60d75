// Float64 reference for the embedding lookup, written from the definition.

/** table [V, D], ids [T] -> out [T, D]: out[t, :] = table[ids[t], :], zero for ids outside [0, V). */
export function embeddingRef(table: ArrayLike<number>, [vocab, dim]: number[], ids: ArrayLike<number>): Float64Array {
  const out = new Float64Array(ids.length * dim);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (id < 0 || id >= vocab) continue;
    for (let d = 0; d < dim; d++) out[t * dim + d] = table[id * dim + d];
  }
  return out;
}
