// The vec4 activations of the fused epilogues (matmul.wgsl, conv2d.wgsl, conv2d_strip.wgsl), with
// the formulas of unary.wgsl. Prepended to those kernels by src/ops/matmul.ts and src/ops/conv.ts;
// the kernel declares `override ACT: u32` (0 linear, 1 relu, 2 sigmoid, 3 tanh, 4 elu, 5 leaky
// relu, 6 gelu (erf), 7 gelu (tanh form)) and a uniform `p` with an `alpha: f32` field.
fn safe_tanh(v: vec4<f32>) -> vec4<f32> {
  let t = exp(-2.0 * abs(v));
  return sign(v) * (1.0 - t) / (1.0 + t);
}

fn sigmoid(v: vec4<f32>) -> vec4<f32> {
  let e = exp(-abs(v));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= vec4(0.0));
}

// erf with |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit), as in unary.wgsl.
fn erf_approx(v: vec4<f32>) -> vec4<f32> {
  let z = abs(v);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return sign(v) * (1.0 - r);
}

fn activate(v: vec4<f32>) -> vec4<f32> {
  let zero = vec4(0.0);
  switch ACT {
    case 1u: { return select(v, zero, v < zero); } // NaN stays NaN, as in TensorFlow
    case 2u: { return sigmoid(v); }
    case 3u: { return safe_tanh(v); }
    case 4u: { return select(p.alpha * (exp(v) - 1.0), v, v > zero); }
    case 5u: { return select(p.alpha * v, v, v > zero); }
    case 6u: { return 0.5 * v * (1.0 + erf_approx(v * 0.70710678118654752)); }
    case 7u: {
      return 0.5 * v * (1.0 + safe_tanh(0.79788456080286536 * (v + 0.044715 * v * v * v)));
    }
    default: { return v; }
  }
}
