// Elementwise kernels: unary activations, binary ops with broadcasting (with an
// optional activation fused after the op, e.g. bias + SiLU), and the activation
// backward. One thread per output element; the 1-D workgroup index is folded into
// (x, y) by the host when it exceeds 65535 and recovered as wid.x + wid.y * nwg.x.
// Precision: f32 math throughout (activations from lib/activation.wgsl).

alias T = f32;

// #include "activation.wgsl"

// Binary op codes: 0 add, 1 sub, 2 mul, 3 div.
override OP: u32 = 0u;
override WG: u32 = 256u;

struct Params {
  n: u32,
  rank: u32,
  alpha: f32,   // unary: y = act(alpha * x + beta)
  beta: f32,
  dims: array<vec4<u32>, 2>,      // output dims (8), innermost last, padded with 1 in front
  a_strides: array<vec4<u32>, 2>, // element strides of a per output dim (0 = broadcast)
  b_strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;

fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

@group(0) @binding(1) var<storage, read> x_in: array<T>;
@group(0) @binding(2) var<storage, read_write> y_out: array<T>;

@compute @workgroup_size(WG)
fn unary_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let i = linear_index(wid, nwg, lid);
  if (i >= p.n) { return; }
  y_out[i] = T(act(p.alpha * f32(x_in[i]) + p.beta));
}

// Binary: y = act(a OP b) with broadcasting through strides.
@group(0) @binding(1) var<storage, read> a_in: array<T>;
@group(0) @binding(2) var<storage, read> b_in: array<T>;
@group(0) @binding(3) var<storage, read_write> c_out: array<T>;

@compute @workgroup_size(WG)
fn binary_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let i = linear_index(wid, nwg, lid);
  if (i >= p.n) { return; }
  var rem = i;
  var ia = 0u;
  var ib = 0u;
  for (var d = 7; d >= 0; d--) {
    let n = p.dims[d / 4][d % 4];
    let k = rem % n;
    rem = rem / n;
    ia += k * p.a_strides[d / 4][d % 4];
    ib += k * p.b_strides[d / 4][d % 4];
  }
  let a = f32(a_in[ia]);
  let b = f32(b_in[ib]);
  var r: f32;
  switch OP {
    case 1u: { r = a - b; }
    case 2u: { r = a * b; }
    case 3u: { r = a / b; }
    default: { r = a + b; }
  }
  c_out[i] = T(act(r));
}

// Activation backward: dx = dy * act'(alpha * x + beta) * alpha.
@group(0) @binding(1) var<storage, read> g_x: array<T>;
@group(0) @binding(2) var<storage, read> g_dy: array<T>;
@group(0) @binding(3) var<storage, read_write> g_dx: array<T>;

@compute @workgroup_size(WG)
fn unary_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let i = linear_index(wid, nwg, lid);
  if (i >= p.n) { return; }
  g_dx[i] = T(f32(g_dy[i]) * act_grad(p.alpha * f32(g_x[i]) + p.beta) * p.alpha);
}
