// One instruction set's copy of every kernel.  CMakeLists.txt compiles this file
// once per instruction set with PYOPTIM_ISA set to its name and the matching
// -m flags; dispatch.cpp picks a table at import from the running CPU.
#include "pyoptim/parallel.hpp"
#include "pyoptim/segments.hpp"

#include <utility>

#define PYOPTIM_STR2(x) #x
#define PYOPTIM_STR(x) PYOPTIM_STR2(x)

namespace pyoptim {
inline namespace PYOPTIM_ISA {
namespace {

// T: arithmetic and state type; P: storage type of param and grad (T, or a
// 16-bit float with T = float).
template <class T, class P, SgdMode kMode, bool kDecay>
void sgd_run(const Segment* s, std::size_t n, int threads, const SgdCoeffs<T>& c) {
  for_each_range(s, n, threads, [&](const Segment& seg, index_t b, index_t e) {
    sgd_range<T, kMode, kDecay, P>(static_cast<P*>(seg.p), static_cast<const P*>(seg.g),
                                   static_cast<T*>(seg.s[0]), b, e, c);
  });
}

template <class T, class P = T>
void sgd(const Segment* s, std::size_t n, int threads, const SgdCoeffs<T>& c, SgdMode mode,
         bool decay) {
  switch (mode) {
    case SgdMode::kPlain:
      return decay ? sgd_run<T, P, SgdMode::kPlain, true>(s, n, threads, c)
                   : sgd_run<T, P, SgdMode::kPlain, false>(s, n, threads, c);
    case SgdMode::kMomentum:
      return decay ? sgd_run<T, P, SgdMode::kMomentum, true>(s, n, threads, c)
                   : sgd_run<T, P, SgdMode::kMomentum, false>(s, n, threads, c);
    case SgdMode::kNesterov:
      return decay ? sgd_run<T, P, SgdMode::kNesterov, true>(s, n, threads, c)
                   : sgd_run<T, P, SgdMode::kNesterov, false>(s, n, threads, c);
  }
}

// RMSprop slots: s[0] velocity, s[1] momentum, s[2] average gradient.
template <class T, class P, bool kCentered, bool kMomentum, bool kDecay>
void rmsprop_run(const Segment* s, std::size_t n, int threads, const RmspropCoeffs<T>& c) {
  for_each_range(s, n, threads, [&](const Segment& seg, index_t b, index_t e) {
    rmsprop_range<T, kCentered, kMomentum, kDecay, P>(
        static_cast<P*>(seg.p), static_cast<const P*>(seg.g), static_cast<T*>(seg.s[0]),
        static_cast<T*>(seg.s[1]), static_cast<T*>(seg.s[2]), b, e, c);
  });
}

template <class T, class P, bool kCentered, bool kMomentum>
void rmsprop_decay(const Segment* s, std::size_t n, int threads, const RmspropCoeffs<T>& c,
                   bool decay) {
  decay ? rmsprop_run<T, P, kCentered, kMomentum, true>(s, n, threads, c)
        : rmsprop_run<T, P, kCentered, kMomentum, false>(s, n, threads, c);
}

template <class T, class P = T>
void rmsprop(const Segment* s, std::size_t n, int threads, const RmspropCoeffs<T>& c,
             bool centered, bool momentum, bool decay) {
  if (centered) {
    momentum ? rmsprop_decay<T, P, true, true>(s, n, threads, c, decay)
             : rmsprop_decay<T, P, true, false>(s, n, threads, c, decay);
  } else {
    momentum ? rmsprop_decay<T, P, false, true>(s, n, threads, c, decay)
             : rmsprop_decay<T, P, false, false>(s, n, threads, c, decay);
  }
}

// Adam slots: s[0] m, s[1] v, s[2] v_hat (AMSGrad).
template <class T, class P, bool kAmsgrad, bool kDecay>
void adam_run(const Segment* s, std::size_t n, int threads, const AdamCoeffs<T>& c) {
  for_each_range(s, n, threads, [&](const Segment& seg, index_t b, index_t e) {
    adam_range<T, kAmsgrad, kDecay, P>(static_cast<P*>(seg.p), static_cast<const P*>(seg.g),
                                       static_cast<T*>(seg.s[0]), static_cast<T*>(seg.s[1]),
                                       static_cast<T*>(seg.s[2]), b, e, c);
  });
}

template <class T, class P = T>
void adam(const Segment* s, std::size_t n, int threads, const AdamCoeffs<T>& c, bool amsgrad,
          bool decay) {
  if (amsgrad) {
    decay ? adam_run<T, P, true, true>(s, n, threads, c)
          : adam_run<T, P, true, false>(s, n, threads, c);
  } else {
    decay ? adam_run<T, P, false, true>(s, n, threads, c)
          : adam_run<T, P, false, false>(s, n, threads, c);
  }
}

// Adam with 8-bit state: codes and scales per segment (adam8bit.hpp).
template <class T, class P, bool kAmsgrad, bool kDecay>
void adam8bit_run(const QuantSegment* s, std::size_t n, int threads, const AdamCoeffs<T>& c,
                  index_t block) {
  for_each_block(s, n, block, threads, [&](const QuantSegment& seg, index_t b, index_t e) {
    adam8bit_blocks<T, kAmsgrad, kDecay, P>(
        static_cast<P*>(seg.p), DenseGrad<T, P>{static_cast<const P*>(seg.g)}, seg.m, seg.v,
        seg.vhat, static_cast<T*>(seg.m_scale), static_cast<T*>(seg.v_scale),
        static_cast<T*>(seg.vhat_scale), seg.n, block, b, e, c);
  });
}

template <class T, class P = T>
void adam8bit(const QuantSegment* s, std::size_t n, int threads, const AdamCoeffs<T>& c,
              index_t block, bool amsgrad, bool decay) {
  if (amsgrad) {
    decay ? adam8bit_run<T, P, true, true>(s, n, threads, c, block)
          : adam8bit_run<T, P, true, false>(s, n, threads, c, block);
  } else {
    decay ? adam8bit_run<T, P, false, true>(s, n, threads, c, block)
          : adam8bit_run<T, P, false, false>(s, n, threads, c, block);
  }
}

// The element-wise kernels (elementwise.hpp): slots s[0..2], dense gradient terms.
template <class K, class T, class P, int kVariant, bool kDecay>
void elementwise_run(const Segment* s, std::size_t n, int threads, const ElementwiseCoeffs<T>& c) {
  for_each_range(s, n, threads, [&](const Segment& seg, index_t b, index_t e) {
    elementwise_loop<K, T, kVariant, kDecay, P>(
        static_cast<P*>(seg.p), DenseTerms<K, T, P>(static_cast<const P*>(seg.g), c.c),
        static_cast<T*>(seg.s[0]), static_cast<T*>(seg.s[1]), static_cast<T*>(seg.s[2]), b, e, c);
  });
}

template <class K, class T, class P, int... kV>
void elementwise_variant(const Segment* s, std::size_t n, int threads,
                         const ElementwiseCoeffs<T>& c, int variant, bool decay,
                         std::integer_sequence<int, kV...>) {
  (void)((variant == kV
              ? ((decay ? elementwise_run<K, T, P, kV, true>(s, n, threads, c)
                        : elementwise_run<K, T, P, kV, false>(s, n, threads, c)),
                 true)
              : false) ||
         ...);
}

// variant: in [0, K::kVariants) (checked by the binding).
template <class K, class T, class P = T>
void elementwise(const Segment* s, std::size_t n, int threads, const ElementwiseCoeffs<T>& c,
                 int variant, bool decay) {
  elementwise_variant<K, T, P>(s, n, threads, c, variant, decay,
                               std::make_integer_sequence<int, K::kVariants>{});
}

}  // namespace

const KernelTable& kernel_table() {
  static const KernelTable table{
      PYOPTIM_STR(PYOPTIM_ISA),
      &sgd<float>,     &sgd<float, Float16>,     &sgd<float, BFloat16>,     &sgd<double>,
      &rmsprop<float>, &rmsprop<float, Float16>, &rmsprop<float, BFloat16>, &rmsprop<double>,
      &adam<float>,    &adam<float, Float16>,    &adam<float, BFloat16>,    &adam<double>,
      &adam8bit<float>, &adam8bit<float, Float16>, &adam8bit<float, BFloat16>, &adam8bit<double>,
      {
#define PYOPTIM_ELEMENTWISE_ENTRY(K)                                                             \
  ElementwiseEntry{K::kName,          K::kSlots,                    K::kCoeffs,                \
                   K::kVariants,      &elementwise<K, float>,       &elementwise<K, float, Float16>, \
                   &elementwise<K, float, BFloat16>, &elementwise<K, double>},
          PYOPTIM_ELEMENTWISE_KERNELS(PYOPTIM_ELEMENTWISE_ENTRY)
#undef PYOPTIM_ELEMENTWISE_ENTRY
      }};
  return table;
}

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
