// TensorFlow's CPU Pow (tf.pow(x, y), y a scalar of x's dtype, as keras.ops.power passes it),
// reproduced bit for bit without TensorFlow or Eigen.
//
// What TensorFlow computes (TF 2.21 CPU wheel, built with -mavx and without FMA; its Eigen):
// the Pow kernel evaluates `x.unaryExpr(scalar_right<scalar_pow_op>(y))` with Eigen's
// TensorExecutor on the ThreadPoolDevice.  Every shard starts at a multiple of the packet size
// P (EvalRange::alignBlockSize; P = 8 for float, Packet8f, and 4 for double, Packet4d), so,
// whatever the thread count or sharding, elements [0, n - n % P) of the flat tensor go through
// Eigen's packet generic_pow (Eigen/src/Core/arch/Default/GenericPacketMathFunctions.h), and
// the last n % P elements through the scalar path numext::pow = std::pow (glibc powf/pow).
// The packet path is ported here lane by lane (tf_pow_packet_lane): each of its packet ops is
// a per-lane IEEE operation or bit manipulation, pmadd is mul-then-add (no FMA), twoprod is
// Dekker's product with Veltkamp splitting (the non-FMA branch), and the two packet-wide
// branches (pldexp vs pldexp_fast, in generic_pow_impl and pexp) give the same value in every
// lane whichever way they go, so a lane does not depend on its neighbours.
//
// Requirements (all checked in the research, 0 differing bits over ~21M elements):
//   * no FMA contraction: compile with -ffp-contract=off (pyoptim's kernel flags have it), no
//     -ffast-math / -funsafe-math-optimizations / -freciprocal-math.  Any -m flags are fine
//     (-mavx2, -mavx512f...): only the contraction matters, not the instruction set.
//   * TensorFlow runs its kernels with MXCSR FTZ and DAZ set (tsl::port::ScopedFlushDenormal).
//     Subnormal inputs then read as zero in comparisons and arithmetic (so pow(subnormal, y) is
//     +0 on the packet path) and subnormal results are flushed.  Inside a TensorFlow op this
//     state is already set; elsewhere (the NumPy core) wrap the loop in TfDenormalScope.
//   * the tail uses the process's libm (std::pow), exactly like TensorFlow does; it must be the
//     same glibc TensorFlow loads (it is: the same process / machine).
//   * n is the element count of the whole tensor Keras passes to ops.power (the full variable
//     for Ftrl: new_accum and accum are dense), not a shard's.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "common.hpp"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <xmmintrin.h>
#define PYOPTIM_TF_POW_X86 1
#endif

namespace pyoptim {
inline namespace PYOPTIM_ISA {  // see common.hpp
namespace tf_pow_detail {

template <class T>
struct Bits;
template <>
struct Bits<float> {
  using U = uint32_t;
  using I = int32_t;
  static constexpr int kMant = 23;
  static constexpr int kPacket = 8;  // Packet8f (AVX)
};
template <>
struct Bits<double> {
  using U = uint64_t;
  using I = int64_t;
  static constexpr int kMant = 52;
  static constexpr int kPacket = 4;  // Packet4d (AVX)
};

template <class T>
PYOPTIM_ALWAYS_INLINE typename Bits<T>::U to_bits(T x) {
  typename Bits<T>::U u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
template <class T, class U>
PYOPTIM_ALWAYS_INLINE T from_bits(U u) {
  T x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}
template <class T>
PYOPTIM_ALWAYS_INLINE T pabs(T x) {  // bitwise, like Eigen's pabs (and)
  using U = typename Bits<T>::U;
  return from_bits<T>(to_bits(x) & ~(U(1) << (sizeof(T) * 8 - 1)));
}
template <class T>
PYOPTIM_ALWAYS_INLINE T pnegate(T x) {  // xor of the sign bit
  using U = typename Bits<T>::U;
  return from_bits<T>(to_bits(x) ^ (U(1) << (sizeof(T) * 8 - 1)));
}
template <class T>
PYOPTIM_ALWAYS_INLINE bool psignbit(T x) {
  return (to_bits(x) >> (sizeof(T) * 8 - 1)) != 0;
}
// pmin(a, b) = _mm256_min_ps(b, a); pmax(a, b) = _mm256_max_ps(b, a): the second operand of
// the instruction (a) when either is NaN or both are zeros.
template <class T>
PYOPTIM_ALWAYS_INLINE T pmin(T a, T b) {
  return b < a ? b : a;
}
template <class T>
PYOPTIM_ALWAYS_INLINE T pmax(T a, T b) {
  return b > a ? b : a;
}
template <class T>
PYOPTIM_ALWAYS_INLINE T pmadd(T a, T b, T c) {  // no FMA: two roundings
  const T ab = a * b;
  return ab + c;
}
// pround: trunc(a + copysign(0.5 - ulp/2, a)) (_mm256_round_ps(.., _MM_FROUND_TO_ZERO)).
template <class T>
PYOPTIM_ALWAYS_INLINE T pround(T a) {
  using U = typename Bits<T>::U;
  const U sign = to_bits(a) & (U(1) << (sizeof(T) * 8 - 1));
  const U prev_half = std::is_same<T, float>::value ? U(0x3EFFFFFFu) : U(0x3FDFFFFFFFFFFFFFull);
  const T h = from_bits<T>(sign | prev_half);
  return std::trunc(h + a);
}
// cvttps2dq / cvtpd2dq on integral values already clamped to int32's range: INT_MIN ("integer
// indefinite") for NaN.  (Every branch here is a select, so that loops over it vectorise.)
template <class T>
PYOPTIM_ALWAYS_INLINE int32_t cvt_i32(T x) {
  const int32_t v = static_cast<int32_t>(x == x ? x : T(0));
  return x == x ? v : INT32_MIN;
}

// ---- double-word arithmetic (Eigen's non-FMA branch)
template <class T>
PYOPTIM_ALWAYS_INLINE void veltkamp(T x, T& hi, T& lo) {
  constexpr int shift = (std::numeric_limits<T>::digits + 1) / 2;
  const T scale = T(uint64_t(1) << shift) + T(1);
  const T gamma = scale * x;
  const T rho = x - gamma;
  hi = rho + gamma;
  lo = x - hi;
}
template <class T>
PYOPTIM_ALWAYS_INLINE void twoprod(T x, T y, T& p_hi, T& p_lo) {
  T xh, xl, yh, yl;
  veltkamp(x, xh, xl);
  veltkamp(y, yh, yl);
  p_hi = x * y;
  p_lo = pmadd(xh, yh, pnegate(p_hi));
  p_lo = pmadd(xh, yl, p_lo);
  p_lo = pmadd(xl, yh, p_lo);
  p_lo = pmadd(xl, yl, p_lo);
}
template <class T>
PYOPTIM_ALWAYS_INLINE void fast_twosum(T x, T y, T& s_hi, T& s_lo) {
  s_hi = x + y;
  const T t = s_hi - x;
  s_lo = y - t;
}
template <class T>
PYOPTIM_ALWAYS_INLINE void fast_twosum(T x_hi, T x_lo, T y_hi, T y_lo, T& s_hi, T& s_lo) {
  T r_hi, r_lo;
  fast_twosum(x_hi, y_hi, r_hi, r_lo);
  const T s = (y_lo + r_lo) + x_lo;
  fast_twosum(r_hi, s, s_hi, s_lo);
}
template <class T>
PYOPTIM_ALWAYS_INLINE void fast_twosum(T x, T y_hi, T y_lo, T& s_hi, T& s_lo) {
  T r_hi, r_lo;
  fast_twosum(x, y_hi, r_hi, r_lo);
  const T s = y_lo + r_lo;
  fast_twosum(r_hi, s, s_hi, s_lo);
}
template <class T>
PYOPTIM_ALWAYS_INLINE void twoprod(T x_hi, T x_lo, T y, T& p_hi, T& p_lo) {
  T c_hi, c_lo1;
  twoprod(x_hi, y, c_hi, c_lo1);
  const T c_lo2 = x_lo * y;
  T t_hi, t_lo1;
  fast_twosum(c_hi, c_lo2, t_hi, t_lo1);
  const T t_lo2 = t_lo1 + c_lo1;
  fast_twosum(t_hi, t_lo2, p_hi, p_lo);
}
template <class T>
PYOPTIM_ALWAYS_INLINE void twoprod(T x_hi, T x_lo, T y_hi, T y_lo, T& p_hi, T& p_lo) {
  T hh, hl, lh, ll;
  twoprod(x_hi, x_lo, y_hi, hh, hl);
  twoprod(x_hi, x_lo, y_lo, lh, ll);
  fast_twosum(hh, hl, lh, ll, p_hi, p_lo);
}
template <class T>
PYOPTIM_ALWAYS_INLINE void doubleword_div_fp(T x_hi, T x_lo, T y, T& z_hi, T& z_lo) {
  const T t_hi = x_hi / y;
  T pi_hi, pi_lo;
  twoprod(t_hi, y, pi_hi, pi_lo);
  const T delta_hi = x_hi - pi_hi;
  const T delta_t = delta_hi - pi_lo;
  const T delta = delta_t + x_lo;
  const T t_lo = delta / y;
  fast_twosum(t_hi, t_lo, z_hi, z_lo);
}

// ---- accurate_log2
PYOPTIM_ALWAYS_INLINE void accurate_log2(float z, float& hi, float& lo) {
  constexpr double kC0 = 1.442695041742110273474963832995854318141937255859375e+00;
  constexpr float kC0_hi = static_cast<float>(kC0);
  constexpr float kC0_lo = static_cast<float>(kC0 - static_cast<double>(kC0_hi));
  constexpr double kC1 = -7.2134751588268664068692714863573201000690460205078125e-01;
  constexpr float kC1_hi = static_cast<float>(kC1);
  constexpr float kC1_lo = static_cast<float>(kC1 - static_cast<double>(kC1_hi));
  constexpr float c[] = {9.7010828554630279541015625e-02f,  -1.6896486282348632812500000e-01f,
                         1.7200836539268493652343750e-01f,  -1.7892272770404815673828125e-01f,
                         2.0505344867706298828125000e-01f,  -2.4046677350997924804687500e-01f,
                         2.8857553005218505859375000e-01f,  -3.6067414283752441406250000e-01f,
                         4.8089790344238281250000000e-01f};
  const float x = z - 1.0f;
  float p = c[0];
  for (int k = 1; k <= 8; ++k) p = pmadd(p, x, c[k]);
  float p_hi, p_lo;
  twoprod(x, p, p_hi, p_lo);
  fast_twosum(kC1_hi, kC1_lo, p_hi, p_lo, p_hi, p_lo);
  twoprod(p_hi, p_lo, x, p_hi, p_lo);
  fast_twosum(kC0_hi, kC0_lo, p_hi, p_lo, p_hi, p_lo);
  twoprod(p_hi, p_lo, x, hi, lo);
}
PYOPTIM_ALWAYS_INLINE void accurate_log2(double x, double& log2_x_hi, double& log2_x_lo) {
  const double q12 = 2.87074255468000586e-9, q10 = 2.38957980901884082e-8,
               q8 = 2.31032094540014656e-7, q6 = 2.27279857398537278e-6,
               q4 = 2.31271023278625638e-5, q2 = 2.47556738444535513e-4,
               q0 = 2.88543873228900172e-3;
  const double C_hi = 0.0400377511598501157, C_lo = -4.77726582251425391e-19, one = 1.0;
  const double c2_hi = 2.88539008177792677, c2_lo = 4.07660016854549667e-17;
  double t_hi, t_lo;
  twoprod(c2_hi, c2_lo, x - one, t_hi, t_lo);
  double r_hi, r_lo;
  doubleword_div_fp(t_hi, t_lo, x + one, r_hi, r_lo);
  double r2_hi, r2_lo;
  twoprod(r_hi, r_lo, r_hi, r_lo, r2_hi, r2_lo);
  double r4_hi, r4_lo;
  twoprod(r2_hi, r2_lo, r2_hi, r2_lo, r4_hi, r4_lo);
  double q_even = pmadd(q12, r4_hi, q8);
  double q_odd = pmadd(q10, r4_hi, q6);
  q_even = pmadd(q_even, r4_hi, q4);
  q_odd = pmadd(q_odd, r4_hi, q2);
  q_even = pmadd(q_even, r4_hi, q0);
  const double q = pmadd(q_odd, r2_hi, q_even);
  double p_hi, p_lo;
  twoprod(r2_hi, r2_lo, q, p_hi, p_lo);
  double p1_hi, p1_lo;
  fast_twosum(C_hi, C_lo, p_hi, p_lo, p1_hi, p1_lo);
  double p2_hi, p2_lo;
  twoprod(r2_hi, r2_lo, p1_hi, p1_lo, p2_hi, p2_lo);
  double p3_hi, p3_lo;
  fast_twosum(one, p2_hi, p2_lo, p3_hi, p3_lo);
  twoprod(p3_hi, p3_lo, r_hi, r_lo, log2_x_hi, log2_x_lo);
}

// ---- frexp / ldexp
template <class T>
PYOPTIM_ALWAYS_INLINE T pfrexp(T a, T& exponent) {  // pfrexp_generic
  using U = typename Bits<T>::U;
  constexpr int M = Bits<T>::kMant, E = int(sizeof(T) * 8) - M - 1;
  const U sign_mantissa_mask = ~(((U(1) << E) - U(1)) << M);
  const T normal_min = std::numeric_limits<T>::min();
  const bool is_denormal = pabs(a) < normal_min;
  const T factor = T(U(1) << (M + 1));
  const T normalized = is_denormal ? a * factor : a;
  const T offset0 = -T((U(1) << (E - 1)) - U(2));
  const T offset = is_denormal ? offset0 + -T(M + 1) : offset0;
  const T biased = T(static_cast<int32_t>(to_bits(pabs(normalized)) >> M));
  const T non_finite = T((U(1) << E) - U(1));
  const T half_bits = T(0.5);
  const T m0 = from_bits<T>((to_bits(normalized) & sign_mantissa_mask) | to_bits(half_bits));
  // a zero or non-finite a: a itself, exponent 0
  const T m = a == T(0) ? a : (biased == non_finite ? a : m0);
  exponent = a == T(0) ? T(0) : (biased == non_finite ? T(0) : biased + offset);
  return m;
}
// 2^k from a biased exponent field (the shift of Eigen's integer packet; wraps like it).
template <class T>
PYOPTIM_ALWAYS_INLINE T pow2_bits(uint32_t biased) {
  using U = typename Bits<T>::U;
  return from_bits<T>(static_cast<U>(biased) << Bits<T>::kMant);
}
PYOPTIM_ALWAYS_INLINE float pldexp(float a, float exponent) {  // pldexp_generic<Packet8f>
  const float max_e = 278.0f;
  const int32_t e = cvt_i32(pmin(pmax(exponent, pnegate(max_e)), max_e));
  int32_t b = e >> 2;
  float c = pow2_bits<float>(uint32_t(b + 127));
  float out = ((a * c) * c) * c;
  b = e - 3 * b;
  c = pow2_bits<float>(uint32_t(b + 127));
  return out * c;
}
PYOPTIM_ALWAYS_INLINE double pldexp(double a, double exponent) {  // pldexp<Packet4d> (AVX)
  const double max_e = 2099.0;
  const int32_t e = cvt_i32(pmin(pmax(exponent, pnegate(max_e)), max_e));
  int32_t b = e >> 2;
  double c = pow2_bits<double>(uint32_t(b + 1023));
  double out = ((a * c) * c) * c;
  b = ((e - b) - b) - b;
  c = pow2_bits<double>(uint32_t(b + 1023));
  return out * c;
}
PYOPTIM_ALWAYS_INLINE float pldexp_fast(float a, float exponent) {  // generic pldexp_fast
  const int32_t e = cvt_i32(pmin(pmax(exponent + 127.0f, 0.0f), 255.0f));
  return a * pow2_bits<float>(uint32_t(e));
}
PYOPTIM_ALWAYS_INLINE double pldexp_fast(double a, double exponent) {  // pldexp_fast<Packet4d> (AVX)
  const int32_t e = cvt_i32(pmin(pmax(exponent, -1023.0), 1024.0));
  return a * pow2_bits<double>(uint32_t(e + 1023));
}

// ---- exp
PYOPTIM_ALWAYS_INLINE float pexp(float _x) {  // pexp_float
  const float cst_exp_hi = 88.723f, cst_exp_lo = -104.f, thresh = 87.0f;
  const float LOG2EF = 1.44269504088896341f;
  const float p2 = 0.49999988079071044921875f, p3 = 0.16666518151760101318359375f,
              p4 = 4.166965186595916748046875e-2f, p5 = 8.36894474923610687255859375e-3f,
              p6 = 1.37449637986719608306884765625e-3f;
  const bool zero_mask = _x < cst_exp_lo;
  const float x = pmin(_x, cst_exp_hi);
  const float m = std::floor(pmadd(x, LOG2EF, 0.5f));
  const float C1 = -0.693359375f, C2 = 2.12194440e-4f;
  float r = pmadd(m, C1, x);
  r = pmadd(m, C2, r);
  const float r2 = r * r;
  float p_even = pmadd(r2, p6, p4);
  const float p_odd = pmadd(r2, p5, p3);
  p_even = pmadd(r2, p_even, p2);
  const float p_low = r + 1.0f;
  float y = pmadd(r, p_odd, p_even);
  y = pmadd(r2, y, p_low);
  // Eigen takes pldexp_fast for a whole packet when no lane exceeds thresh; per lane the two
  // give the same value wherever pldexp_fast is safe, so the choice is made per lane here.
  const float fast = pmax(pldexp_fast(y, m), _x);
  const float slow = zero_mask ? 0.0f : pmax(pldexp(y, m), _x);
  return thresh < pabs(x) ? slow : fast;
}
PYOPTIM_ALWAYS_INLINE double pexp(double _x) {  // pexp_double
  const double exp_hi = 709.784, exp_lo = -745.519, thresh = 708.0;
  const double LOG2EF = 1.4426950408889634073599;
  const double p0 = 1.26177193074810590878e-4, p1 = 3.02994407707441961300e-2,
               p2 = 9.99999999999999999910e-1;
  const double q0 = 3.00198505138664455042e-6, q1 = 2.52448340349684104192e-3,
               q2 = 2.27265548208155028766e-1, q3 = 2.00000000000000000009e0;
  const double C1 = 0.693145751953125, C2 = 1.42860682030941723212e-6;
  const bool zero_mask = _x < exp_lo;
  double x = pmin(_x, exp_hi);
  double fx = pmadd(LOG2EF, x, 0.5);
  fx = std::floor(fx);
  const double tmp = fx * C1;
  const double z = fx * C2;
  x = x - tmp;
  x = x - z;
  const double x2 = x * x;
  double px = p0;
  px = pmadd(px, x2, p1);
  px = pmadd(px, x2, p2);
  px = px * x;
  double qx = q0;
  qx = pmadd(qx, x2, q1);
  qx = pmadd(qx, x2, q2);
  qx = pmadd(qx, x2, q3);
  x = px / (qx - px);
  x = pmadd(2.0, x, 1.0);
  const double fast = pmax(pldexp_fast(x, fx), _x);
  const double slow = zero_mask ? 0.0 : pmax(pldexp(x, fx), _x);
  return thresh < pabs(_x) ? slow : fast;
}
template <class T>
PYOPTIM_ALWAYS_INLINE T generic_exp2(T _x) {
  constexpr int max_exponent = std::numeric_limits<T>::max_exponent;
  constexpr int digits = std::numeric_limits<T>::digits;
  constexpr T max_cap = T(max_exponent + 1);
  constexpr T min_cap = -T(max_exponent + digits - 1);
  const T x = pmax(pmin(_x, max_cap), min_cap);
  T p_hi, p_lo;
  twoprod(static_cast<T>(0.693147180559945309417232121458176568075500134360255254120680009493393621L),
          x, p_hi, p_lo);
  const T exp2_hi = pexp(p_hi);
  const T exp2_lo = T(1) + p_lo;
  return exp2_hi * exp2_lo;
}

template <class T>
PYOPTIM_ALWAYS_INLINE T generic_pow_impl(T x, T y) {
  T e_x;
  T m_x = pfrexp(x, e_x);
  constexpr T sqrt_half = T(0.70710678118654752440);
  const bool scale = m_x < sqrt_half;
  m_x = scale ? T(2) * m_x : m_x;
  e_x = scale ? e_x - T(1) : e_x;
  T rx_hi, rx_lo;
  accurate_log2(m_x, rx_hi, rx_lo);
  T f1_hi, f1_lo, f2_hi, f2_lo;
  twoprod(e_x, y, f1_hi, f1_lo);
  twoprod(rx_hi, rx_lo, y, f2_hi, f2_lo);
  T f_hi, f_lo;
  fast_twosum(f1_hi, f1_lo, f2_hi, f2_lo, f_hi, f_lo);
  T n_z = pround(f_hi);
  T r_z = f_hi - n_z;
  r_z = r_z + f_lo;
  const T n_r = pround(r_z);
  r_z = r_z - n_r;
  n_z = n_z + n_r;
  const T e_r = generic_exp2(r_z);
  constexpr T thresh = T(std::numeric_limits<T>::max_exponent - 2);
  // Eigen decides per packet; both give the same value in a lane where pldexp_fast is safe.
  return thresh < pabs(n_z) ? pldexp(e_r, n_z) : pldexp_fast(e_r, n_z);
}

}  // namespace tf_pow_detail

// What Eigen's packet generic_pow decides from the exponent y alone, computed once per y: a loop
// over the elements then has only selects on each element's own conditions (GCC does not
// vectorise a select between constants on a condition of y).
template <class T>
struct TfPowExponent {
  using U = typename tf_pow_detail::Bits<T>::U;
  T y;
  T nan_below;   // x < nan_below: NaN (y not an integer: 0; else -inf, which no x is below)
  T zero_value;  // x == 0: y < 0 ? inf : 0
  U odd_sign;    // x with its sign bit set: the result's sign flipped when y is an odd integer
  T inf_gt_one, inf_le_one;  // |y| huge: |x| > 1 ? inf_gt_one : inf_le_one (x == -1: 1)
  T pos_inf_value, neg_inf_value;  // x = +inf, -inf

  explicit TfPowExponent(T y_) : y(y_) {
    using namespace tf_pow_detail;
    const T inf = std::numeric_limits<T>::infinity(), zero = T(0);
    const bool y_is_negative = y < zero;
    const bool y_is_int = (std::floor(y) == y) && !(pabs(y) == inf);
    const T y_div_2 = y * T(0.5);
    const bool y_is_odd_int = y_is_int && !(pround(y_div_2) == y_div_2);
    nan_below = y_is_int ? -inf : zero;
    zero_value = y_is_negative ? inf : zero;
    odd_sign = y_is_odd_int ? U(U(1) << (sizeof(T) * 8 - 1)) : U(0);
    // (y < 0 and x == 0) or ((y < 0) != (|x| > 1)) gives inf: x == 0 falls in the second case
    inf_gt_one = y_is_negative ? zero : inf;
    inf_le_one = y_is_negative ? inf : zero;
    pos_inf_value = y_is_negative ? zero : inf;
    neg_inf_value = y_is_odd_int ? pnegate(pos_inf_value) : pos_inf_value;
  }
};

// One lane of Eigen's packet generic_pow(x, y) as TensorFlow's AVX build computes it.
template <class T>
PYOPTIM_ALWAYS_INLINE T tf_pow_packet_lane(T x, const TfPowExponent<T>& e) {
  using namespace tf_pow_detail;
  const T inf = std::numeric_limits<T>::infinity(), zero = T(0), one = T(1);
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T y = e.y;
  const T x_abs = pabs(x);
  T pow = generic_pow_impl(x_abs, y);
  constexpr T huge_exponent =
      (T(std::numeric_limits<T>::max_exponent) *
       T(0.693147180559945309417232121458176568075500134360255254120680009493393621L)) /
      std::numeric_limits<T>::epsilon();
  // Eigen's selects, in its order, one condition each.
  pow = x < e.nan_below ? nan : pow;
  pow = x == zero ? e.zero_value : pow;
  pow = psignbit(x) ? from_bits<T>(to_bits(pow) ^ e.odd_sign) : pow;
  T inf_y_val = one < x_abs ? e.inf_gt_one : e.inf_le_one;
  inf_y_val = x == T(-1.0) ? one : inf_y_val;
  pow = huge_exponent <= pabs(y) ? inf_y_val : pow;
  pow = x_abs == inf ? (x < zero ? e.neg_inf_value : e.pos_inf_value) : pow;
  pow = y != y ? nan : (x != x ? nan : pow);
  return y == one ? x : (y == zero ? one : (x == one ? one : pow));
}

template <class T>
PYOPTIM_ALWAYS_INLINE T tf_pow_packet_lane(T x, T y) {
  return tf_pow_packet_lane(x, TfPowExponent<T>(y));
}

// Element i of tf.pow(x, y) on a flat tensor of n elements: the packet path for
// i < n - n % P, std::pow (the scalar path) for the last n % P elements.
template <class T>
PYOPTIM_ALWAYS_INLINE T tf_pow_at(T x, T y, int64_t i, int64_t n) {
  constexpr int P = tf_pow_detail::Bits<T>::kPacket;
  return i < n - n % P ? tf_pow_packet_lane(x, y) : static_cast<T>(std::pow(x, y));
}

template <class T>
inline void tf_pow_array(const T* x, T y, T* out, int64_t n) {
  constexpr int P = tf_pow_detail::Bits<T>::kPacket;
  const int64_t body = n - n % P;
  const TfPowExponent<T> e(y);
  PYOPTIM_SIMD_LOOP
  for (int64_t i = 0; i < body; ++i) out[i] = tf_pow_packet_lane(x[i], e);
  for (int64_t i = body; i < n; ++i) out[i] = static_cast<T>(std::pow(x[i], y));
}

// TensorFlow's denormal mode for its CPU kernels (flush-to-zero and denormals-are-zero), for
// code running outside a TensorFlow op.  x86 only (MXCSR); a no-op elsewhere.
class TfDenormalScope {
 public:
#ifdef PYOPTIM_TF_POW_X86
  TfDenormalScope() : old_(_mm_getcsr()) { _mm_setcsr(old_ | 0x8040u); }
  ~TfDenormalScope() { _mm_setcsr(old_); }

 private:
  unsigned old_;
#else
  TfDenormalScope() {}
#endif
  TfDenormalScope(const TfDenormalScope&) = delete;
  TfDenormalScope& operator=(const TfDenormalScope&) = delete;
};

}  // namespace PYOPTIM_ISA
}  // namespace pyoptim
