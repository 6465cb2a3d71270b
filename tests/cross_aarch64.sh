#!/usr/bin/env bash
# pyoptim's C++ on aarch64 (AWS Graviton, Ampere, Apple silicon under Linux), checked from an
# x86-64 machine with Debian's cross compiler and qemu-user:
#
#   1. the core (csrc/: kernels, dispatch, validation, bindings) compiles for aarch64 with the
#      baseline kernels and no x86 flag (CMakeLists.txt builds only those there);
#   2. the TensorFlow op (pyoptim/keras/_op) compiles for aarch64 against TensorFlow's headers
#      with no instruction-set flag (what pyoptim.keras' build runs on such a CPU);
#   3. tests/cross/kernel_bits.cpp, linked with the core's kernels, gives the same bits for
#      every optimizer variant (float32/64, float16/bfloat16 params; one and two threads) on
#      aarch64 under qemu-user as on this machine under each instruction set it runs;
#   4. tests/cross/sparse_fuzz.cpp: the op's sparse-gradient pass on aarch64 under qemu-user
#      equals a scalar transcription of Keras' semantics for random index sets.
#
#   tests/cross_aarch64.sh          # needs: aarch64-linux-gnu-g++ and qemu-aarch64
#                                   # (apt-get install g++-aarch64-linux-gnu qemu-user)
#
# Environment: PYTHON (a Python with pybind11, numpy and, for step 2, tensorflow; default
# python3), CXX (host compiler, default g++), CXX_AARCH64, QEMU_AARCH64.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
HOST_CXX="${CXX:-g++}"
A64_CXX="${CXX_AARCH64:-aarch64-linux-gnu-g++}"
QEMU="${QEMU_AARCH64:-qemu-aarch64}"
for tool in "$A64_CXX" "$QEMU"; do
  command -v "$tool" > /dev/null || {
    echo "cross_aarch64: $tool not found (apt-get install g++-aarch64-linux-gnu qemu-user)" >&2
    exit 2
  }
done
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2> /dev/null || true; rm -rf "$WORK"' EXIT
start=$SECONDS

# The kernel flags of CMakeLists.txt (PYOPTIM_KERNEL_FLAGS) and its per-ISA flags on x86-64,
# read from its set(PYOPTIM_ISA_FLAGS_<isa> ...) lines.
read -r -a CMAKE_KERNEL_FLAGS < <(sed -n 's/^set(PYOPTIM_KERNEL_FLAGS \(.*\))$/\1/p' "$ROOT/CMakeLists.txt")
[ "${#CMAKE_KERNEL_FLAGS[@]}" -gt 0 ] || { echo "cross_aarch64: cannot read PYOPTIM_KERNEL_FLAGS of CMakeLists.txt" >&2; exit 2; }
KERNEL_FLAGS=(-std=c++17 "${CMAKE_KERNEL_FLAGS[@]}" -fopenmp)
declare -A ISA_FLAGS=()
while read -r isa flags; do
  ISA_FLAGS[$isa]="${flags//\"/}"
done < <(sed -n 's/^set(PYOPTIM_ISA_FLAGS_\([a-z][a-z0-9]*\) *\(.*\))$/\1 \2/p' "$ROOT/CMakeLists.txt")
[ "${#ISA_FLAGS[@]}" -eq 3 ] || { echo "cross_aarch64: cannot read the ISA flags of CMakeLists.txt" >&2; exit 2; }

echo "== cross_aarch64: $("$A64_CXX" --version | head -1)"

# The x86-64 side of step 3 (a kernels object per instruction set, then kernel_bits) and step 4's
# aarch64 build compile in the background while steps 1 to 3 compile the aarch64 core and op:
# each compiler is single-threaded, so the two lanes keep both cores of a two-core machine busy.
background_builds() {
  local isa objects=()
  for isa in baseline avx2 avx512; do
    # shellcheck disable=SC2086
    "$HOST_CXX" "${KERNEL_FLAGS[@]}" ${ISA_FLAGS[$isa]} -DPYOPTIM_ISA=$isa -I"$ROOT/csrc" \
      -c "$ROOT/csrc/kernels_isa.cpp" -o "$WORK/host_$isa.o"
    objects+=("$WORK/host_$isa.o")
  done
  "$HOST_CXX" "${KERNEL_FLAGS[@]}" -DPYOPTIM_HAVE_AVX2 -DPYOPTIM_HAVE_AVX512 -I"$ROOT/csrc" \
    "$ROOT/tests/cross/kernel_bits.cpp" "$ROOT/csrc/dispatch.cpp" "${objects[@]}" \
    -o "$WORK/kernel_bits_host"
  "$A64_CXX" -std=c++17 -O2 -ffp-contract=off -fno-math-errno -fopenmp-simd -static -I"$ROOT/csrc" \
    -I"$ROOT/pyoptim/keras/_op" "$ROOT/tests/cross/sparse_fuzz.cpp" -o "$WORK/sparse_fuzz_a64"
}
background_builds > "$WORK/background.log" 2>&1 &
background_pid=$!

echo "== 1. the core's C++ for aarch64 (baseline kernels, no x86 flag)"
PY_INC=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
PB_INC=$("$PY" -c "import pybind11; print(pybind11.get_include())")
NP_INC=$("$PY" -c "import numpy; print(numpy.get_include())")
"$A64_CXX" "${KERNEL_FLAGS[@]}" -DPYOPTIM_ISA=baseline -I"$ROOT/csrc" \
  -c "$ROOT/csrc/kernels_isa.cpp" -o "$WORK/a64_kernels.o"
"$A64_CXX" -std=c++17 -O2 -ffp-contract=off -I"$ROOT/csrc" \
  -c "$ROOT/csrc/dispatch.cpp" -o "$WORK/a64_dispatch.o"
# The bindings need Python's, pybind11's and NumPy's headers; this machine's are x86-64's, which
# agree with aarch64 Linux on every type size (LP64), so they serve a full compile to an object.
for src in validate module; do
  "$A64_CXX" -std=c++17 -O2 -ffp-contract=off -fopenmp -fPIC -I"$ROOT/csrc" -I"$PY_INC" \
    -I"$PB_INC" -I"$NP_INC" -DPYOPTIM_COMPILER='"cross"' -DPYOPTIM_KERNEL_FLAGS='"cross"' -DPYOPTIM_ISA_FLAGS='"baseline="' \
    -c "$ROOT/csrc/$src.cpp" -o "$WORK/a64_$src.o"
done
file "$WORK"/a64_*.o | sed "s|$WORK/||"
if "$A64_CXX" -dM -E -x c++ /dev/null | grep -q "__x86_64__"; then
  echo "cross_aarch64: $A64_CXX defines __x86_64__" >&2
  exit 1
fi

echo "== 2. the TensorFlow op for aarch64 (TensorFlow's headers, no instruction-set flag)"
if TF_FLAGS=$("$PY" -c "import tensorflow as tf; print(' '.join(tf.sysconfig.get_compile_flags()))" 2> /dev/null); then
  # shellcheck disable=SC2086
  "$A64_CXX" -std=c++17 "${CMAKE_KERNEL_FLAGS[@]}" -fPIC -w \
    -DPYOPTIM_ISA=pyoptim_tf_baseline -I"$ROOT/csrc" $TF_FLAGS \
    -c "$ROOT/pyoptim/keras/_op/pyoptim_tf_ops.cc" -o "$WORK/a64_op.o"
  file "$WORK/a64_op.o" | sed "s|$WORK/||"
else
  echo "cross_aarch64: $PY cannot import tensorflow (pip install '.[keras]')" >&2
  exit 2
fi

echo "== 3. the kernels' bits: x86-64 (each instruction set this CPU runs) against aarch64 (qemu)"
# Static, so qemu-user needs no aarch64 libraries (the linker's note that libgomp's OpenACC
# profiling could dlopen is irrelevant here and kept out of the log).
"$A64_CXX" "${KERNEL_FLAGS[@]}" -static -I"$ROOT/csrc" "$ROOT/tests/cross/kernel_bits.cpp" \
  "$WORK/a64_kernels.o" "$WORK/a64_dispatch.o" -o "$WORK/kernel_bits_a64" 2> "$WORK/link.log" \
  || { cat "$WORK/link.log" >&2; exit 1; }
wait "$background_pid" || {
  echo "cross_aarch64: the background builds (host kernels and kernel_bits, aarch64 sparse_fuzz) failed:" >&2
  cat "$WORK/background.log" >&2
  exit 1
}

OMP_NUM_THREADS=2 "$QEMU" "$WORK/kernel_bits_a64" > "$WORK/aarch64.txt"
lines=$(wc -l < "$WORK/aarch64.txt")
status=0
if [ "$lines" -lt 64 ] || grep -q "THREADS-DIFFER" "$WORK/aarch64.txt"; then
  echo "cross_aarch64: aarch64 run incomplete or thread-dependent:" >&2
  cat "$WORK/aarch64.txt" >&2
  status=1
fi
for isa in $("$WORK/kernel_bits_host" --list); do
  OMP_NUM_THREADS=2 "$WORK/kernel_bits_host" "$isa" > "$WORK/x86_$isa.txt"
  if cmp -s "$WORK/x86_$isa.txt" "$WORK/aarch64.txt"; then
    echo "x86-64 $isa = aarch64 baseline: $lines variants, same bits" \
         "($(grep -vc ' nan=0' "$WORK/aarch64.txt") of them with NaNs, in the same places)"
  else
    echo "cross_aarch64: x86-64 $isa and aarch64 differ:" >&2
    diff "$WORK/x86_$isa.txt" "$WORK/aarch64.txt" >&2 || true
    status=1
  fi
done

echo "== 4. the op's sparse-gradient pass on aarch64 (qemu) against Keras' semantics (tests/cross/sparse_fuzz.cpp)"
if ! "$QEMU" "$WORK/sparse_fuzz_a64" 200; then
  echo "cross_aarch64: the sparse pass differs from Keras' semantics on aarch64" >&2
  status=1
fi
echo "== cross_aarch64: $((SECONDS - start)) s, exit $status"
exit "$status"
