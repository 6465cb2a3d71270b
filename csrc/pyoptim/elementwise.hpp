// The element-wise optimizers beyond SGD, RMSprop and Adam: one kernel struct per optimizer,
// each in its own small header (lion.hpp, adamax.hpp, ...), listed once in
// elementwise_kernels.hpp (PYOPTIM_ELEMENTWISE_KERNELS).  Everything else is generic: the NumPy
// core's table and bindings (kernels_isa.cpp, module.cpp), the TensorFlow op
// (PyoptimApplyElementwise) and the Python classes built on them.
//
// A kernel struct K gives:
//
//   kName       the name the bindings, the op and the Python classes use ("lion");
//   kSlots      how many state arrays (<= 3), in Keras' slot order;
//   kCoeffs     how many scalar coefficients (computed once per step by the caller, in the
//               parameter's dtype, with Keras' operations: e.g. Adamax's 1 - beta_1^t);
//   kVariants   how many compile-time variants (e.g. Grappler's graph-mode arithmetic);
//   kTerms      how many gradient terms the update reads (see below);
//   term<k>(g, c)   gradient term k of one element: Keras' expression of the gradient alone
//               (g, g * g, g * (1 - beta_1), ...);
//   update<T, kVariant>(p, terms, i, s0, s1, s2, c)   the new parameter value of element i
//               (p after weight decay), writing the slots s0[i].. in Keras' operation order
//               (c: the coefficients, or the kernel's optional Prepared<T> built from them once
//               per call);
//   kSparse, kGraphRsqrt, kTfTail, kTensorNorms   see below.
//
// Every function called per element is PYOPTIM_ALWAYS_INLINE: in a translation unit as large as
// the TensorFlow op's, GCC otherwise stops inlining, and a call per element does not vectorise.
//
// How Keras applies a tf.IndexedSlices gradient (kSparse):
//   kSummed  every row runs update with summed terms (see below);
//   kRows    Keras scatters: the kernel's sparse_row(p, s0, s1, s2, slices, count, lo, hi, c)
//            updates each row present; the other rows change only by weight decay, unless
//            kSparseUntouched: then by sparse_untouched(p, s0, s1, s2, lo, hi, c) as well.
// A kernel whose Keras update inside tf.function is rewritten by Grappler from a / sqrt(x) to
// a * rsqrt(x) says kGraphRsqrt and splits its update at the square root: before_sqrt (returns
// x, writes the slots it updates before) and after_rsqrt (the new parameter, given r).
//
// A kernel that reproduces TensorFlow arithmetic whose result depends on where an element sits
// (its CPU kernels run 32-byte packets from a tensor's element 0, then scalar code on the last
// n % P elements: Pow, Minimum and Maximum of ±0 do differ) says kTfTail: its variants come in
// pairs, variant | 1 for those last elements, and the callers split each tensor there
// (split_tf_tail).
//
// A kernel whose step needs norms of whole tensors (Lamb's trust ratio) says kTensorNorms: its
// update changes the slots only (it is passed 0 for p; the loop touches p only for weight
// decay); the caller then sums square<kVariant>(p) and square<kVariant>(step(i, ...)) over each
// tensor in TensorFlow's order, and applies finish(p, step(i), scale(sum_p, sum_u, c)).  With a
// dense gradient the callers make the decay inside the first sum's pass and the update inside
// the second's, just before step(i) (kernels_isa.cpp's tensor_norm_passes, the op's
// TensorNormPasses; both sum through tensor_norm_sum below).  square's form 1 (graph) must be
// the same for the packet and tail variants: tensor_norm_sum uses the packet one throughout.
//
// Why terms: for a tf.IndexedSlices gradient Keras applies each element-wise op of the
// gradient to the slices' values and densifies where it meets a dense tensor, summing a row's
// slices in index order from +0.0 (unsorted_segment_sum).  An update that reads the gradient
// only through its terms therefore gets Keras' sparse bits when term k is S(term_k(slices))
// (SummedTerms), and its dense bits when it is term_k(g) (DenseTerms); a row no slice hits
// reads +0.0 (ZeroTerms).
//
// Weight decay (Keras' decoupled p = p - p * wd * lr, before the update) is the generic loop's.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common.hpp"
#include "half.hpp"
#include "tf_reduce.hpp"

namespace pyoptim {

enum class SparseRule { kSummed, kRows };

// Per call: the coefficients (K::kCoeffs of them), Keras' decay factors and, for a
// kTensorNorms kernel, the intra-op thread count of the TensorFlow whose reduce_sum order the
// norms reproduce (tf_reduce.hpp; the TensorFlow op reads its device's instead).
template <class T>
struct ElementwiseCoeffs {
  const T* c;
  T weight_decay;
  T decay_lr;
  int reduction_threads = 1;
};

inline namespace PYOPTIM_ISA {

// ---------------------------------------------------------------- gradient terms

// The coefficients are held by value, so that the compiler sees they cannot alias the
// parameter or the slots.
template <class K, class T, class P = T>
struct DenseTerms {
  const P* PYOPTIM_RESTRICT g;
  std::array<T, K::kCoeffs> c;
  DenseTerms(const P* grad, const T* coeffs) : g(grad) {
    for (int k = 0; k < K::kCoeffs; ++k) c[k] = coeffs[k];
  }
  template <int k>
  T get(index_t i) const {
    return K::template term<k>(load<T>(g[i]), c.data());
  }
};

template <class T>
struct ZeroTerms {
  template <int k>
  T get(index_t) const {
    return T(0);
  }
};

template <class T>
struct SummedTerms {
  const T* s[4];  // s[k][i]: S(term_k) of element i
  template <int k>
  T get(index_t i) const {
    return s[k][i];
  }
};

// TensorFlow's CPU packet (its x86-64 wheels are built for AVX): P elements of T.
template <class T>
constexpr index_t kTfPacket = 32 / static_cast<index_t>(sizeof(T));

// Runs f(variant, begin, end) over [b, e) of a tensor of n elements: for a kTfTail kernel in
// two parts, split where the tensor's last n % P elements start (those with variant | 1).
template <class K, class T, class F>
inline void split_tf_tail(int variant, index_t b, index_t e, index_t n, const F& f) {
  if constexpr (K::kTfTail) {
    const index_t cut = n - n % kTfPacket<T>;
    if (b < e && b < cut) f(variant & ~1, b, e < cut ? e : cut);
    if (b < e && cut < e) f(variant | 1, b > cut ? b : cut, e);
  } else {
    f(variant, b, e);
  }
}

// A kTensorNorms kernel's norm sum over one part [first, first + count) of a tensor whose
// elements from `cut` on take the tail variant: tf.reduce_sum of square<variant>(value(i, kv)),
// kv the variant as a std::integral_constant, in TensorFlow's order (tf_reduce.hpp).  value may
// store element i's own memory (the weight decay of p, the update of the slots).  Form 1
// (Grappler's graph arithmetic) squares every element alike, so each value is added where it is
// made: one pass (tf_reduce's tree).  Form 0's TensorFlow Pow vectorises only in a loop of its
// own, split at `cut`, so a leaf's values are made into `buffer` (tf_reduce::kLeafBuffer<T>
// elements; unused in form 1) before they are added (tree_filled).  The core's
// tensor_norm_passes and the op's TensorNormPasses both sum through this.
template <class K, class T, int kForm, class V>
inline T tensor_norm_sum(const V& value, int64_t first, int64_t count, int64_t cut, T* buffer) {
  constexpr std::integral_constant<int, kForm * 2> packet{};
  constexpr std::integral_constant<int, kForm * 2 + 1> tail{};
  if constexpr (kForm == 1) {
    (void)cut, (void)buffer, (void)tail;
    return tf_reduce::range_sum<T>(
        [value, packet](int64_t i) {
          return K::template square<decltype(packet)::value>(value(i, packet));
        },
        first, count);
  } else {
    const auto fill = [&value, cut, packet, tail](int64_t f, int64_t m, T* PYOPTIM_RESTRICT out) {
      const V here = value;  // a local copy: its captures stay in registers across the stores
      const int64_t mid = std::max<int64_t>(f, std::min<int64_t>(f + m, cut));
      PYOPTIM_SIMD_LOOP
      for (int64_t i = f; i < mid; ++i)
        out[i - f] = K::template square<decltype(packet)::value>(here(i, packet));
      for (int64_t i = mid; i < f + m; ++i)
        out[i - f] = K::template square<decltype(tail)::value>(here(i, tail));
    };
    return tf_reduce::range_sum_filled<T>(fill, first, count, buffer);
  }
}

// TensorFlow's Neg: the sign bit flipped, NaN included.  (Written on the bits: the compiler may
// fold an arithmetic -x into the following operation, a + b * -x into a - b * x, which gives a
// NaN the other sign.)
template <class T>
PYOPTIM_ALWAYS_INLINE T negate_tf(T x) {
  using U = typename std::conditional<sizeof(T) == 4, std::uint32_t, std::uint64_t>::type;
  U u;
  std::memcpy(&u, &x, sizeof u);
  u ^= U(1) << (sizeof(T) * 8 - 1);
  std::memcpy(&x, &u, sizeof u);
  return x;
}

// Keras' maximum (TensorFlow's Maximum): NaN in either operand gives NaN.
template <class T>
PYOPTIM_ALWAYS_INLINE T maximum_nan(T a, T b) {
  return (a < b || b != b) ? b : a;
}

// Keras' sign (TensorFlow's Sign): -1, +0 or 1; NaN stays NaN; -0.0 gives +0.0.
template <class T>
PYOPTIM_ALWAYS_INLINE T sign_tf(T x) {
  return x > T(0) ? T(1) : (x < T(0) ? T(-1) : (x == x ? T(0) : x));
}

// ---------------------------------------------------------------- the loop

// What update receives as its coefficients: the loop's local copy (const T*), or, for a kernel
// that derives per-call constants from them (Ftrl's exponent), its Prepared<T>, built once per
// call from that copy.
template <class K, class T, class = void>
struct PreparedCoeffs {
  static const T* make(const T* c) { return c; }
};
template <class K, class T>
struct PreparedCoeffs<K, T, std::void_t<typename K::template Prepared<T>>> {
  static typename K::template Prepared<T> make(const T* c) {
    return typename K::template Prepared<T>(c);
  }
};

// Elements [begin, end): weight decay (when kDecay), then K's update, one loop for the SIMD
// body and the tail.  P: storage type of the parameter (T, or a 16-bit float with T = float).
template <class K, class T, int kVariant, bool kDecay, class P, class G>
inline void elementwise_loop(P* PYOPTIM_RESTRICT p, const G& terms, T* PYOPTIM_RESTRICT s0,
                             T* PYOPTIM_RESTRICT s1, T* PYOPTIM_RESTRICT s2, index_t begin,
                             index_t end, const ElementwiseCoeffs<T>& coeffs) {
  std::array<T, K::kCoeffs> c;  // a local copy: no aliasing with p or the slots
  for (int k = 0; k < K::kCoeffs; ++k) c[k] = coeffs.c[k];
  const T wd = coeffs.weight_decay, dlr = coeffs.decay_lr;
  const G g = terms;  // a local copy, likewise
  const auto prepared = PreparedCoeffs<K, T>::make(c.data());
  if constexpr (K::kTensorNorms && !kDecay) {
    // A kTensorNorms update changes the slots only: without weight decay p is neither read
    // nor written here (8 bytes an element less; it changes in the last pass).
    PYOPTIM_SIMD_LOOP
    for (index_t i = begin; i < end; ++i)
      (void)K::template update<T, kVariant>(T(0), g, i, s0, s1, s2, prepared);
    (void)p;
    return;
  }
  PYOPTIM_SIMD_LOOP
  for (index_t i = begin; i < end; ++i) {
    T pi = load<T>(p[i]);
    if constexpr (kDecay) pi = pi - pi * wd * dlr;
    p[i] = store<P>(K::template update<T, kVariant>(pi, g, i, s0, s1, s2, prepared));
  }
}

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
