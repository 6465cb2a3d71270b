#!/usr/bin/env bash
# Build pyoptim's core with AddressSanitizer + UndefinedBehaviorSanitizer and run
# the core tests under it; exit non-zero on any sanitizer report or test failure.
#
#   tests/sanitize.sh [extra pytest args]
#
# * Builds with PYOPTIM_SANITIZE=ON (CMake option PYOPTIM_SANITIZE, passed through
#   scikit-build-core) in its own build dir, $WORK/build, and installs the result
#   (a copy of the pyoptim package plus the sanitized _core*.so) into $WORK/site;
#   the in-tree pyoptim/_core*.so is never touched.  $WORK defaults to
#   build/sanitize in the checkout (override with PYOPTIM_SANITIZE_DIR).
# * Runs pytest with PYTHONPATH=$WORK/site (checked: pyoptim is imported from there
#   and its _core links libasan), LD_PRELOAD=<the compiler's libasan.so>,
#   ASAN_OPTIONS=detect_leaks=0 (CPython leaks by design) and
#   UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1.
# * Tests run: the core's tests (NumPy API, stateful API, bad input, properties,
#   state, determinism, concurrency); test_core.py and test_stateful.py compare
#   with keras.optimizers, so TensorFlow runs under the preloaded ASan runtime too
#   (it works: no reports from TF).  SANITIZE_TESTS overrides the list.
#   test_large.py is skipped unless SANITIZE_LARGE=1 (8 GiB under ASan).
# * Before the tests: tests/cross/sparse_fuzz.cpp (the TensorFlow op's sparse-gradient pass,
#   pyoptim/keras/_op/sparse_rows.hpp, with random index sets and block boundaries) built with
#   the same sanitizers and run; a mismatch or a report fails the run.
# * Environment: PYTHON (default: python3 on PATH), CXX (default: g++; must be the
#   compiler CMake uses, so that its libasan matches), SANITIZE_JOBS (build jobs).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
CXX_BIN="${CXX:-g++}"
WORK="${PYOPTIM_SANITIZE_DIR:-$ROOT/build/sanitize}"
BUILD="$WORK/build"
WHEELS="$WORK/wheels"
SITE="$WORK/site"
LOG="$WORK/pytest.log"
DEFAULT_TESTS="tests/test_core.py tests/test_stateful.py tests/test_bad_input.py tests/test_properties.py tests/test_state.py tests/test_determinism.py tests/test_concurrency.py tests/test_large.py tests/test_8bit.py"
TESTS="${SANITIZE_TESTS:-$DEFAULT_TESTS}"

start=$(date +%s)
mkdir -p "$WORK"
rm -rf "$WHEELS" "$SITE"

echo "== sanitize: building the core with PYOPTIM_SANITIZE=ON in $BUILD"
isolation=()
if "$PY" -c "import scikit_build_core, pybind11" 2>/dev/null; then
  isolation=(--no-build-isolation)  # use the environment's build tools: works offline
fi
PYOPTIM_SANITIZE=ON CMAKE_BUILD_PARALLEL_LEVEL="${SANITIZE_JOBS:-2}" \
  "$PY" -m pip wheel --no-deps "${isolation[@]}" -q \
  -C build-dir="$BUILD" -C cmake.define.CMAKE_CXX_COMPILER="$(command -v "$CXX_BIN")" \
  -w "$WHEELS" "$ROOT"
"$PY" -m pip install --no-deps --no-compile -q --target "$SITE" "$WHEELS"/pyoptim-*.whl
built=$(date +%s)

so=$(ls "$SITE"/pyoptim/_core*.so)
if ! readelf -d "$so" | grep -q 'libasan'; then
  echo "sanitize: $so is not linked with libasan (was PYOPTIM_SANITIZE ignored?)" >&2
  exit 2
fi
libasan="$("$CXX_BIN" -print-file-name=libasan.so)"
if [ ! -e "$libasan" ]; then
  echo "sanitize: $CXX_BIN -print-file-name=libasan.so gave '$libasan', which does not exist" >&2
  exit 2
fi

echo "== sanitize: the op's sparse-gradient pass (tests/cross/sparse_fuzz.cpp) under the sanitizers"
"$CXX_BIN" -std=c++17 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
  -ffp-contract=off -fno-math-errno -fopenmp-simd -I"$ROOT/csrc" -I"$ROOT/pyoptim/keras/_op" \
  "$ROOT/tests/cross/sparse_fuzz.cpp" -o "$WORK/sparse_fuzz"
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  "$WORK/sparse_fuzz" 1000

export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
# libstdc++ is preloaded too: CPython does not link it, and ASan resolves the real
# __cxa_throw for its interceptor at start-up ("CHECK failed: ... real___cxa_throw"
# on the first C++ exception otherwise).
libstdcxx="$(readlink -f "$("$CXX_BIN" -print-file-name=libstdc++.so)")"
export LD_PRELOAD="$libasan:$libstdcxx"
# pytest runs with --capture=sys: the sanitizers write to file descriptor 2,
# which then reaches the log directly (with fd capture, a report that halts the
# process vanishes with the captured output).  ASan also writes its reports to
# files (log_path, per process, subprocesses included); UBSan's runtime, loaded
# with the module, ignores log_path, so its reports are found in the log.
REPORTS="$WORK/reports"
rm -rf "$REPORTS" && mkdir -p "$REPORTS"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:log_path=$REPORTS/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$REPORTS/ubsan"
export TF_CPP_MIN_LOG_LEVEL=2
if [ "${SANITIZE_LARGE:-0}" != "1" ]; then
  export PYOPTIM_SKIP_LARGE_TESTS=1
fi

# Run from $WORK, not the checkout: python -c / -m put the current directory first
# on sys.path, and the checkout's pyoptim/ would shadow $SITE's.
cd "$WORK"
where=$("$PY" -c "import pyoptim, pyoptim._core as c; print(c.__file__)")
case "$where" in
  "$SITE"/*) ;;
  *) echo "sanitize: pyoptim._core imported from $where, not from $SITE" >&2; exit 2 ;;
esac
echo "== sanitize: running under LD_PRELOAD=$LD_PRELOAD with $where"

abs_tests=()
for t in $TESTS; do abs_tests+=("$ROOT/$t"); done
set +e
"$PY" -m pytest -q -p no:cacheprovider --capture=sys --rootdir="$ROOT" "${abs_tests[@]}" "$@" 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
set -e
end=$(date +%s)

pattern='ERROR: AddressSanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer|ERROR: LeakSanitizer'
reports=$(cat "$LOG" "$REPORTS"/* 2>/dev/null | grep -cE "$pattern" || true)
echo "== sanitize: build $((built - start)) s, tests $((end - built)) s, pytest exit $status, sanitizer report lines $reports"
if [ "$reports" != "0" ] || compgen -G "$REPORTS/*" > /dev/null; then
  echo "sanitize: sanitizer reports (in $LOG and $REPORTS):" >&2
  for f in "$REPORTS"/*; do [ -e "$f" ] && { echo "--- $f" >&2; head -40 "$f" >&2; }; done
  exit 1
fi
exit "$status"
