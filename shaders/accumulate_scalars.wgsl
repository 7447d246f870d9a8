// Adds scalars into an accumulator in place: acc[at + i] += v_i[0] for each bound value v_i, in
// one invocation. The prefix declares the value bindings (v0 at binding 2, v1 at 3, …) and
// `fn add_values()`, which does the additions.
struct Params {
  at: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> acc: array<f32>;

@compute @workgroup_size(1)
fn main() {
  add_values();
}
