// The optimizer update of shaders/optim.wgsl as functions of values, shared by the arena update
// (shaders/optim.wgsl) and the weight-gradient epilogue of shaders/matmul.wgsl (which updates a
// dense kernel as it computes its gradient). The includer declares `ctl`, the optimizer's control
// buffer (layout in shaders/optim.wgsl), as a storage array<u32>; nothing here writes it.

override OPT: u32 = 0u; // 0 SGD, 1 Adam, 2 RMSprop, 3 Adagrad
override MOMENTUM: bool = false; // SGD and RMSprop: a momentum slot
override NESTEROV: bool = false; // SGD
override AMSGRAD: bool = false; // Adam
override CENTERED: bool = false; // RMSprop
override CLIP: u32 = 0u; // 0 none, 1 by value, 2 by each parameter's norm, 3 by the global norm
override DECAY: bool = false; // decoupled weight decay (Keras's `weight_decay`)

const H_LR: u32 = 0u; // learning rate (constant), or the schedule's initial learning rate
const H_KIND: u32 = 1u; // 0 constant, 1 exponential decay, 2 piecewise constant, 3 cosine decay
const H_S0: u32 = 2u; // schedule parameters H_S0..H_S5 (see learning_rate)
const H_S1: u32 = 3u;
const H_S2: u32 = 4u;
const H_S3: u32 = 5u;
const H_S4: u32 = 6u;
const H_S5: u32 = 7u;
const H_BETA1: u32 = 8u; // Adam beta_1; SGD and RMSprop momentum
const H_BETA2: u32 = 9u; // Adam beta_2
const H_EPS: u32 = 10u;
const H_RHO: u32 = 11u; // RMSprop rho
const H_1MBETA1: u32 = 12u; // 1 - beta_1 (Adam), computed in float64 as Keras does
const H_1MBETA2: u32 = 13u; // 1 - beta_2 (Adam); 1 - rho (RMSprop)
const H_LNBETA1: u32 = 14u; // ln(beta_1), for beta_1^t
const H_LNBETA2: u32 = 15u; // ln(beta_2)
const H_WD: u32 = 16u; // weight decay
const H_CLIP: u32 = 17u; // clipvalue, clipnorm or global_clipnorm
const O_LR: u32 = 24u; // out: the learning rate of the last step (written by block 0)
const PW_TABLE: u32 = 32u; // piecewise: boundaries (u32), then values (f32)
const SEG_BASE: u32 = 256u;

fn hf(i: u32) -> f32 {
  return bitcast<f32>(ctl[i]);
}

// ---------------------------------------------------------------------------------------------
// Scalar functions accurate to about an ulp on every adapter (WGSL's exp allows 3 + 2|x| ulps and
// its cos an absolute 2^-11, too loose for learning rates and bias corrections).

const LN2_HI: f32 = 0.693145751953125; // 16 significant bits: k * LN2_HI is exact for |k| < 256
const LN2_LO: f32 = 1.42860682030941723212e-6;
const LOG2E: f32 = 1.44269504088896340736;
const PI: f32 = 3.14159265358979323846;

// e^x: x = k ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^8 (remainder < 3e-10).
fn exp_acc(x: f32) -> f32 {
  if (x < -87.0) {
    return 0.0;
  }
  let xc = min(x, 88.0);
  let k = round(xc * LOG2E);
  let r = (xc - k * LN2_HI) - k * LN2_LO;
  let q = 1.0 + r * (1.0 + r * (1.0 / 2.0 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 +
    r * (1.0 / 720.0 + r * (1.0 / 5040.0 + r * (1.0 / 40320.0))))))));
  return ldexp(q, i32(k));
}

// e^x - 1 without cancellation near 0 (Taylor series to x^8 for |x| < 0.3, remainder < 2e-10).
fn expm1_acc(x: f32) -> f32 {
  if (abs(x) < 0.3) {
    return x * (1.0 + x * (1.0 / 2.0 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x * (1.0 / 120.0 +
      x * (1.0 / 720.0 + x * (1.0 / 5040.0 + x * (1.0 / 40320.0))))))));
  }
  return exp_acc(x) - 1.0;
}

// cos(pi x) for x in [0, 1]: reduced to [0, 1/4] by symmetry (exactly), then Taylor series of cos
// or sin on |a| <= pi/4 (remainders < 2e-10).
fn cos_pi(x: f32) -> f32 {
  var sgn = 1.0;
  var y = clamp(x, 0.0, 1.0);
  if (y > 0.5) {
    y = 1.0 - y;
    sgn = -1.0;
  }
  if (y <= 0.25) {
    let a = y * PI;
    let a2 = a * a;
    return sgn * (1.0 + a2 * (-1.0 / 2.0 + a2 * (1.0 / 24.0 + a2 * (-1.0 / 720.0 +
      a2 * (1.0 / 40320.0 + a2 * (-1.0 / 3628800.0))))));
  }
  let a = (0.5 - y) * PI;
  let a2 = a * a;
  return sgn * a * (1.0 + a2 * (-1.0 / 6.0 + a2 * (1.0 / 120.0 + a2 * (-1.0 / 5040.0 +
    a2 * (1.0 / 362880.0 + a2 * (-1.0 / 39916800.0))))));
}

// Keras's CosineDecay factor: (1 - alpha) * 0.5 * (1 + cos(pi * fraction)) + alpha.
fn cosine_decayed(fraction: f32) -> f32 {
  return hf(H_S5) * (0.5 * (1.0 + cos_pi(fraction))) + hf(H_S1);
}

// The learning rate at step t (Keras evaluates schedules at `iterations`, before the increment).
fn learning_rate(t: u32) -> f32 {
  let lr0 = hf(H_LR);
  let step = f32(t);
  switch ctl[H_KIND] {
    case 1u: {
      // ExponentialDecay: H_S0 decay_steps, H_S1 ln(decay_rate), H_S2 staircase.
      var q = step / hf(H_S0);
      if (ctl[H_S2] != 0u) {
        q = floor(q);
      }
      return lr0 * exp_acc(q * hf(H_S1));
    }
    case 2u: {
      // PiecewiseConstantDecay: H_S0 boundaries; values[k] where k counts boundaries below t.
      let nb = ctl[H_S0];
      var k = 0u;
      while (k < nb && t > ctl[PW_TABLE + k]) {
        k++;
      }
      return hf(PW_TABLE + nb + k);
    }
    case 3u: {
      // CosineDecay: H_S0 decay_steps, H_S1 alpha, H_S2 warmup_target, H_S3 warmup_steps,
      // H_S4 warmup on, H_S5 1 - alpha.
      let decay_steps = hf(H_S0);
      if (ctl[H_S4] == 0u) {
        return lr0 * cosine_decayed(min(step, decay_steps) / decay_steps);
      }
      let warmup_target = hf(H_S2);
      let warmup_steps = hf(H_S3);
      let s = min(step, decay_steps + warmup_steps);
      if (s < warmup_steps) {
        return (warmup_target - lr0) * (s / warmup_steps) + lr0;
      }
      return warmup_target * cosine_decayed((s - warmup_steps) / decay_steps);
    }
    default: {
      return lr0;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The fused update

// Per-step scalars, the same for every element (computed by every invocation for itself).
struct Step {
  lr: f32,
  alpha: f32, // Adam: lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
  // Hyperparameters, read from `ctl` once per invocation rather than once per element.
  beta1: f32,
  one_m_beta1: f32,
  one_m_beta2: f32,
  rho: f32,
  eps: f32,
  wd: f32,
  clip: f32,
}

fn step_scalars(t: u32) -> Step {
  var st: Step;
  st.lr = learning_rate(t);
  st.beta1 = hf(H_BETA1);
  st.one_m_beta1 = hf(H_1MBETA1);
  st.one_m_beta2 = hf(H_1MBETA2);
  st.rho = hf(H_RHO);
  st.eps = hf(H_EPS);
  st.wd = hf(H_WD);
  st.clip = hf(H_CLIP);
  if (OPT == 1u) {
    let ls = f32(t + 1u);
    let bc1 = -expm1_acc(ls * hf(H_LNBETA1));
    let bc2 = -expm1_acc(ls * hf(H_LNBETA2));
    st.alpha = st.lr * sqrt(bc2) / bc1;
  }
  return st;
}

// The state of one vec4 of a parameter: the slots bound as s0, s1 and s2 (see `slot_used`).
struct Slots {
  s0: vec4<f32>,
  s1: vec4<f32>,
  s2: vec4<f32>,
}

// A vec4 of a parameter after the update, with its slots.
struct Updated {
  w: vec4<f32>,
  s: Slots,
}

// Whether the update reads and writes slot k: SGD s0 momentum; Adam s0 m, s1 v, s2 v_hat
// (AMSGrad); RMSprop s0 v, s1 momentum, s2 average gradient (centered); Adagrad s0 accumulator.
fn slot_used(k: u32) -> bool {
  switch k {
    case 0u: {
      return OPT != 0u || MOMENTUM;
    }
    case 1u: {
      return OPT == 1u || (OPT == 2u && MOMENTUM);
    }
    default: {
      return (OPT == 1u && AMSGRAD) || (OPT == 2u && CENTERED);
    }
  }
}

// The update of one vec4: gradient g_in (already scaled by a norm clip), parameter w_in, slots
// s_in; `decay` says whether weight decay applies to this parameter (with DECAY).
fn apply_update(g_in: vec4<f32>, w_in: vec4<f32>, s_in: Slots, decay: bool, st: Step) -> Updated {
  let lr = st.lr;
  var gi = g_in;
  if (CLIP == 1u) {
    let c = st.clip;
    gi = clamp(gi, vec4(-c), vec4(c));
  }
  var wi = w_in;
  if (DECAY && decay) {
    wi = wi - wi * st.wd * lr;
  }
  var s = s_in;
  switch OPT {
    case 0u: {
      // SGD (Keras 3): velocity = momentum * velocity - lr * g; w += velocity, or with Nesterov
      // w += momentum * velocity - lr * g.
      if (MOMENTUM) {
        let mu = st.beta1;
        let m = s.s0 * mu - gi * lr;
        s.s0 = m;
        if (NESTEROV) {
          wi = wi + (m * mu - gi * lr);
        } else {
          wi = wi + m;
        }
      } else {
        wi = wi - gi * lr;
      }
    }
    case 1u: {
      // Adam (Keras 3): m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); AMSGrad: v = max(v_hat, v);
      // w -= m * alpha / (sqrt(v) + eps).
      let m0 = s.s0;
      let v0 = s.s1;
      let m = m0 + (gi - m0) * st.one_m_beta1;
      var v = v0 + (gi * gi - v0) * st.one_m_beta2;
      s.s0 = m;
      s.s1 = v;
      if (AMSGRAD) {
        v = max(s.s2, v);
        s.s2 = v;
      }
      wi = wi - (m * st.alpha) / (sqrt(v) + st.eps);
    }
    case 2u: {
      // RMSprop (Keras 3): v = rho v + (1 - rho) g^2; centered: a = rho a + (1 - rho) g and
      // the denominator is v - a^2 + eps, else v + eps; inc = lr g / sqrt(denominator);
      // momentum: mom = momentum * mom + inc, w -= mom; else w -= inc.
      let rho = st.rho;
      let one_m_rho = st.one_m_beta2;
      let v = rho * s.s0 + one_m_rho * (gi * gi);
      s.s0 = v;
      var denominator = v + st.eps;
      if (CENTERED) {
        let a = rho * s.s2 + one_m_rho * gi;
        s.s2 = a;
        denominator = v - a * a + st.eps;
      }
      let inc = (lr * gi) / sqrt(denominator);
      if (MOMENTUM) {
        let mom = st.beta1 * s.s1 + inc;
        s.s1 = mom;
        wi = wi - mom;
      } else {
        wi = wi - inc;
      }
    }
    default: {
      // Adagrad (Keras 3): acc += g^2; w -= lr g / sqrt(acc + eps).
      let acc = s.s0 + gi * gi;
      s.s0 = acc;
      wi = wi - (lr * gi) / sqrt(acc + st.eps);
    }
  }
  return Updated(wi, s);
}
