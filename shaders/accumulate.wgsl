// Running figures of an epoch, kept on the GPU: acc[0] += loss · batch, acc[1] += correct,
// acc[2] += batch, acc[3] += 1 (steps). One invocation; replayed every training step.
struct Params {
  batch: f32,
  has_correct: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> acc: array<f32>;
@group(0) @binding(1) var<storage, read> loss: array<f32>;
@group(0) @binding(2) var<storage, read> correct: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(1)
fn main() {
  acc[0] = acc[0] + loss[0] * p.batch;
  if (p.has_correct != 0u) {
    acc[1] = acc[1] + correct[0];
  }
  acc[2] = acc[2] + p.batch;
  acc[3] = acc[3] + 1.0;
}
