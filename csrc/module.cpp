// pyoptim._core: thin pybind11 bindings over the kernels.  Every argument is
// checked in validate.cpp before any memory is modified; the GIL is released
// around the kernel call; there is no per-element Python.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL pyoptim_ARRAY_API
#include <numpy/arrayobject.h>

#include <climits>
#include <cmath>
#include <stdexcept>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "dispatch.hpp"
#include "fastcall.hpp"
#include "validate.hpp"

namespace pyoptim {
namespace {

int g_num_threads = 1;

// ---------------------------------------------------------------- hyperparameters
// Scalars are rounded to the parameter's dtype the way Keras rounds them: a
// Python float such as `1 - beta_1` is computed in double and then cast once.

// A scalar argument that may be absent (null handle): Keras' default then.
double scalar(py::handle given, double fallback, double (*check)(py::handle, const char*),
              const char* name) {
  return given ? check(given, name) : fallback;
}
double unit_open(py::handle v, const char* name) { return unit_interval_arg(v, name, false); }
double unit_closed(py::handle v, const char* name) { return unit_interval_arg(v, name, true); }

struct SgdHyper {
  double lr, momentum, wd;
  bool decay;
  SgdMode mode;
};

template <class T>
SgdCoeffs<T> coeffs(const SgdHyper& h) {
  return {static_cast<T>(h.lr), static_cast<T>(h.momentum), static_cast<T>(h.wd),
          static_cast<T>(h.lr)};
}

SgdHyper parse_sgd(py::handle lr, py::handle momentum, py::handle nesterov, py::handle wd) {
  SgdHyper h{};
  h.lr = scalar(lr, 0.01, finite_arg, "learning_rate");
  h.momentum = scalar(momentum, 0.0, unit_closed, "momentum");
  h.decay = wd && optional_finite_arg(wd, "weight_decay", &h.wd);
  bool nest = false;
  if (nesterov) {
    if (!PyBool_Check(nesterov.ptr()) && !PyArray_IsScalar(nesterov.ptr(), Bool))
      throw py::type_error(std::string("nesterov must be a bool, got ") + Py_TYPE(nesterov.ptr())->tp_name);
    nest = PyObject_IsTrue(nesterov.ptr()) == 1;
  }
  // Keras keeps (and uses) momentum buffers only when momentum != 0.
  h.mode = h.momentum == 0.0 ? SgdMode::kPlain : (nest ? SgdMode::kNesterov : SgdMode::kMomentum);
  return h;
}

struct RmspropHyper {
  double lr, rho, eps, momentum, wd;
  bool decay, centered, use_momentum;
};

template <class T>
RmspropCoeffs<T> coeffs(const RmspropHyper& h) {
  return {static_cast<T>(h.lr),  static_cast<T>(h.rho),      static_cast<T>(1.0 - h.rho),
          static_cast<T>(h.eps), static_cast<T>(h.momentum), static_cast<T>(h.wd),
          static_cast<T>(h.lr)};
}

RmspropHyper parse_rmsprop(py::handle lr, py::handle rho, py::handle eps, py::handle momentum,
                           py::handle wd) {
  RmspropHyper h{};
  h.lr = scalar(lr, 0.001, finite_arg, "learning_rate");
  h.rho = scalar(rho, 0.9, unit_open, "rho");
  h.eps = scalar(eps, 1e-7, nonnegative_arg, "epsilon");
  h.momentum = scalar(momentum, 0.0, unit_closed, "momentum");
  h.decay = wd && optional_finite_arg(wd, "weight_decay", &h.wd);
  h.use_momentum = h.momentum > 0.0;
  return h;
}

struct AdamHyper {
  double lr, beta_1, beta_2, eps, wd;
  long long step;
  bool decay, amsgrad;
};

template <class T>
AdamCoeffs<T> coeffs(const AdamHyper& h) {
  // As Keras: local_step = T(t); beta^t = pow(T(beta), local_step);
  // alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t), every operation in T.
  const T lr = static_cast<T>(h.lr);
  const T t = static_cast<T>(h.step);
  const T b1_power = std::pow(static_cast<T>(h.beta_1), t);
  const T b2_power = std::pow(static_cast<T>(h.beta_2), t);
  const T alpha = lr * std::sqrt(T(1) - b2_power) / (T(1) - b1_power);
  return {alpha, static_cast<T>(1.0 - h.beta_1), static_cast<T>(1.0 - h.beta_2),
          static_cast<T>(h.eps), lr, static_cast<T>(h.wd)};
}

AdamHyper parse_adam(py::handle step, py::handle lr, py::handle b1, py::handle b2, py::handle eps,
                     py::handle wd) {
  AdamHyper h{};
  h.step = step_arg(step);
  h.lr = scalar(lr, 0.001, finite_arg, "learning_rate");
  h.beta_1 = scalar(b1, 0.9, unit_open, "beta_1");
  h.beta_2 = scalar(b2, 0.999, unit_open, "beta_2");
  h.eps = scalar(eps, 1e-7, nonnegative_arg, "epsilon");
  h.decay = wd && optional_finite_arg(wd, "weight_decay", &h.wd);
  return h;
}

// ---------------------------------------------------------------- kernel calls

// Runs every dtype group of a checked call with its kernel, the GIL released.
// float16/bfloat16 params use the float32 coefficients (float32 arithmetic).
// `no_decay` selects the tensors excluded from weight decay (their own groups).
template <class H, class Fn32, class Fn64, class... Flags>
void run_groups(const CallChecker& c, bool no_decay, const H& h, Fn32 f32, Fn32 f16, Fn32 bf16,
                Fn64 f64, Flags... flags) {
  const auto c32 = coeffs<float>(h);
  const auto c64 = coeffs<double>(h);
  const int threads = g_num_threads;  // read under the GIL: set_num_threads may run meanwhile
  py::gil_scoped_release nogil;
  const auto go = [&](DType d, auto fn, const auto& co) {
    const auto& segs = c.segments(d, no_decay);
    if (!segs.empty()) fn(segs.data(), segs.size(), threads, co, flags...);
  };
  go(DType::kFloat32, f32, c32);
  go(DType::kFloat64, f64, c64);
  go(DType::kFloat16, f16, c32);
  go(DType::kBFloat16, bf16, c32);
}

// Every group of a checked call: first the tensors with weight decay (h.decay),
// then those excluded from it (the multi-tensor API's no_decay mask).
void run(const CallChecker& c, const SgdHyper& h) {
  const KernelTable& k = active_kernels();
  run_groups(c, false, h, k.sgd_f32, k.sgd_f16, k.sgd_bf16, k.sgd_f64, h.mode, h.decay);
  run_groups(c, true, h, k.sgd_f32, k.sgd_f16, k.sgd_bf16, k.sgd_f64, h.mode, false);
}

void run(const CallChecker& c, const RmspropHyper& h) {
  const KernelTable& k = active_kernels();
  run_groups(c, false, h, k.rmsprop_f32, k.rmsprop_f16, k.rmsprop_bf16, k.rmsprop_f64, h.centered,
             h.use_momentum, h.decay);
  run_groups(c, true, h, k.rmsprop_f32, k.rmsprop_f16, k.rmsprop_bf16, k.rmsprop_f64, h.centered,
             h.use_momentum, false);
}

void run(const CallChecker& c, const AdamHyper& h) {
  const KernelTable& k = active_kernels();
  run_groups(c, false, h, k.adam_f32, k.adam_f16, k.adam_bf16, k.adam_f64, h.amsgrad, h.decay);
  run_groups(c, true, h, k.adam_f32, k.adam_f16, k.adam_bf16, k.adam_f64, h.amsgrad, false);
}

// ---------------------------------------------------------------- functional API
// Arguments arrive from the METH_FASTCALL entry points below; an argument that
// was not given is nullptr and takes Keras' default.

void require_buffer(bool needed, py::handle buffer, const char* name, const char* why) {
  if (needed && (!buffer || buffer.is_none()))
    throw py::value_error(std::string(name) + " is required when " + why);
}

py::handle or_none(PyObject* given) { return given ? py::handle(given) : py::handle(Py_None); }

// {function, names, how many may be positional, how many are required}
FastSignature<7> kSgdSig{"sgd_update",
                         {"param", "grad", "momentum_buffer", "learning_rate", "momentum", "nesterov",
                          "weight_decay"},
                         3, 2};

void sgd_update(const std::array<PyObject*, 7>& a) {
  const SgdHyper h = parse_sgd(a[3], a[4], a[5], a[6]);
  require_buffer(h.mode != SgdMode::kPlain, or_none(a[2]), "momentum_buffer", "momentum > 0");
  static const char* const names[1] = {"momentum_buffer"};
  PyObject* states[1] = {optional_array(or_none(a[2]))};
  CallChecker c;
  c.add(a[0], a[1], states, names, 1, -1);
  c.check_no_overlap();
  run(c, h);
}

FastSignature<10> kRmspropSig{"rmsprop_update",
                              {"param", "grad", "velocity", "learning_rate", "rho", "epsilon",
                               "momentum", "momentum_buffer", "average_grad", "weight_decay"},
                              3, 3};

void rmsprop_update(const std::array<PyObject*, 10>& a) {
  RmspropHyper h = parse_rmsprop(a[3], a[4], a[5], a[6], a[9]);
  h.centered = a[8] != nullptr && a[8] != Py_None;
  require_buffer(h.use_momentum, or_none(a[7]), "momentum_buffer", "momentum > 0");
  static const char* const names[3] = {"velocity", "momentum_buffer", "average_grad"};
  PyObject* states[3] = {a[2], optional_array(or_none(a[7])), optional_array(or_none(a[8]))};
  CallChecker c;
  c.add(a[0], a[1], states, names, 3, -1);
  c.check_no_overlap();
  run(c, h);
}

FastSignature<11> kAdamSig{"adam_update",
                           {"param", "grad", "m", "v", "step", "learning_rate", "beta_1", "beta_2",
                            "epsilon", "v_hat", "weight_decay"},
                           4, 5};

void adam_update(const std::array<PyObject*, 11>& a) {
  AdamHyper h = parse_adam(a[4], a[5], a[6], a[7], a[8], a[10]);
  h.amsgrad = a[9] != nullptr && a[9] != Py_None;
  static const char* const names[3] = {"m", "v", "v_hat"};
  PyObject* states[3] = {a[2], a[3], optional_array(or_none(a[9]))};
  CallChecker c;
  c.add(a[0], a[1], states, names, 3, -1);
  c.check_no_overlap();
  run(c, h);
}

template <class Sig, class F>
PyObject* fastcall(const Sig& sig, F&& f, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return call_translating_errors([&] { f(sig.parse(args, nargs, kwnames)); });
}

PyObject* sgd_update_entry(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return fastcall(kSgdSig, sgd_update, args, nargs, kwnames);
}
PyObject* rmsprop_update_entry(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return fastcall(kRmspropSig, rmsprop_update, args, nargs, kwnames);
}
PyObject* adam_update_entry(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return fastcall(kAdamSig, adam_update, args, nargs, kwnames);
}

// ---------------------------------------------------------------- multi-tensor API
// A list of tensors updated in one call and one parallel region.  The lists are
// copied into tuples first: the tuples hold strong references to every array
// while the GIL is released.

py::tuple as_tuple(py::handle seq, const char* name) {
  if (!PyList_Check(seq.ptr()) && !PyTuple_Check(seq.ptr()))
    throw py::type_error(std::string(name) + " must be a list or tuple of numpy arrays, got " +
                         Py_TYPE(seq.ptr())->tp_name);
  return py::reinterpret_steal<py::tuple>(PySequence_Tuple(seq.ptr()));
}

struct MultiArgs {
  py::tuple params, grads;
  std::vector<py::object> states;  // tuples; a null object for an absent state
  std::vector<const char*> names;
};

MultiArgs collect(py::handle params, py::handle grads, std::initializer_list<std::pair<py::handle, const char*>> states) {
  MultiArgs a{as_tuple(params, "params"), as_tuple(grads, "grads"), {}, {}};
  const auto n = a.params.size();
  if (a.grads.size() != n)
    throw py::value_error("grads has " + std::to_string(a.grads.size()) + " arrays but params has " +
                          std::to_string(n));
  for (const auto& [seq, name] : states) {
    a.names.push_back(name);
    if (seq.is_none()) {
      a.states.emplace_back();  // null: this state is absent
      continue;
    }
    py::tuple t = as_tuple(seq, name);
    if (t.size() != n)
      throw py::value_error(std::string(name) + " has " + std::to_string(t.size()) +
                            " arrays but params has " + std::to_string(n));
    a.states.push_back(std::move(t));
  }
  return a;
}

// None, or a tuple of len(params) bools: True excludes that tensor from weight decay.
py::object no_decay_mask(py::handle mask, Py_ssize_t n) {
  if (mask.is_none()) return py::object();
  if (!PyTuple_Check(mask.ptr()) || PyTuple_GET_SIZE(mask.ptr()) != n)
    throw py::value_error("no_decay must be None or a tuple of " + std::to_string(n) + " bools");
  for (Py_ssize_t i = 0; i < n; ++i)
    if (!PyBool_Check(PyTuple_GET_ITEM(mask.ptr(), i)))
      throw py::type_error("no_decay[" + std::to_string(i) + "] must be a bool");
  return py::reinterpret_borrow<py::object>(mask);
}

// A None gradient skips its tensor (parameter and state untouched), as in Keras.
void check_all(const MultiArgs& a, CallChecker& c, py::handle no_decay = py::none()) {
  PyObject* st[3] = {nullptr, nullptr, nullptr};
  const int ns = static_cast<int>(a.states.size());
  const Py_ssize_t n = PyTuple_GET_SIZE(a.params.ptr());
  const py::object mask = no_decay_mask(no_decay, n);
  c.reserve(static_cast<std::size_t>(n), 2 + ns);
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* grad = PyTuple_GET_ITEM(a.grads.ptr(), i);
    if (grad == Py_None) continue;
    for (int k = 0; k < ns; ++k)
      st[k] = a.states[k] ? PyTuple_GET_ITEM(a.states[k].ptr(), i) : nullptr;
    const bool excluded = mask && PyTuple_GET_ITEM(mask.ptr(), i) == Py_True;
    c.add(PyTuple_GET_ITEM(a.params.ptr(), i), grad, st, a.names.data(), ns, i, excluded);
  }
  c.check_no_overlap();
}

void sgd_multi(py::object params, py::object grads, py::object momentums, py::object lr,
               py::object momentum, py::object nesterov, py::object wd, py::object no_decay) {
  const SgdHyper h = parse_sgd(lr, momentum, nesterov, wd);
  require_buffer(h.mode != SgdMode::kPlain, momentums, "momentums", "momentum > 0");
  const MultiArgs a = collect(params, grads, {{momentums, "momentums"}});
  CallChecker c;
  check_all(a, c, no_decay);
  run(c, h);
}

void rmsprop_multi(py::object params, py::object grads, py::object velocities, py::object momentums,
                   py::object average_gradients, py::object lr, py::object rho, py::object eps,
                   py::object momentum, py::object wd, py::object no_decay) {
  RmspropHyper h = parse_rmsprop(lr, rho, eps, momentum, wd);
  h.centered = !average_gradients.is_none();
  require_buffer(h.use_momentum, momentums, "momentums", "momentum > 0");
  const MultiArgs a = collect(params, grads,
                              {{velocities, "velocities"},
                               {momentums, "momentums"},
                               {average_gradients, "average_gradients"}});
  CallChecker c;
  check_all(a, c, no_decay);
  run(c, h);
}

void adam_multi(py::object params, py::object grads, py::object momentums, py::object velocities,
                py::object velocity_hats, py::object step, py::object lr, py::object b1,
                py::object b2, py::object eps, py::object wd, py::object no_decay) {
  AdamHyper h = parse_adam(step, lr, b1, b2, eps, wd);
  h.amsgrad = !velocity_hats.is_none();
  const MultiArgs a = collect(
      params, grads,
      {{momentums, "momentums"}, {velocities, "velocities"}, {velocity_hats, "velocity_hats"}});
  CallChecker c;
  check_all(a, c, no_decay);
  run(c, h);
}

// ---------------------------------------------------------------- 8-bit state (adam8bit.hpp)

index_t block_size_arg(py::handle value) {
  PyObject* v = value.ptr();
  if (PyFloat_Check(v) || PyBool_Check(v) || !PyIndex_Check(v))
    throw py::type_error(std::string("block_size must be an int, got ") + Py_TYPE(v)->tp_name);
  py::object as_int = py::reinterpret_steal<py::object>(PyNumber_Index(v));
  if (!as_int) throw py::error_already_set();
  int overflow = 0;
  const long long b = PyLong_AsLongLongAndOverflow(as_int.ptr(), &overflow);
  if (overflow != 0 || b < kMinQuantBlock || b > kMaxQuantBlock || b % kQuantBlockMultiple != 0)
    throw py::value_error("block_size must be a multiple of " + std::to_string(kQuantBlockMultiple) +
                          " from " + std::to_string(kMinQuantBlock) + " to " +
                          std::to_string(kMaxQuantBlock) + ", got " +
                          py::str(as_int).cast<std::string>());
  return static_cast<index_t>(b);
}

void run_quant_groups(const CallChecker& c, bool no_decay, const AdamHyper& h, index_t block,
                      bool decay) {
  const KernelTable& k = active_kernels();
  const auto c32 = coeffs<float>(h);
  const auto c64 = coeffs<double>(h);
  const int threads = g_num_threads;
  py::gil_scoped_release nogil;
  const auto go = [&](DType d, auto fn, const auto& co) {
    const auto& segs = c.quant_segments(d, no_decay);
    if (!segs.empty()) fn(segs.data(), segs.size(), threads, co, block, h.amsgrad, decay);
  };
  go(DType::kFloat32, k.adam8bit_f32, c32);
  go(DType::kFloat64, k.adam8bit_f64, c64);
  go(DType::kFloat16, k.adam8bit_f16, c32);
  go(DType::kBFloat16, k.adam8bit_bf16, c32);
}

// One Adam8bit step over a list of tensors, checked as a whole before anything is written.
// Lists: params, grads, m, v, v_hat (or None), and the block scales of each.  A tensor whose m
// is an int8 array has 8-bit state (codes and scales, adam8bit.hpp); one whose m is a float
// array (a tensor below min_8bit_size) has float state and runs Adam's kernel, exactly as
// _adam_multi (its scales are not read).
void adam8bit_multi(py::object params, py::object grads, py::object m_codes, py::object v_codes,
                    py::object vhat_codes, py::object m_scales, py::object v_scales,
                    py::object vhat_scales, py::object step, py::object lr, py::object b1,
                    py::object b2, py::object eps, py::object wd, py::object block_size,
                    py::object no_decay) {
  AdamHyper h = parse_adam(step, lr, b1, b2, eps, wd);
  const index_t block = block_size_arg(block_size);
  h.amsgrad = !vhat_codes.is_none();
  if (h.amsgrad == vhat_scales.is_none())
    throw py::value_error("velocity_hats and velocity_hat_scales must be given together");
  const MultiArgs a = collect(params, grads,
                              {{m_codes, "momentums"}, {v_codes, "velocities"},
                               {vhat_codes, "velocity_hats"}, {m_scales, "momentum_scales"},
                               {v_scales, "velocity_scales"}, {vhat_scales, "velocity_hat_scales"}});
  const Py_ssize_t n = PyTuple_GET_SIZE(a.params.ptr());
  const py::object mask = no_decay_mask(no_decay, n);
  CallChecker c;
  c.reserve(static_cast<std::size_t>(n), 8);
  PyObject* codes[3];
  PyObject* scales[3];
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* grad = PyTuple_GET_ITEM(a.grads.ptr(), i);
    if (grad == Py_None) continue;
    for (int k = 0; k < 3; ++k) {
      codes[k] = a.states[k] ? PyTuple_GET_ITEM(a.states[k].ptr(), i) : nullptr;
      scales[k] = a.states[k + 3] ? PyTuple_GET_ITEM(a.states[k + 3].ptr(), i) : nullptr;
    }
    const bool excluded = mask && PyTuple_GET_ITEM(mask.ptr(), i) == Py_True;
    PyObject* param = PyTuple_GET_ITEM(a.params.ptr(), i);
    const int m_type = PyArray_Check(codes[0])
                           ? PyArray_TYPE(reinterpret_cast<PyArrayObject*>(codes[0])) : NPY_INT8;
    if (m_type != NPY_INT8 && m_type != NPY_FLOAT && m_type != NPY_DOUBLE)
      throw py::type_error("momentums[" + std::to_string(i) + "] must have dtype int8 (8-bit "
                           "state) or float32/float64 (float state, a tensor below "
                           "min_8bit_size), got " +
                           py::str(py::handle(reinterpret_cast<PyObject*>(PyArray_DESCR(
                               reinterpret_cast<PyArrayObject*>(codes[0]))))).cast<std::string>());
    if (m_type != NPY_INT8) {
      // A tensor below min_8bit_size: float state, Adam's kernel (its scales are not used).
      c.add(param, grad, codes, a.names.data(), 3, i, excluded);
    } else {
      c.add_quant(param, grad, codes, scales, a.names.data(), i, block, excluded);
    }
  }
  c.check_no_overlap();
  run(c, h);
  run_quant_groups(c, false, h, block, h.decay);
  run_quant_groups(c, true, h, block, false);
}

// ---------------------------------------------------------------- element-wise kernels
// One generic entry for every kernel of PYOPTIM_ELEMENTWISE_KERNELS (elementwise.hpp): the
// caller (pyoptim.optimizers_elementwise) computes the kernel's K::kCoeffs coefficients per
// dtype with Keras' scalar operations; this binding checks every argument, then runs the
// kernel's table entry on every dtype group, the GIL released.

const ElementwiseEntry& elementwise_entry(py::handle kernel) {
  if (!PyUnicode_Check(kernel.ptr()))
    throw py::type_error(std::string("kernel must be a str naming an element-wise kernel, got ") +
                         Py_TYPE(kernel.ptr())->tp_name);
  const std::string name = py::str(kernel).cast<std::string>();
  std::string known;
  for (const auto& e : active_kernels().elementwise) {
    if (name == e.name) return e;
    known += (known.empty() ? "" : ", ") + std::string(e.name);
  }
  throw py::value_error("unknown element-wise kernel '" + name + "' (known: " + known + ")");
}

// None (-> empty) or a list/tuple of `count` real numbers, each rounded once to T.
template <class T>
std::vector<T> coefficient_list(py::handle seq, const char* name, int count,
                                const char* kernel) {
  std::vector<T> out;
  if (seq.is_none()) return out;
  if (!PyList_Check(seq.ptr()) && !PyTuple_Check(seq.ptr()))
    throw py::type_error(std::string(name) + " must be None or a list or tuple of " +
                         std::to_string(count) + " real numbers, got " + Py_TYPE(seq.ptr())->tp_name);
  const py::tuple t = as_tuple(seq, name);
  if (static_cast<int>(t.size()) != count)
    throw py::value_error(std::string(name) + " has " + std::to_string(t.size()) +
                          " values but kernel '" + kernel + "' takes " + std::to_string(count));
  out.reserve(static_cast<std::size_t>(count));
  for (Py_ssize_t i = 0; i < static_cast<Py_ssize_t>(count); ++i) {
    const std::string item = std::string(name) + "[" + std::to_string(i) + "]";
    out.push_back(static_cast<T>(real_arg(t[i], item.c_str())));
  }
  return out;
}

// None (no weight decay) or (weight_decay, learning_rate): Keras' p = p - p * wd * lr.
template <class T>
bool decay_pair(py::handle pair, const char* name, T* wd, T* lr) {
  if (pair.is_none()) return false;
  if ((!PyList_Check(pair.ptr()) && !PyTuple_Check(pair.ptr())) || py::len(pair) != 2)
    throw py::type_error(std::string(name) +
                         " must be None or a pair (weight_decay, learning_rate), got " +
                         py::str(py::repr(pair)).cast<std::string>());
  const py::tuple t = as_tuple(pair, name);
  const std::string n0 = std::string(name) + "[0]", n1 = std::string(name) + "[1]";
  *wd = static_cast<T>(finite_arg(t[0], n0.c_str()));
  *lr = static_cast<T>(real_arg(t[1], n1.c_str()));
  return true;
}

int variant_arg(py::handle value, int variants) {
  PyObject* v = value.ptr();
  if (PyFloat_Check(v) || PyBool_Check(v) || !PyIndex_Check(v))
    throw py::type_error(std::string("variant must be an int, got ") + Py_TYPE(v)->tp_name);
  const long long x = PyLong_AsLongLong(v);
  if (x == -1 && PyErr_Occurred()) PyErr_Clear();
  else if (x >= 0 && x < variants) return static_cast<int>(x);
  throw py::value_error("variant must be in [0, " + std::to_string(variants) + "), got " +
                        py::str(py::repr(value)).cast<std::string>());
}

// reduction_threads: an int >= 1 (TensorFlow's intra-op thread count, for kTensorNorms kernels).
int reduction_threads_arg(py::handle value) {
  PyObject* v = value.ptr();
  if (PyFloat_Check(v) || PyBool_Check(v) || !PyIndex_Check(v))
    throw py::type_error(std::string("reduction_threads must be an int, got ") + Py_TYPE(v)->tp_name);
  const long long x = PyLong_AsLongLong(v);
  if (x == -1 && PyErr_Occurred()) PyErr_Clear();
  else if (x >= 1 && x <= INT_MAX) return static_cast<int>(x);
  throw py::value_error("reduction_threads must be an int >= 1, got " +
                        py::str(py::repr(value)).cast<std::string>());
}

void elementwise_multi(py::object kernel, py::object params, py::object grads, py::object slots,
                       py::object coefficients_f32, py::object coefficients_f64,
                       py::object decay_f32, py::object decay_f64, py::object no_decay,
                       py::object variant, py::object reduction_threads) {
  const ElementwiseEntry& e = elementwise_entry(kernel);
  static const char* const kSlotNames[3] = {"slots[0]", "slots[1]", "slots[2]"};
  if (!PyList_Check(slots.ptr()) && !PyTuple_Check(slots.ptr()))
    throw py::type_error(std::string("slots must be a list of ") + std::to_string(e.slots) +
                         " lists of numpy arrays (one per slot of kernel '" + e.name + "'), got " +
                         Py_TYPE(slots.ptr())->tp_name);
  const py::tuple slot_lists = as_tuple(slots, "slots");
  if (static_cast<int>(slot_lists.size()) != e.slots)
    throw py::value_error("slots has " + std::to_string(slot_lists.size()) + " lists but kernel '" +
                          e.name + "' has " + std::to_string(e.slots) + " slot" +
                          (e.slots == 1 ? "" : "s"));
  const int v = variant_arg(variant, e.variants);
  const int rthreads = reduction_threads_arg(reduction_threads);
  const std::vector<float> c32 = coefficient_list<float>(coefficients_f32, "coefficients_f32", e.coeffs, e.name);
  const std::vector<double> c64 = coefficient_list<double>(coefficients_f64, "coefficients_f64", e.coeffs, e.name);
  ElementwiseCoeffs<float> k32{c32.data(), 0.0f, 0.0f};
  ElementwiseCoeffs<double> k64{c64.data(), 0.0, 0.0};
  const bool d32 = decay_pair(decay_f32, "decay_f32", &k32.weight_decay, &k32.decay_lr);
  const bool d64 = decay_pair(decay_f64, "decay_f64", &k64.weight_decay, &k64.decay_lr);
  k32.reduction_threads = k64.reduction_threads = rthreads;

  MultiArgs a{as_tuple(params, "params"), as_tuple(grads, "grads"), {}, {}};
  const auto n = a.params.size();
  if (a.grads.size() != n)
    throw py::value_error("grads has " + std::to_string(a.grads.size()) + " arrays but params has " +
                          std::to_string(n));
  for (int k = 0; k < e.slots; ++k) {
    py::tuple t = as_tuple(slot_lists[k], kSlotNames[k]);
    if (t.size() != n)
      throw py::value_error(std::string(kSlotNames[k]) + " has " + std::to_string(t.size()) +
                            " arrays but params has " + std::to_string(n));
    a.states.push_back(std::move(t));
    a.names.push_back(kSlotNames[k]);
  }
  CallChecker c;
  check_all(a, c, no_decay);
  const auto present = [&](DType d) { return !c.segments(d).empty() || !c.segments(d, true).empty(); };
  if (c32.empty() && (present(DType::kFloat32) || present(DType::kFloat16) || present(DType::kBFloat16)))
    throw py::value_error("coefficients_f32 is None but a float32, float16 or bfloat16 parameter has a gradient");
  if (c64.empty() && present(DType::kFloat64))
    throw py::value_error("coefficients_f64 is None but a float64 parameter has a gradient");

  const int threads = g_num_threads;
  py::gil_scoped_release nogil;
  for (const bool excluded : {false, true}) {
    const auto go = [&](DType d, auto fn, const auto& co, bool decay) {
      const auto& segs = c.segments(d, excluded);
      if (!segs.empty()) fn(segs.data(), segs.size(), threads, co, v, decay && !excluded);
    };
    go(DType::kFloat32, e.f32, k32, d32);
    go(DType::kFloat64, e.f64, k64, d64);
    go(DType::kFloat16, e.f16, k32, d32);
    go(DType::kBFloat16, e.bf16, k32, d32);
  }
}

py::list elementwise_kernels() {
  py::list out;
  for (const auto& e : active_kernels().elementwise) out.append(e.name);
  return out;
}

// ---------------------------------------------------------------- configuration

int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();  // honours OMP_NUM_THREADS
#else
  return 1;
#endif
}

void set_num_threads(py::object n) {
  PyObject* v = n.ptr();
  if (PyBool_Check(v) || PyFloat_Check(v) || !PyIndex_Check(v))
    throw py::type_error(std::string("n must be an int, got ") + Py_TYPE(v)->tp_name);
  py::object as_int = py::reinterpret_steal<py::object>(PyNumber_Index(v));
  if (!as_int) throw py::error_already_set();
  constexpr long long kMaxThreads = 1 << 16;
  int overflow = 0;
  const long long count = PyLong_AsLongLongAndOverflow(as_int.ptr(), &overflow);
  if (overflow != 0 || count < 1 || count > kMaxThreads)
    throw py::value_error("n must be between 1 and " + std::to_string(kMaxThreads) + ", got " +
                          py::str(as_int).cast<std::string>());
#ifdef _OPENMP
  g_num_threads = static_cast<int>(count);
#else
  g_num_threads = 1;  // built without OpenMP: always one thread
#endif
}

py::dict build_info() {
  py::dict d;
  py::list isas;
  for (const auto& e : isa_list()) {
    py::dict x;
    x["name"] = e.name;
    x["supported"] = e.supported;
    isas.append(x);
  }
  d["isas"] = isas;
  d["isa"] = active_kernels().isa;
#ifdef _OPENMP
  d["openmp"] = true;
#else
  d["openmp"] = false;
#endif
  d["compiler"] = PYOPTIM_COMPILER;
  d["kernel_flags"] = PYOPTIM_KERNEL_FLAGS;
  d["isa_flags"] = PYOPTIM_ISA_FLAGS;  // "name=flags|name=flags" (CMakeLists.txt)
  d["parallel_min_elements"] = kParallelMinElements;
  d["quant_block_sizes"] = py::make_tuple(kMinQuantBlock, kMaxQuantBlock, kQuantBlockMultiple);
  py::list kernels;
  for (const auto& e : active_kernels().elementwise) {
    py::dict x;
    x["name"] = e.name;
    x["slots"] = e.slots;
    x["coefficients"] = e.coeffs;
    x["variants"] = e.variants;
    kernels.append(x);
  }
  d["elementwise_kernels"] = kernels;
  return d;
}

// The three functional entry points (METH_FASTCALL, see fastcall.hpp).  The
// first docstring line is the signature that inspect.signature() reads.
PyMethodDef kFunctionalMethods[] = {
  {"sgd_update", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&sgd_update_entry)), METH_FASTCALL | METH_KEYWORDS,
   R"doc(sgd_update(param, grad, momentum_buffer=None, *, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None)
--

SGD update of ``param`` in place, as keras.optimizers.SGD.

Every scalar is rounded to the dtype of ``param`` (float32 or float64)::

    (weight_decay)  param = param - param * weight_decay * learning_rate
    momentum == 0:  param = param - grad * learning_rate
    momentum > 0:   m = m * momentum - grad * learning_rate
                    param = param + m                                  (nesterov=False)
                    param = param + (m * momentum - grad * learning_rate)  (nesterov=True)

``momentum_buffer`` (m) is required when momentum > 0 and is updated in place.
All arrays: numpy.ndarray, same shape and dtype, contiguous, writable (grad
may be read-only), not sharing memory.  Returns None.)doc"},
  {"rmsprop_update", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&rmsprop_update_entry)), METH_FASTCALL | METH_KEYWORDS,
   R"doc(rmsprop_update(param, grad, velocity, *, learning_rate=0.001, rho=0.9, epsilon=1e-07, momentum=0.0, momentum_buffer=None, average_grad=None, weight_decay=None)
--

RMSprop update of ``param`` in place, as keras.optimizers.RMSprop.

Centered when ``average_grad`` (a) is given; momentum when momentum > 0 (then
``momentum_buffer`` is required).  Epsilon is inside the square root::

    (weight_decay)  param = param - param * weight_decay * learning_rate
    velocity = rho * velocity + (1 - rho) * grad**2
    centered:   a = rho * a + (1 - rho) * grad;  d = (velocity - a**2) + epsilon
    otherwise:  d = velocity + epsilon
    increment = (learning_rate * grad) / sqrt(d)
    momentum > 0:  buf = momentum * buf + increment;  param = param - buf
    otherwise:     param = param - increment

Returns None.)doc"},
  {"adam_update", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&adam_update_entry)), METH_FASTCALL | METH_KEYWORDS,
   R"doc(adam_update(param, grad, m, v, *, step, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, v_hat=None, weight_decay=None)
--

Adam update of ``param`` in place, as keras.optimizers.Adam.

``step`` is the 1-based count of this update (t); AMSGrad when ``v_hat`` is given::

    alpha = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t)
    (weight_decay)  param = param - param * weight_decay * learning_rate
    m = m + (grad - m) * (1 - beta_1)
    v = v + (grad**2 - v) * (1 - beta_2)
    AMSGrad:  v_hat = maximum(v_hat, v), used instead of v below
    param = param - (m * alpha) / (sqrt(v) + epsilon)

Returns None.)doc"},
  {nullptr, nullptr, 0, nullptr}};

}  // namespace
}  // namespace pyoptim

using namespace pyoptim;

PYBIND11_MODULE(_core, m) {
  if (_import_array() < 0) throw py::error_already_set();
  g_num_threads = max_threads();
  m.doc() = "pyoptim's compiled core: in-place SGD, RMSprop, Adam and element-wise (Lion, Adamax, Nadam) kernels.";

  kSgdSig.intern();
  kRmspropSig.intern();
  kAdamSig.intern();
  for (PyMethodDef* def = kFunctionalMethods; def->ml_name != nullptr; ++def) {
    py::object fn = py::reinterpret_steal<py::object>(PyCFunction_NewEx(def, nullptr, m.attr("__name__").ptr()));
    if (!fn) throw py::error_already_set();
    m.add_object(def->ml_name, fn);
  }

  // Private multi-tensor entry points for pyoptim.optimizers, which passes every
  // argument by position (pybind11's positional path is the cheap one).  The last,
  // no_decay, is None or a tuple of bools: True excludes that tensor from weight
  // decay (exclude_from_weight_decay).
  m.def("_sgd_multi", &sgd_multi, py::arg("params"), py::arg("grads"), py::arg("momentums"),
        py::arg("learning_rate"), py::arg("momentum"), py::arg("nesterov"),
        py::arg("weight_decay"), py::arg("no_decay") = py::none());
  m.def("_rmsprop_multi", &rmsprop_multi, py::arg("params"), py::arg("grads"),
        py::arg("velocities"), py::arg("momentums"), py::arg("average_gradients"),
        py::arg("learning_rate"), py::arg("rho"), py::arg("epsilon"), py::arg("momentum"),
        py::arg("weight_decay"), py::arg("no_decay") = py::none());
  m.def("_adam_multi", &adam_multi, py::arg("params"), py::arg("grads"), py::arg("momentums"),
        py::arg("velocities"), py::arg("velocity_hats"), py::arg("step"),
        py::arg("learning_rate"), py::arg("beta_1"), py::arg("beta_2"), py::arg("epsilon"),
        py::arg("weight_decay"), py::arg("no_decay") = py::none());

  m.def("_adam8bit_multi", &adam8bit_multi, py::arg("params"), py::arg("grads"),
        py::arg("momentums"), py::arg("velocities"), py::arg("velocity_hats"),
        py::arg("momentum_scales"), py::arg("velocity_scales"), py::arg("velocity_hat_scales"),
        py::arg("step"), py::arg("learning_rate"), py::arg("beta_1"), py::arg("beta_2"),
        py::arg("epsilon"), py::arg("weight_decay"), py::arg("block_size"),
        py::arg("no_decay") = py::none());

  // The element-wise kernels (elementwise.hpp): one generic multi-tensor entry point.
  m.def("elementwise_multi", &elementwise_multi, py::arg("kernel"), py::arg("params"),
        py::arg("grads"), py::arg("slots"), py::arg("coefficients_f32"),
        py::arg("coefficients_f64"), py::arg("decay_f32") = py::none(),
        py::arg("decay_f64") = py::none(), py::arg("no_decay") = py::none(),
        py::arg("variant") = 0, py::arg("reduction_threads") = 1,
        R"doc(One step of element-wise kernel `kernel` ('adadelta', 'adagrad', 'adamax', 'ftrl',
'lamb', 'lion', 'nadam': see elementwise_kernels()) over every tensor of `params`, in place, in
one native call.

slots: a list of the kernel's slot lists (each len(params) arrays, the state dtype:
float64 for float64 params, else float32).  coefficients_f32 / coefficients_f64: the
kernel's coefficients (its header's order) for float32/float16/bfloat16 and for float64
params, each value rounded once to that dtype; None when no param of that dtype has a
gradient.  decay_f32 / decay_f64: None, or (weight_decay, learning_rate) for Keras'
p = p - p * weight_decay * learning_rate first.  no_decay: None or a tuple of bools (True:
no weight decay for that tensor).  variant: the kernel's compile-time variant (its header's
kVariants; 0 is Keras' eager arithmetic).  reduction_threads: an int >= 1, TensorFlow's
intra-op thread count, which decides the order of the whole-tensor sums of kernels that have
them (Lamb's norms: TensorFlow's reduce_sum splits a large tensor's sum into that many
shards).  A None gradient skips its tensor.  Every argument is checked before anything is
modified.)doc");
  m.def("elementwise_kernels", &elementwise_kernels,
        "Names of the element-wise kernels this build has (elementwise_multi's `kernel`).");

  m.def("set_num_threads", &set_num_threads, py::arg("n"),
        "Use at most n threads for large updates (default: OpenMP's maximum, which honours "
        "OMP_NUM_THREADS).");
  m.def("get_num_threads", [] { return g_num_threads; }, "Threads used for large updates.");
  m.def(
      "set_isa",
      [](const std::string& name) {
        try {
          select_isa(name);
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
      },
      py::arg("name"),
      "Use the kernels built for instruction set `name` ('baseline', 'avx2', 'avx512'); the CPU "
      "must support it.");
  m.def("get_isa", [] { return std::string(active_kernels().isa); }, "Instruction set in use.");
  m.def("_build_info", &build_info);
  m.def("_isa_from_environment", &select_isa_from_environment);
}
