// Adam / AdamW parameter update, one element per thread, in PyTorch's order
// (torch.optim.Adam/AdamW single-tensor path, 1.13):
//   AdamW: p = p * (1 - lr * wd)              (decoupled decay, DECOUPLED)
//   Adam:  g = g + wd * p                       (L2 decay folded into the gradient)
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g * g
//   p = p - step_size * m / (sqrt(v) / sqrt(bias_correction2) + eps)
// with step_size = lr / (1 - beta1^t) and sqrt(1 - beta2^t) computed on the host in
// float64 and rounded to f32 (torch computes them as Python floats, also float64).
// Layout: flat contiguous param, grad, m, v (same size). Mapping: 1-D, workgroup index
// folded into (x, y) by the host and recovered as wid.x + wid.y * nwg.x.
// Precision: f32, one rounding per torch op (no fma contraction is requested).

override WG: u32 = 256u;
override DECOUPLED: bool = false;

struct Params {
  n: u32,
  beta1: f32,
  beta2: f32,
  one_minus_beta1: f32,
  one_minus_beta2: f32,
  step_size: f32,
  bc2_sqrt: f32,
  eps: f32,
  weight_decay: f32,   // Adam: L2 coefficient
  decay: f32,          // AdamW: 1 - lr * weight_decay
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> exp_avg: array<f32>;
@group(0) @binding(4) var<storage, read_write> exp_avg_sq: array<f32>;

@compute @workgroup_size(WG)
fn optim_adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.n) { return; }
  var w = param[i];
  var g = grad[i];
  if (DECOUPLED) { w = w * p.decay; } else { g = g + p.weight_decay * w; }
  let m = exp_avg[i] * p.beta1 + g * p.one_minus_beta1;
  let v = exp_avg_sq[i] * p.beta2 + p.one_minus_beta2 * (g * g);
  exp_avg[i] = m;
  exp_avg_sq[i] = v;
  let denom = sqrt(v) / p.bc2_sqrt + p.eps;
  param[i] = w - p.step_size * (m / denom);
}
