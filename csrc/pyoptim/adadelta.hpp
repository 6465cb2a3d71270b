// Adadelta, exactly as keras.optimizers.Adadelta (rho, 1 - rho and epsilon: the Python floats,
// each converted once to the variable's dtype; lr in it):
//
//   ag = rho * ag + (1 - rho) * g^2
//   delta = -((sqrt(ad + eps) * g) / sqrt(ag + eps))
//   ad = rho * ad + (1 - rho) * delta^2
//   p = p + lr * delta
//
// Inside tf.function Grappler rewrites the division to (sqrt(ad + eps) * g) * rsqrt(ag + eps)
// (kGraphRsqrt: before_sqrt / after_rsqrt).  A sparse gradient, as Keras applies it: ag and ad
// change in every row (densified sums of the slices' terms, +0.0 in a row no slice hits), each
// slice's delta uses sqrt(ad + eps) and sqrt(ag + eps) gathered at its row, and p gets
// lr * delta slice after slice (a scatter_add) on the rows present.
#pragma once

#include <cmath>

#include "elementwise.hpp"

namespace pyoptim {
inline namespace PYOPTIM_ISA {

struct Adadelta {
  static constexpr const char* kName = "adadelta";
  static constexpr int kSlots = 2;  // accumulated_grad (ag), accumulated_delta_var (ad)
  static constexpr int kCoeffs = 4;  // lr, rho, 1 - rho, epsilon
  static constexpr int kVariants = 1;
  static constexpr int kTerms = 1;  // g
  static constexpr SparseRule kSparse = SparseRule::kRows;
  static constexpr bool kSparseUntouched = true;  // ag, ad decay in every row
  static constexpr bool kTfTail = false;
  static constexpr bool kGraphRsqrt = true;
  static constexpr bool kTensorNorms = false;

  template <int k, class T>
  static PYOPTIM_ALWAYS_INLINE T term(T g, const T*) {
    return g;
  }

  // ag = rho * ag + (1 - rho) * g^2; returns ag + eps, the argument of the rewritten sqrt.
  template <class T, class G>
  static PYOPTIM_ALWAYS_INLINE T before_sqrt(const G& g, index_t i, T* ag, T*, T*, const T* c) {
    const T gi = g.template get<0>(i);
    const T a = c[1] * ag[i] + c[2] * (gi * gi);
    ag[i] = a;
    return a + c[3];
  }

  // The rest, given q = (sqrt(ad + eps) * g) / sqrt(ag + eps) (or its graph form).
  template <class T>
  static PYOPTIM_ALWAYS_INLINE T finish(T p, T q, index_t i, T* ad, const T* c) {
    const T delta = negate_tf(q);
    ad[i] = c[1] * ad[i] + c[2] * (delta * delta);
    return p + c[0] * delta;
  }

  template <class T, class G>
  static PYOPTIM_ALWAYS_INLINE T after_rsqrt(T p, const G& g, index_t i, T*, T* ad, T*, const T* c, T r) {
    return finish<T>(p, (std::sqrt(ad[i] + c[3]) * g.template get<0>(i)) * r, i, ad, c);
  }

  template <class T, int kVariant, class G>
  static PYOPTIM_ALWAYS_INLINE T update(T p, const G& g, index_t i, T* ag, T* ad, T* s2, const T* c) {
    const T x = before_sqrt<T>(g, i, ag, ad, s2, c);
    return finish<T>(p, (std::sqrt(ad[i] + c[3]) * g.template get<0>(i)) / std::sqrt(x), i, ad, c);
  }

  // Columns [lo, hi) of rows no slice hits: ag = rho * ag + 0, ad = rho * ad + 0 (the +0.0 of
  // Keras' densified sums); p unchanged.
  template <class T>
  static void sparse_untouched(T*, T* ag, T* ad, T*, index_t lo, index_t hi, const T* c) {
    const T rho = c[1];
    PYOPTIM_SIMD_LOOP
    for (index_t x = lo; x < hi; ++x) {
      ag[x] = rho * ag[x] + T(0);
      ad[x] = rho * ad[x] + T(0);
    }
  }

  // Columns [lo, hi) of one row hit by `count` slices; p, ag, ad point at the row.
  template <class T>
  static void sparse_row(T* p, T* ag, T* ad, T*, const T* const* slices, index_t count,
                         index_t lo, index_t hi, const T* c) {
    const T lr = c[0], rho = c[1], omr = c[2], eps = c[3];
    for (index_t x = lo; x < hi; ++x) {
      T sum = T(0);
      for (index_t q = 0; q < count; ++q) sum = sum + omr * (slices[q][x] * slices[q][x]);
      const T a = rho * ag[x] + sum;
      ag[x] = a;
      const T rms_ad = std::sqrt(ad[x] + eps), rms_ag = std::sqrt(a + eps);
      T sum_d = T(0);
      for (index_t q = 0; q < count; ++q) {
        const T delta = negate_tf((rms_ad * slices[q][x]) / rms_ag);
        sum_d = sum_d + omr * (delta * delta);
      }
      ad[x] = rho * ad[x] + sum_d;
      for (index_t q = 0; q < count; ++q) {
        const T delta = negate_tf((rms_ad * slices[q][x]) / rms_ag);
        p[x] = p[x] + lr * delta;
      }
    }
  }
};

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
