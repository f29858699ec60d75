// Elementwise kernels: unary activations, binary ops with broadcasting (with an
// optional activation fused after the op, e.g. bias + SiLU), and the activation
// backward. One thread per output element; the 1-D workgroup index is folded into
// (x, y) by the host when it exceeds 65535 and recovered as wid.x + wid.y * nwg.x.
// Precision: f32 math throughout; erf uses a rational approximation with relative
// error below 1.2e-7 (Numerical Recipes' erfc Chebyshev fit).

alias T = f32;

// Activation codes (host: nn/elementwise.ts ACT).
const ACT_NONE: u32 = 0u;
const ACT_SILU: u32 = 1u;
const ACT_GELU_ERF: u32 = 2u;
const ACT_GELU_TANH: u32 = 3u;
const ACT_QUICK_GELU: u32 = 4u;
const ACT_RELU: u32 = 5u;
const ACT_SIGMOID: u32 = 6u;
const ACT_EXP: u32 = 7u;

override ACT: u32 = 0u;
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

fn erf_approx(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
          t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
          t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}

fn sigmoid(x: f32) -> f32 {
  // Split by sign so exp never overflows.
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}

fn act(x: f32) -> f32 {
  switch ACT {
    case 1u: { return x * sigmoid(x); }
    case 2u: { return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752)); }
    case 3u: { return 0.5 * x * (1.0 + tanh(0.79788456080286536 * (x + 0.044715 * x * x * x))); }
    case 4u: { return x * sigmoid(1.702 * x); }
    case 5u: { return max(x, 0.0); }
    case 6u: { return sigmoid(x); }
    case 7u: { return exp(x); }
    default: { return x; }
  }
}

// d act(x) / dx
fn act_grad(x: f32) -> f32 {
  switch ACT {
    case 1u: { let s = sigmoid(x); return s * (1.0 + x * (1.0 - s)); }
    case 2u: {
      let cdf = 0.5 * (1.0 + erf_approx(x * 0.70710678118654752));
      return cdf + x * 0.39894228040143268 * exp(-0.5 * x * x);
    }
    case 3u: {
      let k = 0.79788456080286536;
      let u = k * (x + 0.044715 * x * x * x);
      let th = tanh(u);
      return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * k * (1.0 + 3.0 * 0.044715 * x * x);
    }
    case 4u: { let s = sigmoid(1.702 * x); return s + 1.702 * x * s * (1.0 - s); }
    case 5u: { return select(0.0, 1.0, x > 0.0); }
    case 6u: { let s = sigmoid(x); return s * (1.0 - s); }
    case 7u: { return exp(x); }
    default: { return 1.0; }
  }
}

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
