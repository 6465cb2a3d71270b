// Shared definitions for the optimizer kernels.
//
// The kernel headers are compiled several times, once per instruction set (see
// CMakeLists.txt and csrc/kernels_isa.cpp).  Every definition lives in an inline
// namespace named after that instruction set, so the copies never collide at link
// time (an AVX2 template instantiation must never be picked for a baseline call).
#pragma once

#include <cstdint>

#ifndef PYOPTIM_ISA
#define PYOPTIM_ISA generic
#endif

#if defined(__GNUC__) || defined(__clang__)
#define PYOPTIM_RESTRICT __restrict__
#else
#define PYOPTIM_RESTRICT
#endif

// Rules for every kernel loop, so that results equal Keras' to the bit:
//  * the arithmetic is written in the order Keras writes it (one rounding per
//    operation, no reassociation);
//  * the translation units are compiled with -ffp-contract=off (no FMA),
//    -fno-math-errno (sqrt becomes an instruction and the loop vectorises) and
//    -fno-trapping-math (comparisons may be if-converted), never with the
//    fast-math options that change values;
//  * one loop serves the SIMD body and the scalar tail, so an element's result
//    never depends on the length of the array, its alignment or the thread that
//    runs it.
#define PYOPTIM_SIMD_LOOP _Pragma("omp simd")

// For a function called per element that is too long for the compiler's inlining heuristics
// (TensorFlow's Pow, tf_pow.hpp): inlined into the loop it vectorises; called, it would not.
#if defined(__GNUC__) || defined(__clang__)
#define PYOPTIM_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define PYOPTIM_ALWAYS_INLINE inline
#endif

namespace pyoptim {
using index_t = std::int64_t;  // 64-bit indexing throughout
}  // namespace pyoptim
