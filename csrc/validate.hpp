// Input checks for the bindings: every array and hyperparameter is checked here,
// before any memory is modified.  Errors are TypeError (wrong kind of object or
// dtype) or ValueError (wrong value, shape, layout, aliasing), and name the
// argument.
#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "pyoptim/segments.hpp"

namespace pyoptim {

namespace py = pybind11;

// Storage dtypes of a parameter.  Float16 and BFloat16 params (bfloat16 as
// ml_dtypes defines it) have float32 state and arithmetic.
enum class DType { kFloat32, kFloat64, kFloat16, kBFloat16 };

// The name of an argument, formatted only when an error is raised:
// "param", or "params[3]" when index >= 0.
struct ArgName {
  const char* base;
  Py_ssize_t index = -1;
  std::string str() const;
};

// Collects the tensors of one call (one for the functional API, a list for the
// multi-tensor API), checks each one and every pairing, and yields segments
// grouped by dtype.
class CallChecker {
 public:
  // Adds one tensor: param and grad plus `nstates` state arrays (nullptr for an
  // absent optional state).  Checks kind, dtype, writability, alignment, layout,
  // shape and dtype agreement with the param.  A `no_decay` tensor goes to a
  // separate group that is updated without weight decay.
  void add(PyObject* param, PyObject* grad, PyObject* const* states, const char* const* state_names,
           int nstates, Py_ssize_t index, bool no_decay = false);
  // Adds one tensor of an 8-bit state update (adam8bit.hpp): param and grad as in add(); codes
  // (m: int8, v and v_hat: uint8) with the param's shape and memory order; scales (the param's
  // state dtype) 1-D with ceil(size / block) elements.  names: m, v, v_hat, then their scales'.
  // An absent v_hat (codes[2] and scales[2] nullptr) is allowed.
  void add_quant(PyObject* param, PyObject* grad, PyObject* const* codes, PyObject* const* scales,
                 const char* const* names, Py_ssize_t index, index_t block, bool no_decay = false);
  // Room for n tensors of `arrays_per_tensor` arrays each.
  void reserve(std::size_t n, int arrays_per_tensor);
  // Refuses any two arrays that share memory where at least one is written.
  // The last layout found free of overlaps is remembered (under the GIL): a
  // stateful optimizer passes the same arrays every step, and the same address
  // ranges cannot overlap now if they did not then.
  void check_no_overlap() const;

  const std::vector<Segment>& segments(DType d, bool no_decay = false) const {
    return by_dtype_[static_cast<int>(d) + (no_decay ? 4 : 0)];
  }
  const std::vector<QuantSegment>& quant_segments(DType d, bool no_decay = false) const {
    return quant_by_dtype_[static_cast<int>(d) + (no_decay ? 4 : 0)];
  }

 private:
  struct Interval {
    const char* begin;
    const char* end;
    bool written;
    ArgName name;
  };
  std::vector<Segment> by_dtype_[8];  // [dtype], then [4 + dtype] for no_decay tensors
  std::vector<QuantSegment> quant_by_dtype_[8];
  std::vector<Interval> intervals_;
};

// Scalars.
double real_arg(py::handle value, const char* name);
double finite_arg(py::handle value, const char* name);
double unit_interval_arg(py::handle value, const char* name, bool include_one);  // [0,1) or [0,1]
double nonnegative_arg(py::handle value, const char* name);
long long step_arg(py::handle value);
// None -> false (no weight decay); otherwise a finite real stored in *out.
bool optional_finite_arg(py::handle value, const char* name, double* out);
// None -> nullptr, else the object (checked later as an array).
inline PyObject* optional_array(py::handle value) { return value.is_none() ? nullptr : value.ptr(); }

}  // namespace pyoptim
