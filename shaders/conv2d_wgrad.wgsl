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
// The WGSL prefix defines const ROWS (a multiple of 4), const C4 (1..4), const VEC_X: bool,
// const VEC_DY: bool (Cout % 4 == 0) and the bindings' access helpers:
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
  let cin = p.cin;

  // Per row: the tap's offsets (ky·dh − pt, kx·dw − pl) and the channel.
  var oy: array<i32, ROWS>;
  var ox: array<i32, ROWS>;
  var ch: array<u32, ROWS>;
  for (var r = 0u; r < ROWS; r++) {
    let row = min(row0 + r, p.rows - 1u);
    let t = row / cin;
    ch[r] = row % cin;
    oy[r] = i32((t / p.kw) * p.dh) - i32(p.pt);
    ox[r] = i32((t % p.kw) * p.dw) - i32(p.pl);
  }
  var q: array<u32, C4>;
  for (var j = 0u; j < C4; j++) {
    q[j] = select(min(col0 + 4u * j, cout - 1u), min(col0 + 4u * j, cout - 4u), VEC_DY);
  }

  var acc: array<vec4<f32>, ROWS * C4>;
  var cs: array<vec4<f32>, C4>;
  let p0 = s * p.chunk;
  let p1 = min(p0 + p.chunk, p.pixels);
  if (p0 < p1) {
    let plane = p.ho * p.wo;
    var n = p0 / plane;
    var py = (p0 % plane) / p.wo;
    var px = p0 % p.wo;
    let hw = p.h * p.w;
    for (var pix = p0; pix < p1; pix++) {
      var b: array<vec4<f32>, C4>;
      let drow = pix * cout;
      for (var j = 0u; j < C4; j++) {
        b[j] = ld_dy(drow + q[j], drow + cout - 1u);
        cs[j] += b[j];
      }
      let by = i32(py * p.sh);
      let bx = i32(px * p.sw);
      let nb = n * hw;
      for (var r4 = 0u; r4 < ROWS; r4 += 4u) {
        var a = vec4(0.0);
        if (VEC_X) {
          let iy = by + oy[r4];
          let ix = bx + ox[r4];
          if (iy >= 0 && ix >= 0 && iy < i32(p.h) && ix < i32(p.w)) {
            a = x_quad((nb + u32(iy) * p.w + u32(ix)) * cin + ch[r4]);
          }
        } else {
          for (var i = 0u; i < 4u; i++) {
            let iy = by + oy[r4 + i];
            let ix = bx + ox[r4 + i];
            if (iy >= 0 && ix >= 0 && iy < i32(p.h) && ix < i32(p.w)) {
              a[i] = x_at((nb + u32(iy) * p.w + u32(ix)) * cin + ch[r4 + i]);
            }
          }
        }
        for (var j = 0u; j < C4; j++) {
          let bj = b[j];
          acc[r4 * C4 + j] = fma(vec4(a.x), bj, acc[r4 * C4 + j]);
          acc[(r4 + 1u) * C4 + j] = fma(vec4(a.y), bj, acc[(r4 + 1u) * C4 + j]);
          acc[(r4 + 2u) * C4 + j] = fma(vec4(a.z), bj, acc[(r4 + 2u) * C4 + j]);
          acc[(r4 + 3u) * C4 + j] = fma(vec4(a.w), bj, acc[(r4 + 3u) * C4 + j]);
        }
      }
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
  let size = p.rows * cout;
  for (var j = 0u; j < C4; j++) {
    let o0 = col0 + 4u * j;
    for (var e = 0u; e < 4u; e++) {
      let o = o0 + e;
      if (o >= cout) {
        break;
      }
      // A clamped vec4 load (VEC_DY with o0 > cout − 4 cannot happen: cout % 4 == 0) or a
      // scalar one (lane e is column min(o0 + e, cout − 1)) both hold column o in lane e.
      if (row0 == 0u) {
        colsum[s * cout + o] = cs[j][e];
      }
      for (var r = 0u; r < ROWS; r++) {
        let row = row0 + r;
        if (row >= p.rows) {
          break;
        }
        part[s * size + row * cout + o] = acc[r * C4 + j][e];
      }
    }
  }
}
