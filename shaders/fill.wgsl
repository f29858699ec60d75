// Fills a buffer range with one 32-bit pattern (NaN poisoning in tests, zeroing of
// gradient accumulators). One thread per word; 1-D index folded into (x, y).

override WG: u32 = 256u;

struct Params {
  n: u32,      // words to write
  value: u32,  // bit pattern
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> words: array<u32>;

@compute @workgroup_size(WG)
fn fill_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < p.n) { words[i] = p.value; }
}
