// Inverted dropout: y = x · keep / (1 − rate), keep = (u ≥ rate) for a uniform u in [0, 1) drawn by
// Philox4x32-10 from key (rng[0], rng[1]) and counter (i / 4, salt, rng[2], 0), word i % 4.
// rng[2] is the step, so a replayed training step draws a new mask when the step is advanced
// (rng[3] is the batch position that the gather kernel reads);
// the same kernel applied to the output gradient reproduces the same mask for backward.
struct Params {
  n: u32,
  stride: u32,
  salt: u32,
  rate: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> rng: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn mulhilo(a: u32, b: u32) -> vec2<u32> {
  let a0 = a & 0xffffu;
  let a1 = a >> 16u;
  let b0 = b & 0xffffu;
  let b1 = b >> 16u;
  let lo = a0 * b0;
  let mid1 = a1 * b0 + (lo >> 16u);
  let mid2 = a0 * b1 + (mid1 & 0xffffu);
  let hi = a1 * b1 + (mid1 >> 16u) + (mid2 >> 16u);
  return vec2<u32>(hi, a * b);
}

fn philox(c_in: vec4<u32>, k_in: vec2<u32>) -> vec4<u32> {
  var c = c_in;
  var k = k_in;
  for (var r = 0u; r < 10u; r++) {
    let p0 = mulhilo(0xD2511F53u, c.x);
    let p1 = mulhilo(0xCD9E8D57u, c.z);
    c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
  }
  return c;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x + g.y * p.stride;
  if (i >= p.n) {
    return;
  }
  let r = philox(vec4<u32>(i >> 2u, p.salt, rng[2], 0u), vec2<u32>(rng[0], rng[1]));
  let w = r[i & 3u];
  let u = f32(w >> 8u) * (1.0 / 16777216.0);
  y[i] = select(0.0, x[i] / (1.0 - p.rate), u >= p.rate);
}
