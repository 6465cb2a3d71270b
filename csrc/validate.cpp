#include "validate.hpp"

#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL pyoptim_ARRAY_API
#define NO_IMPORT_ARRAY
#include <numpy/arrayobject.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <string>

namespace pyoptim {

std::string ArgName::str() const {
  std::string s = base;
  if (index >= 0) s += "[" + std::to_string(index) + "]";
  return s;
}

namespace {

std::string repr(PyObject* obj) {
  py::handle h(obj);
  return py::str(py::repr(h)).cast<std::string>();
}

std::string shape_str(PyArrayObject* a) {
  std::string s = "(";
  for (int d = 0; d < PyArray_NDIM(a); ++d) {
    s += std::to_string(PyArray_DIM(a, d));
    if (PyArray_NDIM(a) == 1 || d + 1 < PyArray_NDIM(a)) s += d + 1 < PyArray_NDIM(a) ? ", " : ",";
  }
  return s + ")";
}

struct Checked {
  PyArrayObject* arr;
  DType dtype;
  bool c_contiguous;
};

bool is_bfloat16(PyArrayObject* a) {
  const PyArray_Descr* d = PyArray_DESCR(a);
  if (d->kind != 'V' || PyArray_ITEMSIZE(a) != 2) return false;
  const char* name = d->typeobj->tp_name;
  const std::size_t len = std::char_traits<char>::length(name);
  return len >= 8 && std::char_traits<char>::compare(name + len - 8, "bfloat16", 8) == 0;
}

// Parameters and gradients may be 16-bit floats; state arrays may not.
Checked check_array(PyObject* obj, const ArgName& name, bool written, bool allow_half) {
  if (!PyArray_Check(obj))
    throw py::type_error(name.str() + " must be a numpy.ndarray" +
                         (written ? " (it is updated in place)" : "") + ", got " + Py_TYPE(obj)->tp_name);
  auto* a = reinterpret_cast<PyArrayObject*>(obj);
  const int t = PyArray_TYPE(a);
  DType dtype;
  if (t == NPY_FLOAT && PyArray_ISNOTSWAPPED(a)) {
    dtype = DType::kFloat32;
  } else if (t == NPY_DOUBLE && PyArray_ISNOTSWAPPED(a)) {
    dtype = DType::kFloat64;
  } else if (allow_half && t == NPY_HALF && PyArray_ISNOTSWAPPED(a)) {
    dtype = DType::kFloat16;
  } else if (allow_half && is_bfloat16(a)) {
    dtype = DType::kBFloat16;
  } else {
    throw py::type_error(name.str() + " must have dtype " +
                         (allow_half ? "float32, float64, float16 or bfloat16" : "float32 or float64") +
                         " in native byte order, got " +
                         repr(reinterpret_cast<PyObject*>(PyArray_DESCR(a))));
  }
  if (written && !PyArray_ISWRITEABLE(a))
    throw py::value_error(name.str() + " is read-only; pyoptim updates it in place");
  if (!PyArray_ISALIGNED(a)) throw py::value_error(name.str() + " is not aligned to its dtype");
  const bool c = PyArray_IS_C_CONTIGUOUS(a), f = PyArray_IS_F_CONTIGUOUS(a);
  if (!c && !f)
    throw py::value_error(name.str() +
                          " is not contiguous; pyoptim updates arrays in place and does not update "
                          "strided views (pass the array the view was taken from)");
  return {a, dtype, c};
}

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kFloat32: return "float32";
    case DType::kFloat64: return "float64";
    case DType::kFloat16: return "float16";
    case DType::kBFloat16: return "bfloat16";
  }
  return "?";
}

// The dtype of the state arrays of a parameter of dtype d.
DType state_dtype(DType d) { return d == DType::kFloat64 ? DType::kFloat64 : DType::kFloat32; }

void check_like_param(const Checked& x, const ArgName& xname, const Checked& p, const ArgName& pname,
                      bool is_state) {
  const DType want = is_state ? state_dtype(p.dtype) : p.dtype;
  if (x.dtype != want)
    throw py::type_error(xname.str() + " has dtype " + dtype_name(x.dtype) + " but " + pname.str() +
                         " has dtype " + dtype_name(p.dtype) + "; " +
                         (want == p.dtype ? std::string("they must match")
                                          : xname.str() + " must be " + dtype_name(want)));
  const int nd = PyArray_NDIM(p.arr);
  // (std::equal, not memcmp: a 0-d array's dims pointer is null.)
  if (PyArray_NDIM(x.arr) != nd ||
      !std::equal(PyArray_DIMS(x.arr), PyArray_DIMS(x.arr) + nd, PyArray_DIMS(p.arr)))
    throw py::value_error(xname.str() + " has shape " + shape_str(x.arr) + " but " + pname.str() +
                          " has shape " + shape_str(p.arr) + "; they must match");
  // Same shape, both contiguous: the memory orders agree unless one is C-only and
  // the other F-only, which would pair different elements.
  const bool x_c = PyArray_IS_C_CONTIGUOUS(x.arr), x_f = PyArray_IS_F_CONTIGUOUS(x.arr);
  const bool p_c = PyArray_IS_C_CONTIGUOUS(p.arr), p_f = PyArray_IS_F_CONTIGUOUS(p.arr);
  if (!((x_c && p_c) || (x_f && p_f)))
    throw py::value_error(xname.str() + " and " + pname.str() +
                          " have different memory orders (one C-contiguous, the other Fortran)");
}

}  // namespace

void CallChecker::add(PyObject* param, PyObject* grad, PyObject* const* states,
                      const char* const* state_names, int nstates, Py_ssize_t index,
                      bool no_decay) {
  const bool multi = index >= 0;
  const ArgName pname{multi ? "params" : "param", index};
  const ArgName gname{multi ? "grads" : "grad", index};
  const Checked p = check_array(param, pname, true, true);
  const Checked g = check_array(grad, gname, false, true);
  check_like_param(g, gname, p, pname, false);
  Segment seg{PyArray_DATA(p.arr), PyArray_DATA(g.arr), {nullptr, nullptr, nullptr},
              static_cast<index_t>(PyArray_SIZE(p.arr))};
  const auto nbytes = [](PyArrayObject* a) { return static_cast<std::size_t>(PyArray_NBYTES(a)); };
  const auto* pd = static_cast<const char*>(PyArray_DATA(p.arr));
  const auto* gd = static_cast<const char*>(PyArray_DATA(g.arr));
  intervals_.push_back({pd, pd + nbytes(p.arr), true, pname});
  intervals_.push_back({gd, gd + nbytes(g.arr), false, gname});
  for (int k = 0; k < nstates; ++k) {
    if (states[k] == nullptr) continue;
    const ArgName sname{state_names[k], index};
    const Checked s = check_array(states[k], sname, true, false);
    check_like_param(s, sname, p, pname, true);
    seg.s[k] = PyArray_DATA(s.arr);
    const auto* sd = static_cast<const char*>(seg.s[k]);
    intervals_.push_back({sd, sd + nbytes(s.arr), true, sname});
  }
  by_dtype_[static_cast<int>(p.dtype) + (no_decay ? 4 : 0)].push_back(seg);
}

namespace {

// An 8-bit state's code array: `want` (NPY_INT8 or NPY_UINT8), writable, the param's shape
// and memory order.
void check_codes(PyObject* obj, const ArgName& name, int want, const Checked& p,
                 const ArgName& pname) {
  const char* want_name = want == NPY_INT8 ? "int8" : "uint8";
  if (!PyArray_Check(obj))
    throw py::type_error(name.str() + " must be a numpy.ndarray of " + want_name +
                         " codes (it is updated in place), got " + Py_TYPE(obj)->tp_name);
  auto* a = reinterpret_cast<PyArrayObject*>(obj);
  if (PyArray_TYPE(a) != want)
    throw py::type_error(name.str() + " must have dtype " + want_name + ", got " +
                         repr(reinterpret_cast<PyObject*>(PyArray_DESCR(a))));
  if (!PyArray_ISWRITEABLE(a))
    throw py::value_error(name.str() + " is read-only; pyoptim updates it in place");
  const int nd = PyArray_NDIM(p.arr);
  if (PyArray_NDIM(a) != nd || !std::equal(PyArray_DIMS(a), PyArray_DIMS(a) + nd, PyArray_DIMS(p.arr)))
    throw py::value_error(name.str() + " has shape " + shape_str(a) + " but " + pname.str() +
                          " has shape " + shape_str(p.arr) + "; they must match");
  const bool a_c = PyArray_IS_C_CONTIGUOUS(a), a_f = PyArray_IS_F_CONTIGUOUS(a);
  const bool p_c = PyArray_IS_C_CONTIGUOUS(p.arr), p_f = PyArray_IS_F_CONTIGUOUS(p.arr);
  if (!((a_c && p_c) || (a_f && p_f)))
    throw py::value_error(name.str() + " must be contiguous in " + pname.str() + "'s memory order");
}

// A block scale array: the param's state dtype, 1-D, `count` elements, writable, contiguous.
void check_scales(PyObject* obj, const ArgName& name, index_t count, const Checked& p,
                  const ArgName& pname) {
  const Checked s = check_array(obj, name, true, false);
  const DType want = state_dtype(p.dtype);
  if (s.dtype != want)
    throw py::type_error(name.str() + " has dtype " + dtype_name(s.dtype) + " but " + pname.str() +
                         " has dtype " + dtype_name(p.dtype) + "; " + name.str() + " must be " +
                         dtype_name(want));
  if (PyArray_NDIM(s.arr) != 1 || PyArray_DIM(s.arr, 0) != count)
    throw py::value_error(name.str() + " has shape " + shape_str(s.arr) + " but " + pname.str() +
                          " (" + std::to_string(PyArray_SIZE(p.arr)) +
                          " elements) needs one scale per block: shape (" + std::to_string(count) +
                          ",)");
}

}  // namespace

void CallChecker::add_quant(PyObject* param, PyObject* grad, PyObject* const* codes,
                            PyObject* const* scales, const char* const* names, Py_ssize_t index,
                            index_t block, bool no_decay) {
  const bool multi = index >= 0;
  const ArgName pname{multi ? "params" : "param", index};
  const ArgName gname{multi ? "grads" : "grad", index};
  const Checked p = check_array(param, pname, true, true);
  const Checked g = check_array(grad, gname, false, true);
  check_like_param(g, gname, p, pname, false);
  const index_t n = static_cast<index_t>(PyArray_SIZE(p.arr));
  const index_t nblocks = (n + block - 1) / block;
  QuantSegment seg{PyArray_DATA(p.arr), PyArray_DATA(g.arr), nullptr, nullptr, nullptr,
                   nullptr, nullptr, nullptr, n};
  const auto nbytes = [](PyArrayObject* a) { return static_cast<std::size_t>(PyArray_NBYTES(a)); };
  const auto add_interval = [&](PyArrayObject* a, bool written, const ArgName& name) {
    const auto* d = static_cast<const char*>(PyArray_DATA(a));
    intervals_.push_back({d, d + nbytes(a), written, name});
  };
  add_interval(p.arr, true, pname);
  add_interval(g.arr, false, gname);
  void* code_ptr[3] = {nullptr, nullptr, nullptr};
  void* scale_ptr[3] = {nullptr, nullptr, nullptr};
  for (int k = 0; k < 3; ++k) {
    if ((codes[k] == nullptr) != (scales[k] == nullptr))
      throw py::value_error(std::string(names[k]) + " and " + names[k + 3] +
                            " must be given together");
    if (codes[k] == nullptr) {
      if (k < 2) throw py::value_error(std::string(names[k]) + " is required");
      continue;
    }
    const ArgName cname{names[k], index}, sname{names[k + 3], index};
    check_codes(codes[k], cname, k == 0 ? NPY_INT8 : NPY_UINT8, p, pname);
    check_scales(scales[k], sname, nblocks, p, pname);
    auto* ca = reinterpret_cast<PyArrayObject*>(codes[k]);
    auto* sa = reinterpret_cast<PyArrayObject*>(scales[k]);
    code_ptr[k] = PyArray_DATA(ca);
    scale_ptr[k] = PyArray_DATA(sa);
    add_interval(ca, true, cname);
    add_interval(sa, true, sname);
  }
  seg.m = static_cast<std::int8_t*>(code_ptr[0]);
  seg.v = static_cast<std::uint8_t*>(code_ptr[1]);
  seg.vhat = static_cast<std::uint8_t*>(code_ptr[2]);
  seg.m_scale = scale_ptr[0];
  seg.v_scale = scale_ptr[1];
  seg.vhat_scale = scale_ptr[2];
  quant_by_dtype_[static_cast<int>(p.dtype) + (no_decay ? 4 : 0)].push_back(seg);
}

void CallChecker::reserve(std::size_t n, int arrays_per_tensor) {
  intervals_.reserve(n * static_cast<std::size_t>(arrays_per_tensor));
  by_dtype_[0].reserve(n);
}

namespace {
// Address ranges (begin, end, written) of the last call found free of overlaps.
std::vector<const char*> g_last_free_layout;
}  // namespace

void CallChecker::check_no_overlap() const {
  std::vector<const char*> layout;
  layout.reserve(intervals_.size() * 3);
  for (const auto& iv : intervals_) {
    layout.push_back(iv.begin);
    layout.push_back(iv.end);
    layout.push_back(iv.written ? iv.end : nullptr);
  }
  if (layout == g_last_free_layout) return;
  std::vector<const Interval*> order;
  order.reserve(intervals_.size());
  for (const auto& iv : intervals_)
    if (iv.begin != iv.end) order.push_back(&iv);
  std::sort(order.begin(), order.end(),
            [](const Interval* a, const Interval* b) { return a->begin < b->begin; });
  // Sweep by start address: an interval overlaps an earlier one iff it starts
  // before that one's end.  Read-only gradients may overlap each other.
  const Interval* furthest_any = nullptr;
  const Interval* furthest_written = nullptr;
  for (const Interval* iv : order) {
    const Interval* clash = nullptr;
    if (furthest_written && iv->begin < furthest_written->end) clash = furthest_written;
    else if (iv->written && furthest_any && iv->begin < furthest_any->end) clash = furthest_any;
    if (clash)
      throw py::value_error(clash->name.str() + " and " + iv->name.str() +
                            " share memory; every array that is updated must have its own memory");
    if (!furthest_any || iv->end > furthest_any->end) furthest_any = iv;
    if (iv->written && (!furthest_written || iv->end > furthest_written->end)) furthest_written = iv;
  }
  g_last_free_layout.swap(layout);
}

double real_arg(py::handle value, const char* name) {
  if (PyFloat_CheckExact(value.ptr())) return PyFloat_AS_DOUBLE(value.ptr());
  // Booleans are not numbers here (True would read as 1.0), NumPy's included.
  if (value.is_none() || PyUnicode_Check(value.ptr()) || PyBytes_Check(value.ptr()) ||
      PyBool_Check(value.ptr()) || PyArray_IsScalar(value.ptr(), Bool))
    throw py::type_error(std::string(name) + " must be a real number, got " +
                         Py_TYPE(value.ptr())->tp_name);
  const double x = PyFloat_AsDouble(value.ptr());
  if (x == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::type_error(std::string(name) + " must be a real number, got " +
                         Py_TYPE(value.ptr())->tp_name);
  }
  return x;
}

double finite_arg(py::handle value, const char* name) {
  const double x = real_arg(value, name);
  if (!std::isfinite(x)) throw py::value_error(std::string(name) + " must be finite, got " + repr(value.ptr()));
  return x;
}

double unit_interval_arg(py::handle value, const char* name, bool include_one) {
  const double x = real_arg(value, name);
  if (!(x >= 0.0 && (include_one ? x <= 1.0 : x < 1.0)))
    throw py::value_error(std::string(name) + " must be in [0, 1" + (include_one ? "]" : ")") +
                          ", got " + repr(value.ptr()));
  return x;
}

double nonnegative_arg(py::handle value, const char* name) {
  const double x = real_arg(value, name);
  if (!(x >= 0.0 && std::isfinite(x)))
    throw py::value_error(std::string(name) + " must be finite and >= 0, got " + repr(value.ptr()));
  return x;
}

long long step_arg(py::handle value) {
  PyObject* v = value.ptr();
  if (PyFloat_Check(v) || PyBool_Check(v) || !PyIndex_Check(v))
    throw py::type_error(std::string("step must be an integer, got ") + Py_TYPE(v)->tp_name);
  int overflow = 0;
  py::object as_int = py::reinterpret_steal<py::object>(PyNumber_Index(v));
  if (!as_int) throw py::error_already_set();
  const long long step = PyLong_AsLongLongAndOverflow(as_int.ptr(), &overflow);
  if (overflow != 0 || step < 1)
    throw py::value_error(
        "step must be the 1-based count of this update, an integer from 1 to 2**63 - 1 (" +
        std::to_string(LLONG_MAX) + "), got " + repr(v));
  return step;
}

bool optional_finite_arg(py::handle value, const char* name, double* out) {
  if (value.is_none()) return false;
  *out = finite_arg(value, name);
  return true;
}

}  // namespace pyoptim
