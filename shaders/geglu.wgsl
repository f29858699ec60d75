// GEGLU (diffusers attention.py GEGLU, the SD 1.x transformer feed-forward gate):
// x [rows, 2n] is the output of the [.., 2*inner] projection; torch's chunk(2, dim=-1)
// takes the first half as `hidden` and the second as `gate`, and
// y[r, j] = x[r, j] * gelu(x[r, n + j]) with the exact (erf) GELU; y is [rows, n].
// One thread per output element (vec4 of four when n % 4 == 0: VEC = 4); the 1-D
// workgroup index is folded into (x, y) past 65535 and recovered as wid.x + wid.y * nwg.x.
// Precision: f32 math (gelu from lib/activation.wgsl with ACT = gelu), T storage.
// Inference only: the UNet is never trained here, so there is no backward entry.

alias T = f32;

// #include "activation.wgsl"

override WG: u32 = 256u;

struct Params {
  total: u32,  // rows * n / VEC: threads with work
  n: u32,      // output columns / VEC
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x_in: array<T>;
@group(0) @binding(2) var<storage, read_write> y_out: array<T>;

@compute @workgroup_size(WG)
fn geglu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.total) { return; }
  let r = i / p.n;
  let j = i - r * p.n;
  let h = r * 2u * p.n + j;
  y_out[i] = T(f32(x_in[h]) * act(f32(x_in[h + p.n])));
}

@group(0) @binding(1) var<storage, read> x4_in: array<vec4<T>>;
@group(0) @binding(2) var<storage, read_write> y4_out: array<vec4<T>>;

@compute @workgroup_size(WG)
fn geglu_forward_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.total) { return; }
  let r = i / p.n;
  let j = i - r * p.n;
  let h = r * 2u * p.n + j;
  let a = vec4<f32>(x4_in[h]);
  let g = vec4<f32>(x4_in[h + p.n]);
  y4_out[i] = vec4<T>(a * vec4<f32>(act(g.x), act(g.y), act(g.z), act(g.w)));
}
