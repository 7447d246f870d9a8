// The input gradient of a strided 2-D convolution (NHWC) as an implicit GEMM. (The forward pass
// and stride-1 input gradients take the direct kernel of conv2d_strip.wgsl.)
//
// The product is Y[m, o] = Σ_{t, c} A[m, (t, c)] · B[(t, c), o] + bias[o], where m runs over the
// output grid (n, u, v) (M rows), t = (ky, kx) over the taps of the kernel and c over the inner
// channels. A is never materialised: row m at tap t is one pixel of the source tensor (its `ci`
// channels are contiguous), or zeros where the tap falls into the padding.
//
// A transposed convolution: source dy [N, Ho, Wo, Cout], output dx [N, H, W, Cin];
//   ci = Cout, co = Cin. Input pixel (u, v) received, in the forward pass, from
//   output pixel ((u + pt − ky·dh)/sh, (v + pl − kx·dw)/sw) when both divisions are exact and in
//   range. B[(t, c), o] = w[t, o, c]: read 4 consecutive c at a time (transposed in place).
//
// Each invocation computes a block of ROWS consecutive rows × 4·C4 consecutive columns in
// registers (ROWS·C4 vec4 accumulators); per tap and per 4 inner channels it loads ROWS vec4 of A
// (one per row) and 4·C4 vec4 of B, and does ROWS·C4·16 multiply-adds. No workgroup memory: on
// llvmpipe it only adds copies. Edges are handled by clamping loads to valid addresses and guarding
// stores; inner channels past ci are masked to zero in A (C_TAIL).
//
// The block is straight-line code generated for each (ROWS, C4) by src/ops/conv.ts (loops over
// arrays of accumulators were not kept in registers by llvmpipe: 2.5× slower on a 3×3×32→64
// layer). The WGSL prefix defines:
//   const ROWS: u32, const C4: u32          the block (ROWS rows × C4 groups of 4 columns)
//   struct Acc, Pix, Offs, ARows, BTile      the accumulators (ROWS·C4 vec4), each row's (n, u, v),
//                                            its source offset at one tap, its 4 values of A, and
//                                            the 4 × 4·C4 tile of B
//   fn pixels_of(row0: u32) -> Pix           decode() of each row of the block
//   fn offsets_of(q: Pix, ky: u32, kx: u32) -> Offs   source_pixel() of each row
//   fn load_rows(o: Offs, c: u32) -> ARows   load_row() of each row
//   fn load_b(t: u32, c: u32, col0: u32) -> BTile     b_group() of each column group
//   fn mac(acc: Acc, a: ARows, b: BTile) -> Acc       acc[r, j] += a[r] · B[:, j] (ROWS·C4·16 fma)
//   fn acc_array(acc: Acc) -> array<vec4<f32>, ROWS * C4>
//   const VEC_A: bool                        A loads are 4-aligned (ci % 4 == 0)
//   const VEC_B: bool                        B loads are 4-aligned (ci % 4 == 0)
//   fn ld_a(i: u32, last: u32) -> vec4<f32>  elements i..i+3 of the source (binding 0)
//   fn ld_b(i: u32, last: u32) -> vec4<f32>  elements i..i+3 of w (binding 1)
//   fn st_y(i: u32, v: vec4<f32>, count: u32) stores the first `count` lanes at i (binding 2)
//   fn st_z(i: u32, v: vec4<f32>, count: u32) the same for the pre-activation (binding 5, or empty)
// ACT selects the epilogue's activation with the formulas of matmul.wgsl:
//   0 linear  1 relu  2 sigmoid  3 tanh  4 elu  5 leaky relu  6 gelu (erf)  7 gelu (tanh form)
override C_TAIL: bool = false;
override ACT: u32 = 0u;

struct Params {
  // Output grid (H, W) and source grid (Ho, Wo).
  out_h: u32,
  out_w: u32,
  src_h: u32,
  src_w: u32,
  // Inner channels (columns of A) and output channels (columns of Y).
  ci: u32,
  co: u32,
  kh: u32,
  kw: u32,
  sh: u32,
  sw: u32,
  dh: u32,
  dw: u32,
  pt: u32,
  pl: u32,
  // Rows of the product (N · out_h · out_w).
  m: u32,
  // Column blocks (ceil(co / (4 · C4))) and total blocks, and invocations per grid row.
  col_blocks: u32,
  blocks: u32,
  stride: u32,
  has_bias: u32,
  alpha: f32,
}

@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

fn bias_at(o: u32) -> f32 {
  return select(0.0, bias[min(o, arrayLength(&bias) - 1u)], p.has_bias == 1u);
}

// Activations: shaders/activation_vec4.wgsl (prepended), `activate(v)`.

// The offset of the source pixel that row (n, u, v) reads at tap (ky, kx), or -1 where no output
// pixel reached this input pixel through this tap (or it lies in the padding).
fn source_pixel(n: u32, u: u32, v: u32, ky: u32, kx: u32) -> i32 {
  let ty = i32(u + p.pt) - i32(ky * p.dh);
  let tx = i32(v + p.pl) - i32(kx * p.dw);
  if (ty < 0 || tx < 0 || u32(ty) % p.sh != 0u || u32(tx) % p.sw != 0u) {
    return -1;
  }
  let sy = ty / i32(p.sh);
  let sx = tx / i32(p.sw);
  if (sy < 0 || sx < 0 || sy >= i32(p.src_h) || sx >= i32(p.src_w)) {
    return -1;
  }
  return i32(((n * p.src_h + u32(sy)) * p.src_w + u32(sx)) * p.ci);
}

// Row m's (n, u, v), for m clamped to the last row (rows past M are computed, never stored).
fn decode(m: u32) -> vec3<u32> {
  let plane = p.out_h * p.out_w;
  let mm = min(m, p.m - 1u);
  let rem = mm % plane;
  return vec3(mm / plane, rem / p.out_w, rem % p.out_w);
}

// 4 inner channels c..c+3 of the source pixel at offset `o` (zeros when o < 0 or past ci).
fn load_row(o: i32, c: u32) -> vec4<f32> {
  let base = u32(max(o, 0));
  var v = ld_a(base + c, base + p.ci - 1u);
  if (C_TAIL) {
    v = select(vec4(0.0), v, vec4(c, c + 1u, c + 2u, c + 3u) < vec4(p.ci));
  }
  return select(vec4(0.0), v, o >= 0);
}

// 4 steps (inner channels c..c+3 at tap t) × 4 output channels o0..o0+3 of B: k_i is step i.
struct Quad {
  k0: vec4<f32>,
  k1: vec4<f32>,
  k2: vec4<f32>,
  k3: vec4<f32>,
}

fn b_group(t: u32, c: u32, o0: u32) -> Quad {
  let ci = p.ci;
  let co = p.co;
  // w [taps, co, ci] read transposed: 4 consecutive inner channels of each output channel.
  let s0 = (t * co + min(o0, co - 1u)) * ci;
  let s1 = (t * co + min(o0 + 1u, co - 1u)) * ci;
  let s2 = (t * co + min(o0 + 2u, co - 1u)) * ci;
  let s3 = (t * co + min(o0 + 3u, co - 1u)) * ci;
  let q0 = ld_b(s0 + c, s0 + ci - 1u);
  let q1 = ld_b(s1 + c, s1 + ci - 1u);
  let q2 = ld_b(s2 + c, s2 + ci - 1u);
  let q3 = ld_b(s3 + c, s3 + ci - 1u);
  return Quad(
    vec4(q0.x, q1.x, q2.x, q3.x),
    vec4(q0.y, q1.y, q2.y, q3.y),
    vec4(q0.z, q1.z, q2.z, q3.z),
    vec4(q0.w, q1.w, q2.w, q3.w),
  );
}

@compute @workgroup_size(8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let idx = gid.x + gid.y * p.stride;
  if (idx >= p.blocks) {
    return;
  }
  let row0 = (idx / p.col_blocks) * ROWS;
  let col0 = (idx % p.col_blocks) * (4u * C4);
  let pix = pixels_of(row0);
  var acc: Acc;
  for (var ky = 0u; ky < p.kh; ky++) {
    for (var kx = 0u; kx < p.kw; kx++) {
      let t = ky * p.kw + kx;
      let offs = offsets_of(pix, ky, kx);
      for (var c = 0u; c < p.ci; c += 4u) {
        acc = mac(acc, load_rows(offs, c), load_b(t, c, col0));
      }
    }
  }

  // Epilogue: bias, activation, guarded stores (one copy of the code, looping over the block).
  let co = p.co;
  let res = acc_array(acc);
  for (var j = 0u; j < C4; j++) {
    let o = col0 + 4u * j;
    if (o >= co) {
      break;
    }
    let bv = vec4(bias_at(o), bias_at(o + 1u), bias_at(o + 2u), bias_at(o + 3u));
    for (var r = 0u; r < ROWS; r++) {
      let m = row0 + r;
      if (m >= p.m) {
        break;
      }
      let z = res[r * C4 + j] + bv;
      let i = m * co + o;
      st_y(i, activate(z), co - o);
      st_z(i, z, co - o);
    }
  }
}
