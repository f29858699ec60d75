// Embedding lookup: out[t, d] = table[ids[t], d] (CLIP's token and position tables).
// Layout: table [V, D] (f32, or f16 through the T alias), ids i32 [T], out f32 [T, D].
// The table may exceed maxStorageBufferBindingSize (CLIP's 49408 x 768 f32 table is
// 152 MB), so the host binds it in row ranges [row_lo, row_hi) with aligned offsets,
// one dispatch per range; each dispatch writes only the outputs whose id falls in its
// range, and the last one also writes zero rows for ids outside [0, V) (torch raises;
// a GPU kernel cannot, and a zero row keeps the output defined).
// Mapping: one thread per output element; the 1-D workgroup index is folded into
// (x, y) by the host and recovered as wid.x + wid.y * nwg.x.
// Precision: a load, widened to f32 for f16 tables.

alias T = f32;

override WG: u32 = 256u;

struct Params {
  n: u32,        // output elements: ids * dim
  dim: u32,
  row_lo: i32,   // table row at the start of binding 1
  row_hi: i32,   // one past the last bound row
  vocab: i32,
  last: u32,     // 1 on the last range: zero the rows of invalid ids
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<T>;
@group(0) @binding(2) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn embedding_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= p.n) { return; }
  let id = ids[t / p.dim];
  if (id >= p.row_lo && id < p.row_hi) {
    out[t] = f32(table[u32(id - p.row_lo) * p.dim + t % p.dim]);
  } else if (p.last != 0u && (id < 0 || id >= p.vocab)) {
    out[t] = 0.0;
  }
}
