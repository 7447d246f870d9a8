// Register-tiled matrix product with a fused epilogue: Y = act(op(A)·op(B) + bias).
//
// Each invocation computes a 16 × 16 block of outputs held in registers (64 vec4 accumulators);
// a workgroup is 8 invocations (one 8-wide SIMD group on llvmpipe) arranged as (8 / LC) block-rows
// × LC block-columns, so a workgroup covers (8 / LC)·16 rows × LC·16 columns. Per step of 4 along
// K an invocation loads a 16 × 4 tile of op(A) and a 4 × 16 tile of op(B) (16 + 16 vector loads)
// and does 1,024 multiply-adds. Workgroup memory and barriers are not used: on a CPU adapter they
// only add copies, and on every adapter each invocation's loads are served by the caches.
//
// Layouts (override constants, folded when the pipeline is created):
//   TRANS_A = false: A is stored [M, K] (row-major);  true: A is stored [K, M] and read as Aᵀ.
//   TRANS_B = false: B is stored [K, N];              true: B is stored [N, K] and read as Bᵀ.
// Transposed operands are read in place: a load fetches 4 consecutive elements along the stored
// row, and the 4 × 4 register transposition that follows costs nothing after compilation.
//
// K_TAIL is true when K is not a multiple of 4: the last step masks the elements past K to zero
// (in both operands, so that no clamped load reaches a stored result).
//
// ACT selects the epilogue's activation, with the formulas of unary.wgsl:
//   0 linear  1 relu  2 sigmoid  3 tanh  4 elu  5 leaky relu  6 gelu (erf)  7 gelu (tanh form)
//   8 softmax over the row, inside the invocation: only when N ≤ 16 and LC = 1, so that one
//     invocation holds whole rows (`linear` normalises longer rows with the softmax op).
//
// COL_SUM also writes the column sums of op(B) (1ᵀ·op(B), N values) through `st_colsum`: the
// invocations of the first block-row add up the B tiles they load anyway. The weight gradient
// of a dense layer, dW = Xᵀ·dZ, gets the bias gradient Σₖ dZ[k, n] this way without a dispatch.
//
// The WGSL prefix declares the bindings and their access helpers, one variant per operand:
//   binding 0 `a`, binding 1 `b`, binding 2 `y` (array<vec4<f32>> when the stored rows are a
//   multiple of 4 long, else array<f32>), binding 4 `bias` (array<f32>, read when p.has_bias is
//   1), then optionally `z` (the pre-activation, kept for the gradient) and `colsum`, and defines
//   fn ld_a(i: u32, last: u32) -> vec4<f32>   elements i..i+3 of `a` (indices clamped to `last`)
//   fn ld_b(i: u32, last: u32) -> vec4<f32>   the same for `b`
//   fn bias_at(n: u32) -> f32                 the bias of column n (0 without a bias)
//   fn prepare_y()                            called once before the epilogue (may be empty)
//   fn st_y(i: u32, v: vec4<f32>, count: u32) stores the first `count` (1–4) lanes of v at i
//   fn st_z(i: u32, v: vec4<f32>, count: u32) the same for `z` (empty when Z is not kept)
//   fn st_colsum(n0: u32, s: Row)             stores the column sums n0..n0+15 that are < N
//   const VEC_A: bool, const VEC_B: bool      whether `ld_a`/`ld_b` need 4-aligned indices
// Loads are clamped to valid rows and columns, so edges need no padding; only stores are guarded.
//
// Optimizer epilogue (src/optim/optimizers.ts `weightUpdate`): for a dense kernel's gradient
// dW = Xᵀ·dZ in a compiled training step, the prefix may instead hold the optimizer update of
// shaders/optim_update.wgsl: binding 2 is the optimizer's control buffer, bindings 4.. the
// parameter region and the optimizer's slots, `prepare_y` computes the step's scalars and `st_y`
// updates parameter elements p.upd_offset + i.. with v as their gradient, which is never stored.
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override K_TAIL: bool = false;
override ACT: u32 = 0u;
override COL_SUM: bool = false;

struct Params {
  m: u32,
  n: u32,
  k: u32,
  // Invocations along the columns of a workgroup (1, 2, 4 or 8).
  lanes_c: u32,
  alpha: f32,
  // 1 when a bias is bound at binding 4 (otherwise binding 4 holds any buffer and reads as 0).
  has_bias: u32,
  // Optimizer epilogue: the parameter's first element in its region, the word of the step counter
  // in the control buffer, and 1 when weight decay applies to it.
  upd_offset: u32,
  upd_counter: u32,
  upd_decay: u32,
  _pad1: u32,
  _pad2: u32,
  _pad3: u32,
}

@group(0) @binding(3) var<uniform> p: Params;

// One row of a 16-column block.
struct Row {
  c0: vec4<f32>,
  c1: vec4<f32>,
  c2: vec4<f32>,
  c3: vec4<f32>,
}

// A 16 × 16 block: the accumulators.
struct Block {
  r0: Row,
  r1: Row,
  r2: Row,
  r3: Row,
  r4: Row,
  r5: Row,
  r6: Row,
  r7: Row,
  r8: Row,
  r9: Row,
  r10: Row,
  r11: Row,
  r12: Row,
  r13: Row,
  r14: Row,
  r15: Row,
}

// 4 rows × 4 steps of op(A): one vec4 (4 consecutive k) per row.
struct QuadA {
  r0: vec4<f32>,
  r1: vec4<f32>,
  r2: vec4<f32>,
  r3: vec4<f32>,
}

// 4 steps × 16 columns of op(B): one Row per k.
struct TileB {
  k0: Row,
  k1: Row,
  k2: Row,
  k3: Row,
}

// The 4 × 4 tile of op(A) for rows m..m+3 and steps k..k+3.
fn quad_a(m: u32, k: u32) -> QuadA {
  let mm = p.m;
  let kk = p.k;
  var t: QuadA;
  if (TRANS_A) {
    // Stored [K, M]: each load is the 4 rows at one k; transposed in registers.
    let q = min(m, mm - select(1u, 4u, VEC_A));
    let s0 = min(k, kk - 1u) * mm;
    let s1 = min(k + 1u, kk - 1u) * mm;
    let s2 = min(k + 2u, kk - 1u) * mm;
    let s3 = min(k + 3u, kk - 1u) * mm;
    let x0 = ld_a(s0 + q, s0 + mm - 1u);
    let x1 = ld_a(s1 + q, s1 + mm - 1u);
    let x2 = ld_a(s2 + q, s2 + mm - 1u);
    let x3 = ld_a(s3 + q, s3 + mm - 1u);
    t = QuadA(
      vec4(x0.x, x1.x, x2.x, x3.x),
      vec4(x0.y, x1.y, x2.y, x3.y),
      vec4(x0.z, x1.z, x2.z, x3.z),
      vec4(x0.w, x1.w, x2.w, x3.w),
    );
  } else {
    // Stored [M, K]: each load is 4 consecutive k of one row.
    let last = mm - 1u;
    let e = kk - 1u;
    let b0 = min(m, last) * kk;
    let b1 = min(m + 1u, last) * kk;
    let b2 = min(m + 2u, last) * kk;
    let b3 = min(m + 3u, last) * kk;
    t = QuadA(ld_a(b0 + k, b0 + e), ld_a(b1 + k, b1 + e), ld_a(b2 + k, b2 + e), ld_a(b3 + k, b3 + e));
  }
  if (K_TAIL) {
    let z = vec4(0.0);
    let v = vec4(k, k + 1u, k + 2u, k + 3u) < vec4(kk);
    t = QuadA(select(z, t.r0, v), select(z, t.r1, v), select(z, t.r2, v), select(z, t.r3, v));
  }
  return t;
}

// The 4 × 16 tile of op(B) for steps k..k+3 and columns col0..
fn tile_b(col0: u32, k: u32) -> TileB {
  let nn = p.n;
  let kk = p.k;
  var t: TileB;
  if (TRANS_B) {
    // Stored [N, K]: each load is 4 consecutive k of one column.
    let last = nn - 1u;
    let e = kk - 1u;
    let b0 = min(col0, last) * kk;
    let b1 = min(col0 + 1u, last) * kk;
    let b2 = min(col0 + 2u, last) * kk;
    let b3 = min(col0 + 3u, last) * kk;
    let b4 = min(col0 + 4u, last) * kk;
    let b5 = min(col0 + 5u, last) * kk;
    let b6 = min(col0 + 6u, last) * kk;
    let b7 = min(col0 + 7u, last) * kk;
    let b8 = min(col0 + 8u, last) * kk;
    let b9 = min(col0 + 9u, last) * kk;
    let b10 = min(col0 + 10u, last) * kk;
    let b11 = min(col0 + 11u, last) * kk;
    let b12 = min(col0 + 12u, last) * kk;
    let b13 = min(col0 + 13u, last) * kk;
    let b14 = min(col0 + 14u, last) * kk;
    let b15 = min(col0 + 15u, last) * kk;
    let x0 = ld_b(b0 + k, b0 + e);
    let x1 = ld_b(b1 + k, b1 + e);
    let x2 = ld_b(b2 + k, b2 + e);
    let x3 = ld_b(b3 + k, b3 + e);
    let x4 = ld_b(b4 + k, b4 + e);
    let x5 = ld_b(b5 + k, b5 + e);
    let x6 = ld_b(b6 + k, b6 + e);
    let x7 = ld_b(b7 + k, b7 + e);
    let x8 = ld_b(b8 + k, b8 + e);
    let x9 = ld_b(b9 + k, b9 + e);
    let x10 = ld_b(b10 + k, b10 + e);
    let x11 = ld_b(b11 + k, b11 + e);
    let x12 = ld_b(b12 + k, b12 + e);
    let x13 = ld_b(b13 + k, b13 + e);
    let x14 = ld_b(b14 + k, b14 + e);
    let x15 = ld_b(b15 + k, b15 + e);
    t.k0 = Row(
      vec4(x0.x, x1.x, x2.x, x3.x),
      vec4(x4.x, x5.x, x6.x, x7.x),
      vec4(x8.x, x9.x, x10.x, x11.x),
      vec4(x12.x, x13.x, x14.x, x15.x),
    );
    t.k1 = Row(
      vec4(x0.y, x1.y, x2.y, x3.y),
      vec4(x4.y, x5.y, x6.y, x7.y),
      vec4(x8.y, x9.y, x10.y, x11.y),
      vec4(x12.y, x13.y, x14.y, x15.y),
    );
    t.k2 = Row(
      vec4(x0.z, x1.z, x2.z, x3.z),
      vec4(x4.z, x5.z, x6.z, x7.z),
      vec4(x8.z, x9.z, x10.z, x11.z),
      vec4(x12.z, x13.z, x14.z, x15.z),
    );
    t.k3 = Row(
      vec4(x0.w, x1.w, x2.w, x3.w),
      vec4(x4.w, x5.w, x6.w, x7.w),
      vec4(x8.w, x9.w, x10.w, x11.w),
      vec4(x12.w, x13.w, x14.w, x15.w),
    );
  } else {
    // Stored [K, N]: each load is 4 consecutive columns at one k.
    let top = nn - select(1u, 4u, VEC_B);
    let q0 = min(col0, top);
    let q1 = min(col0 + 4u, top);
    let q2 = min(col0 + 8u, top);
    let q3 = min(col0 + 12u, top);
    let s0 = min(k, kk - 1u) * nn;
    let s1 = min(k + 1u, kk - 1u) * nn;
    let s2 = min(k + 2u, kk - 1u) * nn;
    let s3 = min(k + 3u, kk - 1u) * nn;
    let e0 = s0 + nn - 1u;
    let e1 = s1 + nn - 1u;
    let e2 = s2 + nn - 1u;
    let e3 = s3 + nn - 1u;
    t.k0 = Row(ld_b(s0 + q0, e0), ld_b(s0 + q1, e0), ld_b(s0 + q2, e0), ld_b(s0 + q3, e0));
    t.k1 = Row(ld_b(s1 + q0, e1), ld_b(s1 + q1, e1), ld_b(s1 + q2, e1), ld_b(s1 + q3, e1));
    t.k2 = Row(ld_b(s2 + q0, e2), ld_b(s2 + q1, e2), ld_b(s2 + q2, e2), ld_b(s2 + q3, e2));
    t.k3 = Row(ld_b(s3 + q0, e3), ld_b(s3 + q1, e3), ld_b(s3 + q2, e3), ld_b(s3 + q3, e3));
  }
  if (K_TAIL) {
    let z = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    if (k + 1u >= kk) {
      t.k1 = z;
    }
    if (k + 2u >= kk) {
      t.k2 = z;
    }
    if (k + 3u >= kk) {
      t.k3 = z;
    }
  }
  return t;
}

// One row of the block: c += a(1 × 4) · b(4 × 16), each accumulator's four steps in a chain.
fn mac(c: Row, a: vec4<f32>, b: TileB) -> Row {
  let x = vec4(a.x);
  let y = vec4(a.y);
  let z = vec4(a.z);
  let w = vec4(a.w);
  return Row(
    fma(w, b.k3.c0, fma(z, b.k2.c0, fma(y, b.k1.c0, fma(x, b.k0.c0, c.c0)))),
    fma(w, b.k3.c1, fma(z, b.k2.c1, fma(y, b.k1.c1, fma(x, b.k0.c1, c.c1)))),
    fma(w, b.k3.c2, fma(z, b.k2.c2, fma(y, b.k1.c2, fma(x, b.k0.c2, c.c2)))),
    fma(w, b.k3.c3, fma(z, b.k2.c3, fma(y, b.k1.c3, fma(x, b.k0.c3, c.c3)))),
  );
}

// Activations: shaders/activation_vec4.wgsl (prepended), `activate(v)`.

// Adds the bias, applies the activation and stores one row of the block (row m, from col0).
fn finish_row(c: Row, bias: Row, m: u32, col0: u32) {
  let nn = p.n;
  let z = Row(c.c0 + bias.c0, c.c1 + bias.c1, c.c2 + bias.c2, c.c3 + bias.c3);
  var y: Row;
  if (ACT == 8u) {
    // Softmax over the row's N ≤ 16 columns, all in this invocation (col0 = 0).
    let lo = vec4(-3.4028235e38);
    let cols = vec4(0u, 1u, 2u, 3u);
    let v0 = select(lo, z.c0, cols < vec4(nn));
    let v1 = select(lo, z.c1, cols + 4u < vec4(nn));
    let v2 = select(lo, z.c2, cols + 8u < vec4(nn));
    let v3 = select(lo, z.c3, cols + 12u < vec4(nn));
    let m4 = max(max(v0, v1), max(v2, v3));
    let mx = max(max(m4.x, m4.y), max(m4.z, m4.w));
    let x0 = exp(v0 - mx);
    let x1 = exp(v1 - mx);
    let x2 = exp(v2 - mx);
    let x3 = exp(v3 - mx);
    let s4 = (x0 + x1) + (x2 + x3);
    let sum = (s4.x + s4.y) + (s4.z + s4.w);
    y = Row(x0 / sum, x1 / sum, x2 / sum, x3 / sum);
  } else {
    y = Row(activate(z.c0), activate(z.c1), activate(z.c2), activate(z.c3));
  }
  let i = m * nn + col0;
  st_y(i, y.c0, nn - col0);
  st_z(i, z.c0, nn - col0);
  if (col0 + 4u < nn) {
    st_y(i + 4u, y.c1, nn - col0 - 4u);
    st_z(i + 4u, z.c1, nn - col0 - 4u);
  }
  if (col0 + 8u < nn) {
    st_y(i + 8u, y.c2, nn - col0 - 8u);
    st_z(i + 8u, z.c2, nn - col0 - 8u);
  }
  if (col0 + 12u < nn) {
    st_y(i + 12u, y.c3, nn - col0 - 12u);
    st_z(i + 12u, z.c3, nn - col0 - 12u);
  }
}

// The accumulators of the workgroup's 8 invocations, for the epilogue.
var<workgroup> stage: array<Row, 128>;

@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) li: vec3<u32>) {
  let lc = p.lanes_c;
  let row0 = (wg.y * (8u / lc) + li.x / lc) * 16u;
  let col0 = (wg.x * lc + li.x % lc) * 16u;
  var acc: Block;
  var colsum: Row;
  for (var k = 0u; k < p.k; k += 4u) {
    let b = tile_b(col0, k);
    if (COL_SUM) {
      colsum.c0 += (b.k0.c0 + b.k1.c0) + (b.k2.c0 + b.k3.c0);
      colsum.c1 += (b.k0.c1 + b.k1.c1) + (b.k2.c1 + b.k3.c1);
      colsum.c2 += (b.k0.c2 + b.k1.c2) + (b.k2.c2 + b.k3.c2);
      colsum.c3 += (b.k0.c3 + b.k1.c3) + (b.k2.c3 + b.k3.c3);
    }
    let a0 = quad_a(row0, k);
    acc.r0 = mac(acc.r0, a0.r0, b);
    acc.r1 = mac(acc.r1, a0.r1, b);
    acc.r2 = mac(acc.r2, a0.r2, b);
    acc.r3 = mac(acc.r3, a0.r3, b);
    let a1 = quad_a(row0 + 4u, k);
    acc.r4 = mac(acc.r4, a1.r0, b);
    acc.r5 = mac(acc.r5, a1.r1, b);
    acc.r6 = mac(acc.r6, a1.r2, b);
    acc.r7 = mac(acc.r7, a1.r3, b);
    let a2 = quad_a(row0 + 8u, k);
    acc.r8 = mac(acc.r8, a2.r0, b);
    acc.r9 = mac(acc.r9, a2.r1, b);
    acc.r10 = mac(acc.r10, a2.r2, b);
    acc.r11 = mac(acc.r11, a2.r3, b);
    let a3 = quad_a(row0 + 12u, k);
    acc.r12 = mac(acc.r12, a3.r0, b);
    acc.r13 = mac(acc.r13, a3.r1, b);
    acc.r14 = mac(acc.r14, a3.r2, b);
    acc.r15 = mac(acc.r15, a3.r3, b);
  }
  if (COL_SUM && row0 == 0u) {
    st_colsum(col0, colsum);
  }
  if (row0 >= p.m || col0 >= p.n) {
    return;
  }
  prepare_y();
  // The epilogue is a loop over the block's rows, staged through this invocation's own part of
  // workgroup memory (no other invocation reads it, so no barrier): one copy of the bias,
  // activation and store code instead of sixteen, which keeps pipeline creation fast.
  let s = li.x * 16u;
  stage[s + 0u] = acc.r0;
  stage[s + 1u] = acc.r1;
  stage[s + 2u] = acc.r2;
  stage[s + 3u] = acc.r3;
  stage[s + 4u] = acc.r4;
  stage[s + 5u] = acc.r5;
  stage[s + 6u] = acc.r6;
  stage[s + 7u] = acc.r7;
  stage[s + 8u] = acc.r8;
  stage[s + 9u] = acc.r9;
  stage[s + 10u] = acc.r10;
  stage[s + 11u] = acc.r11;
  stage[s + 12u] = acc.r12;
  stage[s + 13u] = acc.r13;
  stage[s + 14u] = acc.r14;
  stage[s + 15u] = acc.r15;
  let bias = Row(
    vec4(bias_at(col0), bias_at(col0 + 1u), bias_at(col0 + 2u), bias_at(col0 + 3u)),
    vec4(bias_at(col0 + 4u), bias_at(col0 + 5u), bias_at(col0 + 6u), bias_at(col0 + 7u)),
    vec4(bias_at(col0 + 8u), bias_at(col0 + 9u), bias_at(col0 + 10u), bias_at(col0 + 11u)),
    vec4(bias_at(col0 + 12u), bias_at(col0 + 13u), bias_at(col0 + 14u), bias_at(col0 + 15u)),
  );
  let count = min(16u, p.m - row0);
  for (var r = 0u; r < count; r++) {
    finish_row(stage[s + r], bias, row0 + r, col0);
  }
}
