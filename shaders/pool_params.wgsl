// The window geometry shared by pool.wgsl and pool_grad.wgsl (filled by src/ops/pool.ts): input
// h × w × c, output ho × wo, window ph × pw, strides sh × sw, padding pt (top) and pl (left), the
// number of invocations `total`, the row stride of a 2-D grid, and the channel groups per pixel
// `chunks` (each invocation handles up to CPI channels of one pixel).
struct Params {
  h: u32,
  w: u32,
  c: u32,
  ho: u32,
  wo: u32,
  ph: u32,
  pw: u32,
  sh: u32,
  sw: u32,
  pt: u32,
  pl: u32,
  total: u32,
  stride: u32,
  chunks: u32,
  _pad1: u32,
  _pad2: u32,
}
