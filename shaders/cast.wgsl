// Element-type conversion between f32 and f16 storage, where a model running in f16 meets
// f32 data (latents, timestep embeddings, embedding lookups, images) and back.
//   cast_narrow: dst[i] = T(src[i]), src f32 -> dst T (compiled with T = f16)
//   cast_widen:  dst[i] = f32(src[i]), src T -> dst f32 (exact: every f16 is an f32)
// Layout: flat arrays of n elements; the _vec4 entries move 4 elements per thread (the
// host uses them when n % 4 == 0). Tensors past the binding limit are converted in runs
// bound at aligned offsets, n counting the run's elements (or vec4s).
// Mapping: one thread per element (or vec4); the 1-D workgroup index is folded into
// (x, y) by the host past 65535 and recovered as wid.x + wid.y * nwg.x.
// Precision: narrowing rounds to a neighbouring f16 (WGSL leaves the choice between the
// two nearest values to the implementation; lavapipe rounds to nearest even); values
// past the f16 range (|x| > 65504) have no f16 value, and callers keep to the range.

alias T = f32;

override WG: u32 = 256u;

struct Params {
  n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn thread_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

@group(0) @binding(1) var<storage, read> wide_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> narrow_out: array<T>;

@compute @workgroup_size(WG)
fn cast_narrow(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = thread_index(wid, nwg, lid);
  if (i >= p.n) { return; }
  narrow_out[i] = T(wide_in[i]);
}

@group(0) @binding(1) var<storage, read> wide_in4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> narrow_out4: array<vec4<T>>;

@compute @workgroup_size(WG)
fn cast_narrow_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let i = thread_index(wid, nwg, lid);
  if (i >= p.n) { return; }
  narrow_out4[i] = vec4<T>(wide_in4[i]);
}

@group(0) @binding(1) var<storage, read> narrow_in: array<T>;
@group(0) @binding(2) var<storage, read_write> wide_out: array<f32>;

@compute @workgroup_size(WG)
fn cast_widen(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let i = thread_index(wid, nwg, lid);
  if (i >= p.n) { return; }
  wide_out[i] = f32(narrow_in[i]);
}

@group(0) @binding(1) var<storage, read> narrow_in4: array<vec4<T>>;
@group(0) @binding(2) var<storage, read_write> wide_out4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn cast_widen_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let i = thread_index(wid, nwg, lid);
  if (i >= p.n) { return; }
  wide_out4[i] = vec4<f32>(narrow_in4[i]);
}
