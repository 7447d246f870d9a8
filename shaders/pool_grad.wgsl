// Gradients of 2-D max and average pooling (NHWC), as a gather: one invocation per input pixel
// (n, iy, ix) and group of CPI channels (`p.chunks` groups per pixel; the integer divisions are
// done once per invocation); each element sums the gradients of the outputs whose window holds
// it, oy in
// [⌈(iy + pt − ph + 1)/sh⌉, ⌊(iy + pt)/sh⌋] ∩ [0, Ho) (the same along the width). No atomics, and
// every element is written once, so no clearing pass is needed.
//
// KIND 0, max: an output's gradient goes to the element its forward pass chose (`arg`, the first
//   maximum of its window).
// KIND 1, average: each element of the window gets dy / count, count = the window's elements
//   inside the input (as in pool.wgsl).
// The WGSL prefix defines fn ld_arg(o: u32) -> u32, which reads the argmax (binding 3, max
// pooling) or returns 0 (average pooling).
override KIND: u32 = 0u;

// struct Params: shaders/pool_params.wgsl (prepended by src/ops/pool.ts).

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

// The outputs along one axis whose window [o·s − pad, o·s − pad + k) holds position i.
fn out_range(i: u32, pad: u32, k: u32, s: u32, size: u32) -> vec2<u32> {
  let t = i32(i + pad);
  let lo = max(t - i32(k) + i32(s), 0) / i32(s); // ⌈(t − k + 1)/s⌉ for t − k + 1 ≥ 0, else 0
  let hi = min(t / i32(s) + 1, i32(size));
  return vec2(u32(lo), u32(max(hi, lo)));
}

// The number of input elements in an output's window along one axis.
fn inside(o: u32, pad: u32, k: u32, s: u32, size: u32) -> u32 {
  let a = i32(o * s) - i32(pad);
  return u32(min(a + i32(k), i32(size)) - max(a, 0));
}

override CPI: u32 = 1u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let inv = gid.x + gid.y * p.stride;
  if (inv >= p.total) {
    return;
  }
  let c0 = (inv % p.chunks) * CPI;
  let pix = inv / p.chunks;
  let ix = pix % p.w;
  let iy = (pix / p.w) % p.h;
  let n = pix / (p.w * p.h);
  let ry = out_range(iy, p.pt, p.ph, p.sh, p.ho);
  let rx = out_range(ix, p.pl, p.pw, p.sw, p.wo);
  let cend = min(c0 + CPI, p.c);
  for (var ch = c0; ch < cend; ch++) {
    let i = pix * p.c + ch;
    var g = 0.0;
    for (var oy = ry.x; oy < ry.y; oy++) {
      for (var ox = rx.x; ox < rx.y; ox++) {
        let o = ((n * p.ho + oy) * p.wo + ox) * p.c + ch;
        if (KIND == 0u) {
          if (ld_arg(o) == i) {
            g += dy[o];
          }
        } else {
          let cnt = inside(oy, p.pt, p.ph, p.sh, p.h) * inside(ox, p.pl, p.pw, p.sw, p.w);
          g += dy[o] / f32(cnt);
        }
      }
    }
    dx[i] = g;
  }
}
