// SGD with optional momentum and Nesterov momentum, exactly as keras.optimizers.SGD:
//
//   (weight decay)  p = p - p * wd * lr
//   no momentum:    p = p - g * lr
//   momentum:       m = m * momentum - g * lr;  p = p + m
//   Nesterov:       m = m * momentum - g * lr;  p = p + (m * momentum - g * lr)
#pragma once

#include "common.hpp"

namespace pyoptim {

// Plain data: the same in every instruction set's copy.

template <class T>
struct SgdCoeffs {
  T lr;
  T momentum;
  T weight_decay;  // used only when the kernel is instantiated with kDecay
};

enum class SgdMode { kPlain, kMomentum, kNesterov };

inline namespace PYOPTIM_ISA {

template <class T, SgdMode kMode, bool kDecay>
inline void sgd_range(T* PYOPTIM_RESTRICT p, const T* PYOPTIM_RESTRICT g, T* PYOPTIM_RESTRICT m,
                      index_t begin, index_t end, const SgdCoeffs<T>& c) {
  const T lr = c.lr, mu = c.momentum, wd = c.weight_decay;
  PYOPTIM_SIMD_LOOP
  for (index_t i = begin; i < end; ++i) {
    T pi = p[i];
    if constexpr (kDecay) pi = pi - pi * wd * lr;
    const T gi = g[i];
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
    p[i] = pi;
  }
}

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
