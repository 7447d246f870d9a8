// Weight gradient of a 2-D convolution (NHWC) as an implicit GEMM, split along its long axis.
//
// dw[(t, c), o] = Σ_p X[(t, c), p] · dy[p, o], where p = (n, oy, ox) runs over the N·Ho·Wo output
// pixels, t = (ky, kx) over the taps and c over the input channels; X[(t, c), p] is
// x[n, oy·sh + ky·dh − pt, ox·sw + kx·dw − pl, c], or 0 in the padding (im2col(x)ᵀ, never
// materialised). The bias gradient db[o] = Σ_p dy[p, o] comes from the same loads of dy.
//
// The sum over p is long (N·Ho·Wo) and the result small (kh·kw·Cin × Cout), so p is split into
// `splits` chunks: invocation (s, block) sums chunk s for its block of ROWS rows × 4·C4 columns and
// writes a partial result part[s, r, o] (and, in the first row block, colsum[s, o]); a reduction
// over s follows (src/ops/conv.ts).
//
// Rows are taken four at a time (a quad). When Cin % 4 == 0 (VEC_X) a quad's four rows are four
// consecutive channels of one tap, read with one vec4 load and one bounds check per pixel;
// otherwise each row is checked and loaded alone.
//
// The block is straight-line code generated for each (ROWS, C4, VEC_X) by src/ops/conv.ts. The
// WGSL prefix defines const ROWS (a multiple of 4), const C4 (1..4), const VEC_X: bool,
// const VEC_DY: bool (Cout % 4 == 0), and
//   struct Acc, Taps, Quads, BRow            accumulators (ROWS·C4 vec4), each row's tap_of(), the
//                                            block's ROWS values of X at one pixel (a vec4 per 4
//                                            rows), and C4 vec4 of dy
//   fn taps_of(row0: u32) -> Taps
//   fn load_quads(t: Taps, nb: u32, by: i32, bx: i32) -> Quads   x_four() or 4 × x_one() per quad
//   fn load_brow(drow: u32, col0: u32) -> BRow                   ld_dy() per column group
//   fn add_brow(a: BRow, b: BRow) -> BRow
//   fn wmac(acc: Acc, a: Quads, b: BRow) -> Acc                  acc[r, j] += X[r]·dy[j]
//   fn acc_array(acc: Acc) -> array<vec4<f32>, ROWS * C4>, fn brow_array(b: BRow) -> array<…, C4>
// and the bindings' access helpers:
//   fn x_at(i: u32) -> f32, fn x_quad(i: u32) -> vec4<f32>  element i, elements i..i+3 of x
//                                                           (binding 0; x_quad only when VEC_X)
//   fn ld_dy(i: u32, last: u32) -> vec4<f32>                elements i..i+3 of dy (binding 1),
//                                                           clamped to `last` unless VEC_DY
struct Params {
  h: u32,
  w: u32,
  cin: u32,
  ho: u32,
  wo: u32,
  cout: u32,
  kw: u32,
  sh: u32,
  sw: u32,
  dh: u32,
  dw: u32,
  pt: u32,
  pl: u32,
  // Rows of dw (kh · kw · Cin) and output pixels (N · Ho · Wo).
  rows: u32,
  pixels: u32,
  // Pixels per chunk, column blocks, blocks per chunk, total invocations and grid stride.
  chunk: u32,
  col_blocks: u32,
  blocks: u32,
  total: u32,
  stride: u32,
}

@group(0) @binding(2) var<storage, read_write> part: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read_write> colsum: array<f32>;

// Row `row` of dw (clamped to the last): (ky·dh − pt, kx·dw − pl, channel).
fn tap_of(row: u32) -> vec3<i32> {
  let r = min(row, p.rows - 1u);
  let t = r / p.cin;
  return vec3(
    i32((t / p.kw) * p.dh) - i32(p.pt),
    i32((t % p.kw) * p.dw) - i32(p.pl),
    i32(r % p.cin),
  );
}

// X[row, pixel] for the row whose tap is `tp`, at image n's pixel (by, bx) before the tap offset.
fn x_one(nb: u32, by: i32, bx: i32, tp: vec3<i32>) -> f32 {
  let iy = by + tp.x;
  let ix = bx + tp.y;
  if (iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) {
    return 0.0;
  }
  return x_at((nb + u32(iy) * p.w + u32(ix)) * p.cin + u32(tp.z));
}

// The same for 4 rows that are 4 consecutive channels of one tap (VEC_X): one check, one load.
fn x_four(nb: u32, by: i32, bx: i32, tp: vec3<i32>) -> vec4<f32> {
  let iy = by + tp.x;
  let ix = bx + tp.y;
  if (iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) {
    return vec4(0.0);
  }
  return x_quad((nb + u32(iy) * p.w + u32(ix)) * p.cin + u32(tp.z));
}

@compute @workgroup_size(8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let idx = gid.x + gid.y * p.stride;
  if (idx >= p.total) {
    return;
  }
  let s = idx / p.blocks;
  let blk = idx % p.blocks;
  let row0 = (blk / p.col_blocks) * ROWS;
  let col0 = (blk % p.col_blocks) * (4u * C4);
  let cout = p.cout;
  let taps = taps_of(row0);

  var acc: Acc;
  var cs: BRow;
  let p0 = s * p.chunk;
  let p1 = min(p0 + p.chunk, p.pixels);
  if (p0 < p1) {
    let plane = p.ho * p.wo;
    var n = p0 / plane;
    var py = (p0 % plane) / p.wo;
    var px = p0 % p.wo;
    let hw = p.h * p.w;
    for (var pix = p0; pix < p1; pix++) {
      let b = load_brow(pix * cout, col0);
      cs = add_brow(cs, b);
      acc = wmac(acc, load_quads(taps, n * hw, i32(py * p.sh), i32(px * p.sw)), b);
      px++;
      if (px == p.wo) {
        px = 0u;
        py++;
        if (py == p.ho) {
          py = 0u;
          n++;
        }
      }
    }
  }

  // Guarded stores of the partial sums.
  let res = acc_array(acc);
  let sums = brow_array(cs);
  let size = p.rows * cout;
  for (var j = 0u; j < C4; j++) {
    let o0 = col0 + 4u * j;
    for (var e = 0u; e < 4u; e++) {
      let o = o0 + e;
      if (o >= cout) {
        break;
      }
      // A vec4 load (VEC_DY: cout % 4 == 0, so o0 ≤ cout − 4) or a clamped scalar one (lane e is
      // column min(o0 + e, cout − 1)) both hold column o in lane e.
      if (row0 == 0u) {
        colsum[s * cout + o] = sums[j][e];
      }
      for (var r = 0u; r < ROWS; r++) {
        let row = row0 + r;
        if (row >= p.rows) {
          break;
        }
        part[s * size + row * cout + o] = res[r * C4 + j][e];
      }
    }
  }
}
