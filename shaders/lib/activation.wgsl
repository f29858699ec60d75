// Shared activation functions, included by kernels that fuse an activation
// (`// #include "activation.wgsl"`). The including module declares nothing with these
// names; ACT selects the function at pipeline-compile time (host: nn/elementwise.ts ACT).
// erf uses a rational approximation with relative error below 1.2e-7
// (Numerical Recipes' erfc Chebyshev fit).

override ACT: u32 = 0u;

// Activation codes (host: nn/elementwise.ts ACT).
const ACT_NONE: u32 = 0u;
const ACT_SILU: u32 = 1u;
const ACT_GELU_ERF: u32 = 2u;
const ACT_GELU_TANH: u32 = 3u;
const ACT_QUICK_GELU: u32 = 4u;
const ACT_RELU: u32 = 5u;
const ACT_SIGMOID: u32 = 6u;
const ACT_EXP: u32 = 7u;

fn erf_approx(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
          t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
          t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}

fn sigmoid(x: f32) -> f32 {
  // exp(-|x|) never overflows; select() instead of a branch, because SIMD-on-CPU drivers
  // (lavapipe) execute both sides of a divergent if in every lane.
  let e = exp(-abs(x));
  let r = 1.0 / (1.0 + e);
  return select(e * r, r, x >= 0.0);
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

