// Element-wise unary ops on f32. OP selects the function (a pipeline constant, so the switch
// folds away); ALPHA is the slope for elu and leaky relu.
//  0 neg  1 abs  2 exp  3 log  4 sqrt  5 square  6 relu  7 sigmoid  8 tanh  9 elu
// 10 leaky_relu  11 gelu (erf)  12 gelu (tanh approximation)  13 reciprocal  14 sign
override OP: u32 = 0u;

struct Params {
  n: u32,
  stride: u32,
  alpha: f32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

// tanh that cannot overflow: exp of a non-positive argument only.
fn safe_tanh(v: f32) -> f32 {
  let t = exp(-2.0 * abs(v));
  return sign(v) * (1.0 - t) / (1.0 + t);
}

fn sigmoid(v: f32) -> f32 {
  if (v >= 0.0) {
    return 1.0 / (1.0 + exp(-v));
  }
  let e = exp(v);
  return e / (1.0 + e);
}

// erf with |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit).
fn erf_approx(v: f32) -> f32 {
  let z = abs(v);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return sign(v) * (1.0 - r);
}

fn apply(v: f32) -> f32 {
  switch OP {
    case 0u: { return -v; }
    case 1u: { return abs(v); }
    case 2u: { return exp(v); }
    case 3u: { return log(v); }
    case 4u: { return sqrt(v); }
    case 5u: { return v * v; }
    case 6u: { return select(v, 0.0, v < 0.0); } // NaN stays NaN, as in TensorFlow
    case 7u: { return sigmoid(v); }
    case 8u: { return safe_tanh(v); }
    case 9u: { return select(p.alpha * (exp(v) - 1.0), v, v > 0.0); }
    case 10u: { return select(p.alpha * v, v, v > 0.0); }
    case 11u: { return 0.5 * v * (1.0 + erf_approx(v * 0.70710678118654752)); }
    case 12u: {
      return 0.5 * v * (1.0 + safe_tanh(0.79788456080286536 * (v + 0.044715 * v * v * v)));
    }
    case 13u: { return 1.0 / v; }
    case 14u: { return sign(v); }
    default: { return v; }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.stride;
  if (i >= p.n) {
    return;
  }
  y[i] = apply(x[i]);
}
