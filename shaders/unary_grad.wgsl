// Gradients of the element-wise unary ops: dx = dy · f'(x), using the op's input x and output y
// (whichever is cheaper and more accurate). OP is numbered as in unary.wgsl; ALPHA as there.
override OP: u32 = 0u;

struct Params {
  n: u32,
  stride: u32,
  alpha: f32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn safe_tanh(v: f32) -> f32 {
  let t = exp(-2.0 * abs(v));
  return sign(v) * (1.0 - t) / (1.0 + t);
}

// erf with |error| < 1.2e-7, as in unary.wgsl.
fn erf_approx(v: f32) -> f32 {
  let z = abs(v);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return sign(v) * (1.0 - r);
}

fn grad(v: f32, u: f32, g: f32) -> f32 {
  switch OP {
    case 0u: { return -g; }
    case 1u: { return g * sign(v); }
    case 2u: { return g * u; }
    case 3u: { return g / v; }
    case 4u: { return g * 0.5 / u; }
    case 5u: { return g * 2.0 * v; }
    case 6u: { return select(0.0, g, v > 0.0); }
    case 7u: {
      // σ'(x) = e^-|x| / (1 + e^-|x|)², exact in relative terms where σ saturates
      let e = exp(-abs(v));
      return g * e / ((1.0 + e) * (1.0 + e));
    }
    case 8u: {
      // tanh'(x) = sech²(x) = 4e^-2|x| / (1 + e^-2|x|)², without the cancellation of 1 - tanh²
      let e = exp(-2.0 * abs(v));
      return g * 4.0 * e / ((1.0 + e) * (1.0 + e));
    }
    case 9u: { return select(g * (u + p.alpha), g, v > 0.0); }
    case 10u: { return select(g * p.alpha, g, v > 0.0); }
    case 11u: {
      // d/dx x·Φ(x) = Φ(x) + x·φ(x)
      let cdf = 0.5 * (1.0 + erf_approx(v * 0.70710678118654752));
      let pdf = 0.39894228040143268 * exp(-0.5 * v * v);
      return g * (cdf + v * pdf);
    }
    case 12u: {
      let k = 0.79788456080286536;
      let inner = k * (v + 0.044715 * v * v * v);
      let t = safe_tanh(inner);
      let dinner = k * (1.0 + 3.0 * 0.044715 * v * v);
      return g * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * dinner);
    }
    case 13u: { return -g * u * u; }
    default: { return 0.0; }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * p.stride;
  if (i >= p.n) {
    return;
  }
  dx[i] = grad(x[i], y[i], dy[i]);
}
