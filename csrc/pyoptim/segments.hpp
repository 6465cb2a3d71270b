// The unit of work handed to a kernel: one tensor (parameter, gradient and up to
// three state arrays of the same length).  A call updates a list of segments in
// one parallel region: one segment for the functional API, many for the
// multi-tensor (stateful) API.
#pragma once

#include <cstddef>

#include "adam.hpp"
#include "adam8bit.hpp"
#include "common.hpp"
#include "elementwise_kernels.hpp"
#include "rmsprop.hpp"
#include "sgd.hpp"

namespace pyoptim {

struct Segment {
  void* p;         // parameter, updated in place
  const void* g;   // gradient, read only
  void* s[3];      // optimizer state; which slot is which is fixed per optimizer
  index_t n;       // number of elements
};

// Element counts below which a call stays on the calling thread: starting a
// parallel region costs microseconds, more than a small update takes.
constexpr index_t kParallelMinElements = index_t{1} << 15;
// Thread ranges start at multiples of this many elements (one 64-byte cache line
// of float32), so two threads never write the same cache line of a tensor that
// starts on a line boundary.
constexpr index_t kChunkAlign = 16;

// One function-pointer table per instruction set (see kernels_isa.cpp).  The
// f16/bf16 entries update float16/bfloat16 params with float32 state and
// arithmetic (coefficients in float).
template <class Coeffs, class... Flags>
using KernelFn = void (*)(const Segment*, std::size_t, int, const Coeffs&, Flags...);

// The 8-bit state kernels (adam8bit.hpp): a list of QuantSegments, the block size.
template <class T>
using QuantKernelFn = void (*)(const QuantSegment*, std::size_t, int, const AdamCoeffs<T>&, index_t,
                               bool, bool);

// The element-wise kernels (elementwise.hpp), one entry per line of PYOPTIM_ELEMENTWISE_KERNELS:
// f(segments, count, threads, coefficients, variant in [0, variants), decay).  Slots are
// Segment::s[0 .. slots - 1]; the coefficients' c points to `coeffs` values.
template <class T>
using ElementwiseFn = void (*)(const Segment*, std::size_t, int, const ElementwiseCoeffs<T>&, int,
                               bool);

struct ElementwiseEntry {
  const char* name;  // K::kName
  int slots, coeffs, variants;
  ElementwiseFn<float> f32, f16, bf16;
  ElementwiseFn<double> f64;
};

#define PYOPTIM_ELEMENTWISE_ONE(K) +1
constexpr int kElementwiseCount = 0 PYOPTIM_ELEMENTWISE_KERNELS(PYOPTIM_ELEMENTWISE_ONE);
#undef PYOPTIM_ELEMENTWISE_ONE

struct KernelTable {
  const char* isa;
  KernelFn<SgdCoeffs<float>, SgdMode, bool> sgd_f32, sgd_f16, sgd_bf16;
  KernelFn<SgdCoeffs<double>, SgdMode, bool> sgd_f64;
  KernelFn<RmspropCoeffs<float>, bool, bool, bool> rmsprop_f32, rmsprop_f16, rmsprop_bf16;
  KernelFn<RmspropCoeffs<double>, bool, bool, bool> rmsprop_f64;
  KernelFn<AdamCoeffs<float>, bool, bool> adam_f32, adam_f16, adam_bf16;
  KernelFn<AdamCoeffs<double>, bool, bool> adam_f64;
  QuantKernelFn<float> adam8bit_f32, adam8bit_f16, adam8bit_bf16;
  QuantKernelFn<double> adam8bit_f64;
  ElementwiseEntry elementwise[kElementwiseCount];  // in PYOPTIM_ELEMENTWISE_KERNELS' order
};

}  // namespace pyoptim
