// FTRL-Proximal, exactly as keras.optimizers.Ftrl (every scalar in the variable's dtype; the
// coefficients computed once per step by the caller with Keras' operations):
//
//   gtu = g + (2 * l2_shrinkage) * p
//   na = acc + g^2
//   linear = linear + (gtu - ((POW(na) - POW(acc)) / lr) * p)
//   quadratic = POW(na) / lr + 2 * l2_reg,      l2_reg = l2 + beta / (2 * lr)
//   p = (clip(linear, -l1, l1) - linear) / quadratic
//   acc = na
//
// POW(x) is Keras' ops.power(x, -learning_rate_power), TensorFlow's Pow: executing eagerly
// Eigen's packet pow on the tensor's elements [0, n - n % P) and std::pow on its last n % P
// (tf_pow.hpp; P: TensorFlow's AVX packet, 8 float32 or 4 float64); inside tf.function
// Grappler's ConvertPow rewrites Pow(x, 0.5) to sqrt(x), Pow(x, 1) to x, Pow(x, 2) to x * x,
// Pow(x, 3) to x * (x * x) and Pow(x, 0) to 1 (other exponents stay TensorFlow's Pow).  clip is
// TensorFlow's Maximum(Minimum(linear, l1), -l1): NaN propagates, and where linear equals a bound
// (+0 and -0 when l1 = 0) the packet lanes give the bound and the tail's scalar code linear.
//
// Variants: form * 2 + tail, form in Form below, tail 1 for the tensor's last n % P elements
// (kTfTail: the callers split each tensor there).  A sparse gradient: Keras densifies g and g^2
// (S(g), S(g * g)) and every row runs the update (kSummed).
#pragma once

#include <cmath>

#include "elementwise.hpp"
#include "tf_pow.hpp"

namespace pyoptim {
inline namespace PYOPTIM_ISA {

struct Ftrl {
  static constexpr const char* kName = "ftrl";
  static constexpr int kSlots = 2;  // accumulator, linear
  // lr, -learning_rate_power, 2 * l2_shrinkage, l1, -l1 (the lower bound as Keras' clip gets
  // it), 2 * l2_reg
  static constexpr int kCoeffs = 6;
  // How POW is computed: TensorFlow's Pow (eager, and graph for other exponents), or the
  // graph rewrites of exponents 0.5, 1, 2, 3 and 0.
  enum Form { kTfPow = 0, kSqrt = 1, kIdentity = 2, kSquare = 3, kCube = 4, kOne = 5 };
  static constexpr int kVariants = 12;  // form * 2 + tail
  static constexpr bool kTfTail = true;
  static constexpr int kTerms = 2;  // g, g^2
  static constexpr SparseRule kSparse = SparseRule::kSummed;
  static constexpr bool kGraphRsqrt = false;
  static constexpr bool kTensorNorms = false;

  template <int k, class T>
  static PYOPTIM_ALWAYS_INLINE T term(T g, const T*) {
    if constexpr (k == 0) return g;
    return g * g;
  }

  // The coefficients and what TensorFlow's Pow derives from the exponent, once per call.
  template <class T>
  struct Prepared {
    T c[kCoeffs];
    TfPowExponent<T> exponent;
    explicit Prepared(const T* coeffs) : exponent(coeffs[1]) {
      for (int k = 0; k < kCoeffs; ++k) c[k] = coeffs[k];
    }
  };

  template <int kForm, bool kTail, class T>
  static PYOPTIM_ALWAYS_INLINE T power(T x, const TfPowExponent<T>& e) {
    if constexpr (kForm == kSqrt) return std::sqrt(x);
    if constexpr (kForm == kIdentity) return x;
    if constexpr (kForm == kSquare) return x * x;
    if constexpr (kForm == kCube) return x * (x * x);
    if constexpr (kForm == kOne) return T(1);
    if constexpr (kTail) return static_cast<T>(std::pow(x, e.y));
    return tf_pow_packet_lane(x, e);
  }

  // TensorFlow's Minimum / Maximum of a tensor element x and a scalar bound: NaN x stays; where
  // x equals the bound (+0 and -0) the packet gives the bound, the scalar tail x.  (Selects
  // only, so that the loop vectorises.)
  template <bool kTail, class T>
  static PYOPTIM_ALWAYS_INLINE T minimum(T x, T bound) {
    if constexpr (kTail) return bound < x ? bound : x;
    return !(x >= bound) ? x : bound;
  }
  template <bool kTail, class T>
  static PYOPTIM_ALWAYS_INLINE T maximum(T x, T bound) {
    if constexpr (kTail) return bound > x ? bound : x;
    return !(x <= bound) ? x : bound;
  }

  template <class T, int kVariant, class G>
  static PYOPTIM_ALWAYS_INLINE T update(T p, const G& g, index_t i, T* acc, T* lin, T*, const Prepared<T>& prepared) {
    constexpr int kForm = kVariant / 2;
    constexpr bool kTail = kVariant % 2 == 1;
    const T* c = prepared.c;
    const TfPowExponent<T>& y = prepared.exponent;
    const T lr = c[0], shrink2 = c[2], l1 = c[3], minus_l1 = c[4], l2_reg2 = c[5];
    const T gi = g.template get<0>(i);
    const T gtu = gi + shrink2 * p;
    const T a = acc[i];
    const T na = a + g.template get<1>(i);
    const T pn = power<kForm, kTail>(na, y), pa = power<kForm, kTail>(a, y);
    const T linear = lin[i] + (gtu - ((pn - pa) / lr) * p);
    lin[i] = linear;
    acc[i] = na;
    const T quadratic = pn / lr + l2_reg2;
    const T clipped = maximum<kTail>(minimum<kTail>(linear, l1), minus_l1);
    return (clipped - linear) / quadratic;
  }
};

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
