// RMSprop, plain or centered, with optional momentum, exactly as keras.optimizers.RMSprop
// (epsilon inside the square root):
//
//   (weight decay)  p = p - p * wd * decay_lr   (decay_lr = lr; see RmspropCoeffs)
//   v   = rho * v + (1 - rho) * g^2
//   centered:  a = rho * a + (1 - rho) * g;   d = (v - a^2) + eps
//   otherwise: d = v + eps
//   inc = (lr * g) / sqrt(d)
//   momentum:  mom = momentum * mom + inc;    p = p - mom
//   otherwise: p = p - inc
#pragma once

#include <cmath>

#include "common.hpp"
#include "half.hpp"

namespace pyoptim {

// Plain data: the same in every instruction set's copy.

template <class T>
struct RmspropCoeffs {
  T lr;
  T rho;
  T one_minus_rho;  // (1 - rho) rounded once from double, as Keras does
  T epsilon;
  T momentum;
  T weight_decay;
  T decay_lr;  // the decay's learning rate: lr, or 1 when weight_decay holds wd * lr
};

inline namespace PYOPTIM_ISA {

// P is the storage type of param and grad: T itself, or Float16/BFloat16 with T = float.
template <class T, bool kCentered, bool kMomentum, bool kDecay, class P = T>
inline void rmsprop_range(P* PYOPTIM_RESTRICT p, const P* PYOPTIM_RESTRICT g,
                          T* PYOPTIM_RESTRICT v, T* PYOPTIM_RESTRICT mom,
                          T* PYOPTIM_RESTRICT avg, index_t begin, index_t end,
                          const RmspropCoeffs<T>& c) {
  const T lr = c.lr, rho = c.rho, omr = c.one_minus_rho, eps = c.epsilon, mu = c.momentum,
          wd = c.weight_decay, dlr = c.decay_lr;
  PYOPTIM_SIMD_LOOP
  for (index_t i = begin; i < end; ++i) {
    T pi = load<T>(p[i]);
    if constexpr (kDecay) pi = pi - pi * wd * dlr;
    const T gi = load<T>(g[i]);
    const T vi = rho * v[i] + omr * (gi * gi);
    v[i] = vi;
    T denom;
    if constexpr (kCentered) {
      const T ai = rho * avg[i] + omr * gi;
      avg[i] = ai;
      denom = (vi - ai * ai) + eps;
    } else {
      denom = vi + eps;
    }
    const T inc = (lr * gi) / std::sqrt(denom);
    if constexpr (kMomentum) {
      const T mi = mu * mom[i] + inc;
      mom[i] = mi;
      pi = pi - mi;
    } else {
      pi = pi - inc;
    }
    p[i] = store<P>(pi);
  }
}

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
