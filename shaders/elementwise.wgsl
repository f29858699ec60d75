// Elementwise kernels: unary activations, binary ops with broadcasting (with an
// optional activation fused after the op, e.g. bias + SiLU), and the activation
// backward. EPT output elements per thread; the 1-D workgroup index is folded into
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

// A workgroup covers WG * EPT consecutive elements; thread `lid` takes elements
// base + j * WG + lid (j < EPT), so neighbouring lanes touch neighbouring addresses
// (SIMD-on-CPU drivers then load whole vectors instead of gathering).
override EPT: u32 = 4u;

fn block_base(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG * EPT + lid;
}

@group(0) @binding(1) var<storage, read> x_in: array<T>;
@group(0) @binding(2) var<storage, read_write> y_out: array<T>;

@compute @workgroup_size(WG)
fn unary_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let i0 = block_base(wid, nwg, lid);
  for (var j = 0u; j < EPT; j++) {
    let i = i0 + j * WG;
    if (i >= p.n) { return; }
    y_out[i] = T(act(p.alpha * f32(x_in[i]) + p.beta));
  }
}

// Binary: y = act(a OP b) with broadcasting through strides over `rank` merged dims
// (stored innermost last in slots 8 - rank .. 7; unused outer slots hold 1 and stride 0).
@group(0) @binding(1) var<storage, read> a_in: array<T>;
@group(0) @binding(2) var<storage, read> b_in: array<T>;
@group(0) @binding(3) var<storage, read_write> c_out: array<T>;

fn combine(a: f32, b: f32) -> f32 {
  switch OP {
    case 1u: { return a - b; }
    case 2u: { return a * b; }
    case 3u: { return a / b; }
    default: { return a + b; }
  }
}

// Offsets of a and b for output element i. The innermost four merged dims are read with
// static component indices (dynamic indexing into uniform arrays is slow on CPU drivers);
// only ranks above 4 walk the outer slots.
fn offsets(i: u32) -> vec2<u32> {
  let d = p.dims[1];
  let sa = p.a_strides[1];
  let sb = p.b_strides[1];
  var rem = i;
  let k3 = rem % d.w; rem = rem / d.w;
  let k2 = rem % d.z; rem = rem / d.z;
  let k1 = rem % d.y; rem = rem / d.y;
  let k0 = rem % d.x; rem = rem / d.x;
  var ia = k3 * sa.w + k2 * sa.z + k1 * sa.y + k0 * sa.x;
  var ib = k3 * sb.w + k2 * sb.z + k1 * sb.y + k0 * sb.x;
  if (p.rank > 4u) {
    for (var q = 3; q >= 0; q--) {
      let n = p.dims[0][q];
      let k = rem % n;
      rem = rem / n;
      ia += k * p.a_strides[0][q];
      ib += k * p.b_strides[0][q];
    }
  }
  return vec2<u32>(ia, ib);
}

@compute @workgroup_size(WG)
fn binary_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  // Consecutive elements per thread for the binary op: the index decomposition (integer
  // divisions, which CPU drivers cannot vectorise) is paid once, then the innermost
  // coordinate steps by its strides.
  let i0 = block_base(wid, nwg, 0u) + lid * EPT;
  if (i0 >= p.n) { return; }
  var o = offsets(i0);
  let inner = p.dims[1].w;
  let sa = p.a_strides[1].w;
  let sb = p.b_strides[1].w;
  var k = i0 % inner;
  for (var j = 0u; j < EPT; j++) {
    let i = i0 + j;
    if (i >= p.n) { return; }
    c_out[i] = T(act(combine(f32(a_in[o.x]), f32(b_in[o.y]))));
    k += 1u;
    if (k < inner) {
      o += vec2<u32>(sa, sb);
    } else {
      k = 0u;
      o = offsets(i + 1u);
    }
  }
}

// Activation backward: dx = dy * act'(alpha * x + beta) * alpha.
@group(0) @binding(1) var<storage, read> g_x: array<T>;
@group(0) @binding(2) var<storage, read> g_dy: array<T>;
@group(0) @binding(3) var<storage, read_write> g_dx: array<T>;

@compute @workgroup_size(WG)
fn unary_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let i0 = block_base(wid, nwg, lid);
  for (var j = 0u; j < EPT; j++) {
    let i = i0 + j * WG;
    if (i >= p.n) { return; }
    g_dx[i] = T(f32(g_dy[i]) * act_grad(p.alpha * f32(g_x[i]) + p.beta) * p.alpha);
  }
}
