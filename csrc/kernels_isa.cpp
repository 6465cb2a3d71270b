// One instruction set's copy of every kernel.  CMakeLists.txt compiles this file
// once per instruction set with PYOPTIM_ISA set to its name and the matching
// -m flags; dispatch.cpp picks a table at import from the running CPU.
#include "pyoptim/parallel.hpp"
#include "pyoptim/segments.hpp"

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "pyoptim/tf_pow.hpp"
#include "pyoptim/tf_reduce.hpp"

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

// Elements [b, e) of one segment with compile-time variant kV.
template <class K, class T, class P, int kV, bool kDecay>
void elementwise_range(const Segment& seg, index_t b, index_t e, const ElementwiseCoeffs<T>& c) {
  elementwise_loop<K, T, kV, kDecay, P>(
      static_cast<P*>(seg.p), DenseTerms<K, T, P>(static_cast<const P*>(seg.g), c.c),
      static_cast<T*>(seg.s[0]), static_cast<T*>(seg.s[1]), static_cast<T*>(seg.s[2]), b, e, c);
}

// The runtime variant (in [0, K::kVariants)) to its instantiation.
template <class K, class T, class P, bool kDecay, int... kV>
void elementwise_range_variant(int variant, const Segment& seg, index_t b, index_t e,
                               const ElementwiseCoeffs<T>& c, std::integer_sequence<int, kV...>) {
  (void)((variant == kV ? (elementwise_range<K, T, P, kV, kDecay>(seg, b, e, c), true) : false) ||
         ...);
}

// One range of one segment.  A kTfTail kernel (elementwise.hpp) is split where the tensor's
// last n % P elements start (those take variant | 1), exactly as the TensorFlow op splits it,
// and runs under TensorFlow's FTZ/DAZ (TfDenormalScope: MXCSR is per thread, so every OpenMP
// thread sets its own).  P of float16/bfloat16 params: float's (their arithmetic type).
template <class K, class T, class P, bool kDecay>
void elementwise_one_range(int variant, const Segment& seg, index_t b, index_t e,
                           const ElementwiseCoeffs<T>& c) {
  constexpr auto kAll = std::make_integer_sequence<int, K::kVariants>{};
  if constexpr (K::kTfTail) {
    TfDenormalScope ftz;
    split_tf_tail<K, T>(variant, b, e, seg.n, [&](int v, index_t lo, index_t hi) {
      elementwise_range_variant<K, T, P, kDecay>(v, seg, lo, hi, c, kAll);
    });
  } else {
    elementwise_range_variant<K, T, P, kDecay>(variant, seg, b, e, c, kAll);
  }
}

// p = finish(p, step(i), scale) over [b, e) of one segment (a kTensorNorms kernel's last pass).
template <class K, class T, class P>
void finish_range(P* PYOPTIM_RESTRICT p, const T* PYOPTIM_RESTRICT m, const T* PYOPTIM_RESTRICT v,
                  T scale, index_t b, index_t e, const std::array<T, K::kCoeffs>& coeffs) {
  std::array<T, K::kCoeffs> c = coeffs;  // a local copy: no aliasing with p or the slots
  PYOPTIM_SIMD_LOOP
  for (index_t i = b; i < e; ++i) p[i] = store<P>(K::finish(load<T>(p[i]), K::step(i, m, v, c.data()), scale));
}

// A kTensorNorms kernel (Lamb) in two passes: per segment TensorFlow's reduce_sum of square(p)
// (p after Keras' weight decay, which the first sum applies and stores when kDecay) and of
// square(step(i)) (the second sum updates the slots, element by element just before its
// step(i); the gradients here are dense)
// (tf_reduce.hpp: the shards TensorFlow's FullReducer makes for c.reduction_threads intra-op
// threads; every shard of every segment computed in one OpenMP loop, in any order, then
// combined in TensorFlow's order), then p = finish(p, step(i), scale(sums)) in one parallel
// pass.  square's variant: the form of `variant` (variant / 2), with the tail variant on a
// tensor's last n % P elements, as the TensorFlow op's TensorNormPasses.
template <class K, class T, class P, int kForm, bool kDecay>
void tensor_norm_passes(const Segment* s, std::size_t nseg, int threads,
                        const ElementwiseCoeffs<T>& c) {
  namespace R = tf_reduce;
  constexpr index_t kP = kTfPacket<T>;
  struct Part {
    std::size_t k;
    index_t first, count;
  };
  std::vector<Part> parts;
  std::vector<R::Plan> plans(nseg);
  std::vector<std::size_t> first_part(nseg);
  index_t elements = 0;
  for (std::size_t k = 0; k < nseg; ++k) {
    const index_t size = s[k].n;
    elements += size;
    plans[k] = R::plan<T>(size, c.reduction_threads);
    first_part[k] = parts.size();
    if (plans[k].num_blocks == 0) {
      parts.push_back({k, 0, size});
      continue;
    }
    for (index_t i = 0; i < plans[k].num_blocks; ++i)
      parts.push_back({k, i * plans[k].block, plans[k].block});
    parts.push_back({k, plans[k].tail_begin, size - plans[k].tail_begin});  // may be empty
  }
  std::vector<T> p_sums(parts.size()), u_sums(parts.size());
  std::array<T, K::kCoeffs> cc;
  for (int j = 0; j < K::kCoeffs; ++j) cc[j] = c.c[j];
  const T wd = c.weight_decay, dlr = c.decay_lr;
  // Each part's two sums through tensor_norm_sum (elementwise.hpp), in TensorFlow's order.
  const auto part_sums = [&](std::size_t q) {
    TfDenormalScope ftz;
    const Part& part = parts[q];
    const Segment& seg = s[part.k];
    P* PYOPTIM_RESTRICT p = static_cast<P*>(seg.p);
    T* PYOPTIM_RESTRICT m = static_cast<T*>(seg.s[0]);
    T* PYOPTIM_RESTRICT v = static_cast<T*>(seg.s[1]);
    const DenseTerms<K, T, P> terms(static_cast<const P*>(seg.g), cc.data());
    const index_t cut = seg.n - seg.n % kP;
    if (part.count == 0) {
      p_sums[q] = u_sums[q] = T(0);
      return;
    }
    std::vector<T> buffer(kForm == 1 ? 0 : static_cast<std::size_t>(R::kLeafBuffer<T>));
    // p[i], after Keras' decay p = p - p * wd * lr (stored: the norm is the stored value's).
    const auto param = [p, wd, dlr](int64_t i, auto) {
      if constexpr (kDecay) {
        T pi = load<T>(p[i]);
        pi = pi - pi * wd * dlr;
        p[i] = store<P>(pi);
      }
      return load<T>(p[i]);
    };
    const auto step = [m, v, cc, terms](int64_t i, auto kv) {
      (void)K::template update<T, decltype(kv)::value>(T(0), terms, i, m, v, nullptr, cc.data());
      return K::step(i, m, v, cc.data());
    };
    p_sums[q] = tensor_norm_sum<K, T, kForm>(param, part.first, part.count, cut, buffer.data());
    u_sums[q] = tensor_norm_sum<K, T, kForm>(step, part.first, part.count, cut, buffer.data());
  };
  const long long nparts = static_cast<long long>(parts.size());
  const int nt = static_cast<int>(
      std::min<index_t>({static_cast<index_t>(threads), static_cast<index_t>(nparts),
                         std::max<index_t>(1, elements / (kParallelMinElements / 2))}));
#ifdef _OPENMP
  if (nt > 1 && elements >= kParallelMinElements) {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (long long q = 0; q < nparts; ++q) part_sums(static_cast<std::size_t>(q));
  } else
#endif
  {
    (void)nt;
    for (long long q = 0; q < nparts; ++q) part_sums(static_cast<std::size_t>(q));
  }
  // Per segment: ((final + shard 0) + shard 1) + ..., then Keras' trust ratio times lr.
  std::vector<T> scale(nseg);
  {
    TfDenormalScope ftz;
    for (std::size_t k = 0; k < nseg; ++k) {
      const std::size_t q = first_part[k];
      T p_sum = p_sums[q], u_sum = u_sums[q];
      if (plans[k].num_blocks > 0) {
        const std::size_t tail = q + static_cast<std::size_t>(plans[k].num_blocks);
        p_sum = R::combine(p_sums[tail], &p_sums[q], plans[k].num_blocks);
        u_sum = R::combine(u_sums[tail], &u_sums[q], plans[k].num_blocks);
      }
      scale[k] = K::scale(p_sum, u_sum, cc.data());
    }
  }
  for_each_range(s, nseg, threads, [&](const Segment& seg, index_t b, index_t e) {
    TfDenormalScope ftz;
    const std::size_t k = static_cast<std::size_t>(&seg - s);  // for_each_range passes s[k]
    finish_range<K, T, P>(static_cast<P*>(seg.p), static_cast<const T*>(seg.s[0]),
                          static_cast<const T*>(seg.s[1]), scale[k], b, e, cc);
  });
}

template <class K, class T, class P, bool kDecay>
void tensor_norms(const Segment* s, std::size_t n, int threads, const ElementwiseCoeffs<T>& c,
                  int variant) {
  if constexpr (K::kTensorNorms) {
    if (variant / 2 == 1) {
      tensor_norm_passes<K, T, P, 1, kDecay>(s, n, threads, c);
    } else {
      tensor_norm_passes<K, T, P, 0, kDecay>(s, n, threads, c);
    }
  } else {
    (void)s, (void)n, (void)threads, (void)c, (void)variant;
  }
}

template <class K, class T, class P, bool kDecay>
void elementwise_run(const Segment* s, std::size_t n, int threads, const ElementwiseCoeffs<T>& c,
                     int variant) {
  // A kTensorNorms kernel makes its decay and update inside the norms' pass.
  if constexpr (!K::kTensorNorms) {
    for_each_range(s, n, threads, [&](const Segment& seg, index_t b, index_t e) {
      elementwise_one_range<K, T, P, kDecay>(variant, seg, b, e, c);
    });
  }
  tensor_norms<K, T, P, kDecay>(s, n, threads, c, variant);
}

// variant: in [0, K::kVariants) (checked by the binding).
template <class K, class T, class P = T>
void elementwise(const Segment* s, std::size_t n, int threads, const ElementwiseCoeffs<T>& c,
                 int variant, bool decay) {
  decay ? elementwise_run<K, T, P, true>(s, n, threads, c, variant)
        : elementwise_run<K, T, P, false>(s, n, threads, c, variant);
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
