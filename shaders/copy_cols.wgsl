// A block copy between two row-major matrices: dst[r, dst_off + c] = src[r, src_off + c] for
// r < rows, c < cols. Concatenation writes each input into its columns of the output, and its
// gradient reads each input's columns back (src/ops/concat.ts); any axis becomes columns once
// the axes before it are folded into rows and those after it into the columns.
struct Params {
  rows: u32,
  cols: u32,
  src_cols: u32,
  src_off: u32,
  dst_cols: u32,
  dst_off: u32,
  total: u32,
  stride: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * p.stride;
  if (i >= p.total) {
    return;
  }
  let r = i / p.cols;
  let c = i - r * p.cols;
  dst[r * p.dst_cols + p.dst_off + c] = src[r * p.src_cols + p.src_off + c];
}
