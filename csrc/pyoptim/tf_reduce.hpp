// TensorFlow's CPU tf.reduce_sum over a whole float32/float64 tensor, bit for bit, without
// TensorFlow: for Keras' Lamb norms, sqrt(sum(pow(x, 2))) (lamb.hpp; the TensorFlow op and the
// NumPy core compute them with it).
//
// The order modelled (Eigen as bundled with TensorFlow 2.21, <tf include>/unsupported/Eigen/
// CXX11/src/Tensor/):
//
//  * ReductionOp (tensorflow/core/kernels/reduction_ops_common.h) collapses a full reduction to
//    a 1-D tensor of n elements and runs `out.device(d) = in.reduce(axis0, SumReducer<T>)` on the
//    op's Eigen::ThreadPoolDevice (ReduceEigenImpl, reduction_ops.h).  Being a full reduction,
//    TensorReductionEvaluator::evalSubExprsIfNeededCommon calls
//    FullReducer<Self, SumReducer, ThreadPoolDevice, true>::run (TensorReduction.h).
//
//  * FullReducer::run (multithreaded): cost per coefficient = the TensorMap's
//    TensorOpCost(sizeof(T), 0, 0, vectorized, P) + TensorOpCost(0, 0, functor_traits<SumReducer>
//    ::Cost, vectorized, P), and functor_traits<SumReducer<T>> is Eigen's generic default
//    (Cost = 10; Eigen/src/Core/util/XprHelper.h).  So per coefficient:
//    bytes_loaded = sizeof(T), compute_cycles = 10 / P.
//    TensorCostModel<ThreadPoolDevice>::numThreads (TensorCostModel.h):
//      cost    = n * (11/64 * sizeof(T) + 11/64 * 0 + 1 * 10/P)      (double arithmetic)
//      threads = (cost - 100000) / 100000 + 0.9
//      t       = min(max_threads, max(1, int(min(threads, INT_MAX))))
//    max_threads = device.numThreads() = the intra-op pool size the op sees.
//    float32 (P=8): 1.9375 cycles/coeff, t >= 2 from n >= 108388; float64 (P=4): 3.875, from
//    n >= 54194.
//    t == 1: one tree over [0, n).  Else blocksize b = n / t, numblocks = n / b (== t here, as
//    n >= t*t), shard i = tree over [i*b, i*b + b) (run on the pool), final shard = tree over
//    [numblocks*b, n) computed by the calling thread, or +0 when that range is empty; result =
//    ((final + shard0) + shard1) + ... + shard_{numblocks-1}.
//
//  * The tree, InnerMostDimReducer<Self, Op, true, true> (TensorReduction.h): over [first,
//    first+m), if m > P * 1024: split = P * ceil((first + ceil(m/2)) / P) (absolute packet
//    boundary), left = min(split - first, m); acc = 0 + tree(first, left); if left < m:
//    acc = acc + tree(split, m - left).  Otherwise a leaf.
//
//  * The leaf, InnerMostDimReducer<Self, Op, true, false>: packets are P consecutive elements
//    from `first` (unaligned loads, so relative to first).  If m >= 4P: four packet accumulators
//    (from 0) take packets 4k, 4k+1, 4k+2, 4k+3 of the first floor(m/4P)*4P elements, then
//    paccum0 = ((paccum0 + paccum1) + paccum2) + paccum3; the remaining whole packets are added
//    to paccum0; the leftover elements (< P) go to a scalar accumulator from 0, in order; result
//    = scalar + predux(paccum0), predux adding halves (AVX/Reductions.h, SSE/Reductions.h:
//    lo128 + hi128, then [a0+a2, a1+a3], then (a0+a2) + (a1+a3)).
//
// P = 32 bytes / sizeof(T) (TensorFlow's x86-64 wheels are compiled for AVX: 8 float32, 4
// float64, even on AVX-512 CPUs).
//
// Every addition here is a plain IEEE addition in T on arrays of lanes, so the result does not
// depend on whether or how the compiler vectorises it — PROVIDED no fused multiply-add is
// formed in tf_sum_of_squares (compile with -ffp-contract=off; GCC's default for GNU C++ is
// -ffp-contract=fast, which with -mfma would fuse x*x + acc) and no -ffast-math /
// -fassociative-math.  Clang honours the pragma below; GCC ignores it.
#pragma once

#include <climits>
#include <cstdint>
#include <cstddef>

#include "common.hpp"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

// The packet of TensorFlow's x86-64 wheels (AVX, 32 bytes), on every platform: pyoptim's
// kernels give the same bits everywhere, and TensorFlow's own order is only modelled (and
// checked, tests/test_tf_emulation.py) for its x86-64 build; an aarch64 TensorFlow (NEON, 16
// bytes) would differ, which pyoptim.keras' first-use check detects.
#ifndef PYOPTIM_TF_PACKET_BYTES
#define PYOPTIM_TF_PACKET_BYTES 32
#endif

namespace pyoptim {
inline namespace PYOPTIM_ISA {  // see common.hpp
namespace tf_reduce {

template <class T>
constexpr int64_t kPacket = PYOPTIM_TF_PACKET_BYTES / static_cast<int64_t>(sizeof(T));
constexpr int64_t kLeafPackets = 1024;  // Eigen LeafSize<float/double>()

// TensorCostModel<ThreadPoolDevice>::numThreads for FullReducer<SumReducer<T>> over n elements.
template <class T>
inline int full_reduce_threads(int64_t n, int max_threads) {
  const double packet = static_cast<double>(kPacket<T>);
  const double bytes_loaded = static_cast<double>(sizeof(T)) + 0.0;  // TensorMap + reducer
  const double bytes_stored = 0.0 + 0.0;
  const double compute_cycles = 0.0 / packet + 10.0 / packet;  // TensorMap 0, SumReducer 10
  const double k_load = 1.0 / 64 * 11;
  const double k_store = 1.0 / 64 * 11;
  const double per_coeff = k_load * bytes_loaded + k_store * bytes_stored + 1.0 * compute_cycles;
  const double cost = static_cast<double>(n) * per_coeff;
  double threads = (cost - 100000) / 100000 + 0.9;
  if (threads > static_cast<double>(INT_MAX)) threads = static_cast<double>(INT_MAX);
  int t = static_cast<int>(threads);
  if (t < 1) t = 1;
  return max_threads < t ? max_threads : t;
}

// How FullReducer splits [0, n): shards [i*block, (i+1)*block) for i < num_blocks (run on the
// pool), then the final shard [tail_begin, n) (the calling thread; +0 when empty).  With
// num_blocks == 0 the whole range is one tree (tail_begin == 0).
struct Plan {
  int64_t num_blocks;
  int64_t block;
  int64_t tail_begin;
};

template <class T>
inline Plan plan(int64_t n, int intra_op_threads) {
  if (n <= 0) return Plan{0, 0, 0};
  const int t = full_reduce_threads<T>(n, intra_op_threads < 1 ? 1 : intra_op_threads);
  if (t == 1) return Plan{0, 0, 0};
  const int64_t block = n / t;
  const int64_t num_blocks = block > 0 ? n / block : 0;
  return Plan{num_blocks, block, num_blocks * block};
}

namespace detail {

// InnerMostDimReducer<Self, SumReducer, /*vectorized*/true, /*tree*/false> over elements [first,
// first+m) of the tensor whose element i is value(i).
//
// value(i) may store (Lamb's update of m and v, its weight decay of p: element i's own memory
// only), so it is computed right where it is added: one pass over the leaf, no buffer.  The
// four packets' lanes are one loop over the lanes (lane l of each accumulator still adds its
// values in Eigen's order), which vectorises with such stores too; a per-packet loop of
// value(i) with stores did not (2.4x slower, 2026-12-04).
template <class T, class F>
T leaf(const F& value_in, int64_t first, int64_t m) {
  constexpr int64_t P = kPacket<T>;
  const F value = value_in;  // a local copy: its captures stay in registers across the stores
  T acc0[P];
  for (int64_t l = 0; l < P; ++l) acc0[l] = T(0);
  int64_t start = 0;
  if (m >= 4 * P) {
    const int64_t v4 = (m / (4 * P)) * (4 * P);
    T acc1[P], acc2[P], acc3[P];
    for (int64_t l = 0; l < P; ++l) acc1[l] = acc2[l] = acc3[l] = T(0);
    for (int64_t j = 0; j < v4; j += 4 * P) {
      PYOPTIM_SIMD_LOOP
      for (int64_t l = 0; l < P; ++l) {
        acc0[l] = acc0[l] + value(first + j + l);
        acc1[l] = acc1[l] + value(first + j + P + l);
        acc2[l] = acc2[l] + value(first + j + 2 * P + l);
        acc3[l] = acc3[l] + value(first + j + 3 * P + l);
      }
    }
    for (int64_t l = 0; l < P; ++l) acc0[l] = acc0[l] + acc1[l];
    for (int64_t l = 0; l < P; ++l) acc0[l] = acc0[l] + acc2[l];
    for (int64_t l = 0; l < P; ++l) acc0[l] = acc0[l] + acc3[l];
    start = v4;
  }
  if (start <= m - P) {
    const int64_t vs = (m / P) * P;
    for (int64_t j = start; j < vs; j += P) {
      PYOPTIM_SIMD_LOOP
      for (int64_t l = 0; l < P; ++l) acc0[l] = acc0[l] + value(first + j + l);
    }
    start = vs;
  }
  T s = T(0);
  for (int64_t j = start; j < m; ++j) s = s + value(first + j);
  // predux: add the upper half of the lanes to the lower half until one lane is left.
  for (int64_t h = P / 2; h >= 1; h /= 2)
    for (int64_t l = 0; l < h; ++l) acc0[l] = acc0[l] + acc0[l + h];
  return s + acc0[0];
}

// InnerMostDimReducer<Self, SumReducer, true, /*tree*/true> over [first, first+m) (absolute
// indices: the split is aligned to an absolute packet boundary).
template <class T, class F>
T tree(const F& value, int64_t first, int64_t m) {
  constexpr int64_t P = kPacket<T>;
  if (m > P * kLeafPackets) {
    const int64_t half = (m + 1) / 2;
    const int64_t split = P * ((first + half + P - 1) / P);
    const int64_t left = (split - first) < m ? (split - first) : m;
    T acc = T(0) + tree<T>(value, first, left);
    if (left < m) acc = acc + tree<T>(value, split, m - left);
    return acc;
  }
  return leaf<T>(value, first, m);
}

// The same tree over values that fill(first, m, out) writes, out[k] = value(first + k), for
// m <= P * 1024 elements at a time: a leaf's values are made in a loop of their own before the
// leaf's additions.  For values that vectorise only in such a loop (TensorFlow's eager Pow,
// whose tensor's last n % P elements take another path); a second pass over the leaf, so
// slower than tree() for values that are cheap to make (Lamb's x * x: 0.29 against 0.08 ns per
// element on one thread, out of cache).
template <class T, class Fill>
T tree_filled(const Fill& fill, int64_t first, int64_t m, T* buffer) {
  constexpr int64_t P = kPacket<T>;
  if (m > P * kLeafPackets) {
    const int64_t half = (m + 1) / 2;
    const int64_t split = P * ((first + half + P - 1) / P);
    const int64_t left = (split - first) < m ? (split - first) : m;
    T acc = T(0) + tree_filled<T>(fill, first, left, buffer);
    if (left < m) acc = acc + tree_filled<T>(fill, split, m - left, buffer);
    return acc;
  }
  fill(first, m, buffer);
  return leaf<T>([buffer, first](int64_t i) { return buffer[i - first]; }, first, m);
}

template <class T>
struct Plain {
  const T* x;
  T operator()(int64_t i) const { return x[i]; }
};

template <class T>
struct Squared {
  const T* x;
  T operator()(int64_t i) const {
    const T v = x[i];
    return v * v;
  }
};

}  // namespace detail

// One shard's (or any range's) partial sum, exactly as Eigen computes InnerMostDimReducer::reduce
// (self, first, count) over the tensor whose element i is value(i); first/count absolute.
template <class T, class F>
T range_sum(const F& value, int64_t first, int64_t count) {
  return detail::tree<T>(value, first, count);
}
// range_sum of the values fill(first, m, out) writes (see detail::tree_filled); buffer holds
// kLeafBuffer<T> elements.
template <class T>
constexpr int64_t kLeafBuffer = kPacket<T> * kLeafPackets;
template <class T, class Fill>
T range_sum_filled(const Fill& fill, int64_t first, int64_t count, T* buffer) {
  return detail::tree_filled<T>(fill, first, count, buffer);
}
template <class T>
T range_sum(const T* x, int64_t first, int64_t count) {
  return detail::tree<T>(detail::Plain<T>{x}, first, count);
}
template <class T>
T range_sum_of_squares(const T* x, int64_t first, int64_t count) {
  return detail::tree<T>(detail::Squared<T>{x}, first, count);
}

// Combines FullReducer's partial sums: ((tail + shard[0]) + shard[1]) + ...
template <class T>
T combine(T tail, const T* shards, int64_t num_blocks) {
  for (int64_t i = 0; i < num_blocks; ++i) tail = tail + shards[i];
  return tail;
}

// The full sum of value(0 .. n-1) with the shards computed by `parallel_for(num_blocks, body)`,
// which must call body(i) exactly once for each i in [0, num_blocks) (any thread, any order)
// and return when all are done; e.g. a tensorflow::thread::ThreadPool's ParallelFor or a
// BlockingCounter + Schedule.  The order of the additions does not depend on the scheduling.
template <class T, class F, class ParallelFor>
T sum_with(const F& value, int64_t n, int intra_op_threads, ParallelFor&& parallel_for) {
  const Plan p = plan<T>(n, intra_op_threads);
  if (n <= 0) return T(0);
  if (p.num_blocks == 0) return detail::tree<T>(value, 0, n);
  T shards_small[64];
  T* shards = p.num_blocks <= 64 ? shards_small : new T[p.num_blocks];
  parallel_for(p.num_blocks, [&](int64_t i) {
    shards[i] = detail::tree<T>(value, i * p.block, p.block);
  });
  const T tail = p.tail_begin < n ? detail::tree<T>(value, p.tail_begin, n - p.tail_begin)
                                  : T(0);
  const T r = combine(tail, shards, p.num_blocks);
  if (shards != shards_small) delete[] shards;
  return r;
}

struct Serial {
  template <class F>
  void operator()(int64_t count, F&& body) const {
    for (int64_t i = 0; i < count; ++i) body(i);
  }
};

}  // namespace tf_reduce

// tf.reduce_sum(x) of n contiguous elements on a CPU device whose Eigen ThreadPoolDevice has
// intra_op_threads threads (in an op: ctx->eigen_device<Eigen::ThreadPoolDevice>().numThreads()).
template <class T>
T tf_sum(const T* x, int64_t n, int intra_op_threads) {
  return tf_reduce::sum_with<T>(tf_reduce::detail::Plain<T>{x}, n, intra_op_threads,
                                tf_reduce::Serial{});
}

// tf.reduce_sum(tf.square(x)): each element squared as x * x (as Grappler's rewrite of
// Pow(x, 2) computes it inside tf.function; executing eagerly Pow(x, 2) is Eigen's pow, see
// tf_pow.hpp), then summed in the order above.
template <class T>
T tf_sum_of_squares(const T* x, int64_t n, int intra_op_threads) {
  return tf_reduce::sum_with<T>(tf_reduce::detail::Squared<T>{x}, n, intra_op_threads,
                                tf_reduce::Serial{});
}

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
