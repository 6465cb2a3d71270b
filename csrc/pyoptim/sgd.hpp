// SGD with optional momentum and Nesterov momentum, exactly as keras.optimizers.SGD:
//
//   (weight decay)  p = p - p * wd * decay_lr   (decay_lr = lr; see SgdCoeffs)
//   no momentum:    p = p - g * lr
//   momentum:       m = m * momentum - g * lr;  p = p + m
//   Nesterov:       m = m * momentum - g * lr;  p = p + (m * momentum - g * lr)
#pragma once

#include "common.hpp"
#include "grad.hpp"
#include "half.hpp"

namespace pyoptim {

// Plain data: the same in every instruction set's copy.

template <class T>
struct SgdCoeffs {
  T lr;
  T momentum;
  T weight_decay;  // used only when the kernel is instantiated with kDecay
  T decay_lr;      // the decay's learning rate: lr, or 1 when weight_decay holds wd * lr
};

enum class SgdMode { kPlain, kMomentum, kNesterov };

inline namespace PYOPTIM_ISA {

// P is the storage type of param and grad: T itself, or Float16/BFloat16 with T = float.
// G gives element i's gradient (grad.hpp).
template <class T, SgdMode kMode, bool kDecay, class P = T, class G = DenseGrad<T, P>>
inline void sgd_loop(P* PYOPTIM_RESTRICT p, G grad, T* PYOPTIM_RESTRICT m, index_t begin,
                     index_t end, const SgdCoeffs<T>& c) {
  const T lr = c.lr, mu = c.momentum, wd = c.weight_decay, dlr = c.decay_lr;
  PYOPTIM_SIMD_LOOP
  for (index_t i = begin; i < end; ++i) {
    T pi = load<T>(p[i]);
    if constexpr (kDecay) pi = pi - pi * wd * dlr;
    const T gi = grad(i);
    if constexpr (kMode == SgdMode::kPlain) {
      pi = pi - gi * lr;
    } else {
      const T mi = m[i] * mu - gi * lr;
      m[i] = mi;
      if constexpr (kMode == SgdMode::kNesterov) {
        pi = pi + (mi * mu - gi * lr);
      } else {
        pi = pi + mi;
      }
    }
    p[i] = store<P>(pi);
  }
}

template <class T, SgdMode kMode, bool kDecay, class P = T>
inline void sgd_range(P* PYOPTIM_RESTRICT p, const P* PYOPTIM_RESTRICT g, T* PYOPTIM_RESTRICT m,
                      index_t begin, index_t end, const SgdCoeffs<T>& c) {
  sgd_loop<T, kMode, kDecay, P>(p, DenseGrad<T, P>{g}, m, begin, end, c);
}

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
