// 2-D max and average pooling (NHWC), forward. One invocation per output pixel (n, oy, ox) and
// group of CPI channels (`p.chunks` groups per pixel): the index arithmetic (integer divisions,
// slow on CPU adapters) is done once per invocation, then each channel of the group reads its
// window (ph × pw, strides sh × sw, TensorFlow padding pt/pl before) directly, padded positions
// skipped. Memory-bound: no blocking.
//
// KIND 0, max: the first maximum in row-major window order wins (ties go to the earliest element),
//   and its flat input index is written to `arg` for the gradient (pool_grad.wgsl).
// KIND 1, average: the sum divided by the number of window elements inside the input (as
//   TensorFlow's "same" average pooling: padded positions are not counted).
// The WGSL prefix defines fn st_arg(o: u32, i: u32), which stores the argmax (binding 3, max
// pooling) or does nothing (average pooling).
// Every window holds at least one input element (TensorFlow's padding is < the window).
override KIND: u32 = 0u;

// struct Params: shaders/pool_params.wgsl (prepended by src/ops/pool.ts).

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

override CPI: u32 = 1u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let inv = gid.x + gid.y * p.stride;
  if (inv >= p.total) {
    return;
  }
  let c0 = (inv % p.chunks) * CPI;
  let pix = inv / p.chunks;
  let ox = pix % p.wo;
  let oy = (pix / p.wo) % p.ho;
  let n = pix / (p.wo * p.ho);
  let y0 = i32(oy * p.sh) - i32(p.pt);
  let x0 = i32(ox * p.sw) - i32(p.pl);
  let ylo = u32(max(y0, 0));
  let yhi = u32(min(y0 + i32(p.ph), i32(p.h)));
  let xlo = u32(max(x0, 0));
  let xhi = u32(min(x0 + i32(p.pw), i32(p.w)));
  let inv_count = 1.0 / f32((yhi - ylo) * (xhi - xlo));
  let cend = min(c0 + CPI, p.c);
  for (var ch = c0; ch < cend; ch++) {
    let o = pix * p.c + ch;
    var best = 0.0;
    var at = 0u;
    var found = false;
    var s = 0.0;
    for (var iy = ylo; iy < yhi; iy++) {
      var i = ((n * p.h + iy) * p.w + xlo) * p.c + ch;
      for (var ix = xlo; ix < xhi; ix++) {
        let v = x[i];
        if (KIND == 0u) {
          if (!found || v > best) {
            best = v;
            at = i;
            found = true;
          }
        } else {
          s += v;
        }
        i += p.c;
      }
    }
    if (KIND == 0u) {
      y[o] = best;
      st_arg(o, at);
    } else {
      y[o] = s * inv_count;
    }
  }
}
