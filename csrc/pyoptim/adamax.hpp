// Adamax, exactly as keras.optimizers.Adamax:
//
//   m = m + (g - m) * (1 - beta_1)           (1 - beta_1: the Python float, cast once)
//   u = max(beta_2 * u, |g|)                 (TensorFlow's Maximum: NaN propagates)
//   p = p - (lr * m) / ((1 - beta_1^t) * (u + eps))
//
// with 1 - beta_1^t computed by the caller in the variable's dtype, once per step.
#pragma once

#include <cmath>

#include "elementwise.hpp"

namespace pyoptim {
inline namespace PYOPTIM_ISA {

struct Adamax {
  static constexpr const char* kName = "adamax";
  static constexpr int kSlots = 2;  // momentum (m), norm (u)
  // lr, 1 - beta_1, beta_2, 1 - beta_1^t, epsilon
  static constexpr int kCoeffs = 5;
  static constexpr int kVariants = 1;
  // g, |g| (a sparse gradient: Keras' abs acts on the slices, S(|g|))
  static constexpr int kTerms = 2;
  static constexpr SparseRule kSparse = SparseRule::kSummed;
  static constexpr bool kTfTail = false;
  static constexpr bool kGraphRsqrt = false;
  static constexpr bool kTensorNorms = false;

  template <int k, class T>
  static PYOPTIM_ALWAYS_INLINE T term(T g, const T*) {
    if constexpr (k == 0) return g;
    return std::abs(g);
  }

  template <class T, int kVariant, class G>
  static PYOPTIM_ALWAYS_INLINE T update(T p, const G& g, index_t i, T* m, T* u, T*, const T* c) {
    const T lr = c[0], omb1 = c[1], beta_2 = c[2], one_minus_b1_power = c[3], eps = c[4];
    const T gi = g.template get<0>(i);
    const T mi = m[i] + (gi - m[i]) * omb1;
    const T ui = maximum_nan(beta_2 * u[i], g.template get<1>(i));
    m[i] = mi;
    u[i] = ui;
    return p - (lr * mi) / (one_minus_b1_power * (ui + eps));
  }
};

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
