// A vectorcall entry point for the hot functional API (sgd_update, rmsprop_update,
// adam_update).  pybind11's generic argument matching costs microseconds per call
// when keyword arguments are defaulted, more than a small update takes; these
// three functions therefore take their arguments through METH_FASTCALL, parsed
// here against a fixed list of names, and then run the same checked C++ code as
// everything else.  Everything else in the module is plain pybind11.
#pragma once

#include <pybind11/pybind11.h>

#include <array>
#include <cstring>
#include <string>

namespace pyoptim {

namespace py = pybind11;

// N parameter names; the first `npositional` may be given by position, the rest
// only by keyword.  Missing arguments stay nullptr (the caller applies defaults).
template <std::size_t N>
struct FastSignature {
  const char* function;
  std::array<const char*, N> names;
  std::size_t npositional;
  std::size_t nrequired;  // the first nrequired names must be given
  std::array<PyObject*, N> interned{};

  void intern() {
    for (std::size_t i = 0; i < N; ++i) interned[i] = PyUnicode_InternFromString(names[i]);
  }

  std::array<PyObject*, N> parse(PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) const {
    std::array<PyObject*, N> out{};
    if (static_cast<std::size_t>(nargs) > npositional)
      throw py::type_error(std::string(function) + "() takes at most " + std::to_string(npositional) +
                           " positional arguments (" + std::to_string(nargs) +
                           " given); the hyperparameters are keyword-only");
    for (Py_ssize_t i = 0; i < nargs; ++i) out[i] = args[i];
    const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; ++k) {
      PyObject* key = PyTuple_GET_ITEM(kwnames, k);
      std::size_t i = 0;
      while (i < N && interned[i] != key) ++i;  // interned: pointer equality
      if (i == N) {
        i = 0;
        while (i < N && PyUnicode_CompareWithASCIIString(key, names[i]) != 0) ++i;
      }
      if (i == N)
        throw py::type_error(std::string(function) + "() got an unexpected keyword argument '" +
                             py::str(key).cast<std::string>() + "'");
      if (out[i] != nullptr)
        throw py::type_error(std::string(function) + "() got multiple values for argument '" +
                             names[i] + "'");
      out[i] = args[nargs + k];
    }
    for (std::size_t i = 0; i < nrequired; ++i)
      if (out[i] == nullptr)
        throw py::type_error(std::string(function) + "() missing required argument '" + names[i] + "'");
    return out;
  }
};

// Converts C++ exceptions into a Python error, for the METH_FASTCALL functions.
template <class F>
PyObject* call_translating_errors(F&& f) {
  try {
    f();
    Py_RETURN_NONE;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (py::builtin_exception& e) {
    e.set_error();
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
}

// The argument, or `fallback` when it was not given.
inline py::handle arg_or(PyObject* given, py::handle fallback) {
  return given != nullptr ? py::handle(given) : fallback;
}

}  // namespace pyoptim
