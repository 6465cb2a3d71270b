// Lion, exactly as keras.optimizers.Lion (beta_1, beta_2 cast to the variable's dtype; the
// coefficients below computed by the caller in that dtype):
//
//   p = p - lr * sign(m * beta_1 + g * (1 - beta_1))
//   m = m * beta_2 + g * (1 - beta_2)
#pragma once

#include "elementwise.hpp"

namespace pyoptim {
inline namespace PYOPTIM_ISA {

struct Lion {
  static constexpr const char* kName = "lion";
  static constexpr int kSlots = 1;  // momentum
  // lr, beta_1, 1 - beta_1, beta_2, 1 - beta_2
  static constexpr int kCoeffs = 5;
  static constexpr int kVariants = 1;
  static constexpr int kTerms = 2;  // g * (1 - beta_1), g * (1 - beta_2)
  static constexpr SparseRule kSparse = SparseRule::kSummed;
  static constexpr bool kTfTail = false;
  static constexpr bool kGraphRsqrt = false;
  static constexpr bool kTensorNorms = false;

  template <int k, class T>
  static PYOPTIM_ALWAYS_INLINE T term(T g, const T* c) {
    return k == 0 ? g * c[2] : g * c[4];
  }

  template <class T, int kVariant, class G>
  static PYOPTIM_ALWAYS_INLINE T update(T p, const G& g, index_t i, T* m, T*, T*, const T* c) {
    const T lr = c[0], beta_1 = c[1], beta_2 = c[3];
    const T mi = m[i];
    const T next = p - lr * sign_tf(mi * beta_1 + g.template get<0>(i));
    m[i] = mi * beta_2 + g.template get<1>(i);
    return next;
  }
};

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
