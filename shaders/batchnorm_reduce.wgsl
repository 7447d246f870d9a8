// Per-block partial reductions of batch normalisation over the R = N·H·W rows of a [R, C] (NHWC)
// tensor, for shaders/batchnorm_finish.wgsl to combine per channel. Workgroup (bx, by) takes the
// `p.block` contiguous rows from bx·p.block and the channel groups by·GW … by·GW + GW − 1, where a
// group is W adjacent channels loaded as one V (W = 4 when C % 4 == 0, 2 when C % 2 == 0, else 1).
// Invocation l takes group l % GW and the rows j, j + L, j + 2L, … of the block (j = l / GW), so
// the GW invocations of a row read contiguous memory; the L row lanes of a group are added in
// workgroup memory.
//
// MODE 0, the batch statistics, as sums about centres kept with them: for rows with centre c,
// L = Σ(x − c) and Q = Σ(x − c)², and for any m, exactly,
//   Σ(x − m)² = Q + 2(c − m)·L + n·(c − m)²,   Σ(x − m) = L + n·(c − m).
// A lane loads TILE of its rows into registers, takes their mean as the tile's centre and sums
// L and Q about it (a two-pass sum within the tile, each element loaded once); the tiles, then the
// workgroup's lanes, are merged with these identities into the centre of the lane's first tile
// (Chan's pairwise update, with the centre's rounding carried in L). Every term is a deviation
// from a mean of nearby rows of the same channel, so nothing cancels where the data has a large
// mean and a small spread, as E[x²] − E[x]² would. The block's c, L and Q go to
// partial[bx][0..2][C] for shaders/batchnorm_finish.wgsl.
// MODE 1, the gradient's sums: Σdy and s·Σdy·(x − mean) (s = 1/√(var + ε)) to partial[bx][0..1][C].
//
// The WGSL prefix (src/ops/batchnorm.ts) defines `alias V`, `const GW`, `const L`,
// `const WG = GW·L` and `const TILE`.
override MODE: u32 = 0u;
// MODE 1: `scale` holds 1/√(var + ε) (training) or the variance (false: inference).
override INV_STD: bool = true;

struct Params {
  rows: u32,
  // C / W
  groups: u32,
  block: u32,
  eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<V>;
// MODE 1 only (MODE 0 binds any buffers of the right sizes; nothing is read).
@group(0) @binding(2) var<storage, read> dy: array<V>;
@group(0) @binding(3) var<storage, read> mean: array<V>;
@group(0) @binding(4) var<storage, read> scale: array<V>;
@group(0) @binding(5) var<storage, read_write> partial: array<V>;

var<workgroup> wa: array<V, WG>;
var<workgroup> wb: array<V, WG>;
var<workgroup> centre: array<V, WG>;
var<workgroup> count: array<f32, WG>;

// The sums over the L row lanes of group kk of what each lane stored in `wa` and `wb`.
fn lanes_a(kk: u32) -> V {
  var t = V(0.0);
  for (var q = 0u; q < L; q++) {
    t += wa[q * GW + kk];
  }
  return t;
}

fn lanes_b(kk: u32) -> V {
  var t = V(0.0);
  for (var q = 0u; q < L; q++) {
    t += wb[q * GW + kk];
  }
  return t;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
  let kk = l % GW;
  let j = l / GW;
  let k = wg.y * GW + kk;
  let live = k < p.groups;
  let r0 = wg.x * p.block;
  let r1 = min(r0 + p.block, p.rows);
  let step = L * p.groups;
  let start = (r0 + j) * p.groups + k;
  let end = r1 * p.groups;
  var a = V(0.0);
  var b = V(0.0);
  if (MODE == 0u) {
    var c = V(0.0);
    var n = 0.0;
    if (live) {
      for (var i = start; i < end; i += TILE * step) {
        var xs: array<V, TILE>;
        var t = V(0.0);
        var cnt = 0u;
        for (var q = 0u; q < TILE; q++) {
          let ii = i + q * step;
          if (ii < end) {
            xs[q] = x[ii];
            t += xs[q];
            cnt += 1u;
          }
        }
        let nt = f32(cnt);
        let ct = t / nt;
        var lt = V(0.0);
        var qt = V(0.0);
        for (var q = 0u; q < TILE; q++) {
          if (q < cnt) {
            let d = xs[q] - ct;
            lt += d;
            qt += d * d;
          }
        }
        if (n == 0.0) {
          c = ct;
          a = lt;
          b = qt;
        } else {
          let d = ct - c;
          b += qt + d * (2.0 * lt + nt * d);
          a += lt + nt * d;
        }
        n += nt;
      }
    }
    wa[l] = a;
    wb[l] = b;
    centre[l] = c;
    count[l] = n;
    workgroupBarrier();
    if (j == 0u && live) {
      for (var q = 1u; q < L; q++) {
        let o = q * GW + kk;
        let nt = count[o];
        let d = centre[o] - c;
        b += wb[o] + d * (2.0 * wa[o] + nt * d);
        a += wa[o] + nt * d;
      }
      let o = wg.x * 3u * p.groups + k;
      partial[o] = c;
      partial[o + p.groups] = a;
      partial[o + 2u * p.groups] = b;
    }
  } else {
    if (live) {
      let m = mean[k];
      for (var i = start; i < end; i += step) {
        let g = dy[i];
        a += g;
        b += g * (x[i] - m);
      }
      b *= select(inverseSqrt(scale[k] + p.eps), scale[k], INV_STD);
    }
    wa[l] = a;
    wb[l] = b;
    workgroupBarrier();
    if (j == 0u && live) {
      let o = wg.x * 2u * p.groups + k;
      partial[o] = lanes_a(kk);
      partial[o + p.groups] = lanes_b(kk);
    }
  }
}
