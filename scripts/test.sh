#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds three ways and runs every test.
#   1. Debug build          unit tests, lab tests (real mosquitto, coturn, netns + NAT)
#   2. ASan+UBSan build     unit tests, lab tests
#   3. clang libFuzzer      each fuzz target for a fixed short time
#   4. Debian package       built in a copy of the tree, installed, checked, purged
#                           (scripts/package.sh)
# Every build here has -Werror (BL_WERROR); a distribution's build does not.
# Ends with one line "N passed, N failed"; exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

bash scripts/deps.sh || { echo "dependency install failed"; echo "0 passed, 1 failed"; exit 1; }

JOBS=$(nproc)
PASSED=0
FAILED=0
FAILED_NAMES=()

# Run one ctest invocation and add its counts to the totals.
run_ctest() { # label build-dir ctest-args...
  local label=$1 dir=$2; shift 2
  local out; out=$(mktemp)
  echo "=== $label ==="
  (cd "$dir" && ctest --output-on-failure "$@") 2>&1 | tee "$out"
  local line total failed
  line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$out" | tail -1)
  if [[ -z $line ]]; then
    if grep -q "No tests were found" "$out"; then rm -f "$out"; return; fi
    FAILED=$((FAILED + 1)); FAILED_NAMES+=("$label: ctest did not run"); rm -f "$out"; return
  fi
  total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
  failed=$(sed -E 's/.*, ([0-9]+) tests? failed.*/\1/' <<<"$line")
  PASSED=$((PASSED + total - failed))
  FAILED=$((FAILED + failed))
  while read -r t; do FAILED_NAMES+=("$label: $t"); done < <(grep -E "^\s+[0-9]+ - " "$out" | sed 's/^ *//')
  rm -f "$out"
}

build() { # dir cmake-args...
  local dir=$1; shift
  cmake -S "$ROOT" -B "$dir" -DBL_WERROR=ON "$@" >/dev/null && cmake --build "$dir" -j"$JOBS" 2>&1 | grep -vE "^\[|^-- " || true
  [[ -x $dir/brokerless ]]
}

if build build -DCMAKE_BUILD_TYPE=Debug; then
  run_ctest "debug: unit" build -L unit -j"$JOBS"
  run_ctest "debug: lab" build -L lab
else
  FAILED=$((FAILED + 1)); FAILED_NAMES+=("debug build")
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if build build-asan -DCMAKE_BUILD_TYPE=Debug -DBL_SANITIZE=ON; then
  run_ctest "asan: unit" build-asan -L unit -j"$JOBS"
  if [[ ${BL_SKIP_ASAN_LAB:-0} != 1 ]]; then
    run_ctest "asan: lab" build-asan -L lab
  fi
else
  FAILED=$((FAILED + 1)); FAILED_NAMES+=("asan build")
fi

if CC=clang build build-fuzz -DCMAKE_BUILD_TYPE=Debug -DBL_FUZZ=ON -DBL_SANITIZE=ON; then
  run_ctest "fuzz" build-fuzz -L fuzz
else
  FAILED=$((FAILED + 1)); FAILED_NAMES+=("fuzz build")
fi

echo "=== package ==="
pkg_out=$(bash scripts/package.sh 2>&1)
echo "$pkg_out"
pkg_line=$(grep -E "^[0-9]+ passed, [0-9]+ failed$" <<<"$pkg_out" | tail -1)
if [[ -n $pkg_line ]]; then
  PASSED=$((PASSED + ${pkg_line%% passed*}))
  pkg_failed=$(sed -E 's/.* ([0-9]+) failed/\1/' <<<"$pkg_line")
  FAILED=$((FAILED + pkg_failed))
  ((pkg_failed == 0)) || FAILED_NAMES+=("package: $pkg_failed checks")
else
  FAILED=$((FAILED + 1)); FAILED_NAMES+=("package: did not run")
fi

echo
for n in "${FAILED_NAMES[@]}"; do echo "FAILED: $n"; done
echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
