#!/usr/bin/env bash
# Builds the addon with AddressSanitizer + UndefinedBehaviorSanitizer into a scratch directory and runs
# the native tests against that build. Any sanitizer report aborts the run (and fails this script).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/memhp-asan.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$root/binding.gyp" "$work/"
ln -s "$root/native" "$work/native"
ln -s "$root/node_modules" "$work/node_modules"
echo "sanitize: building the addon with -fsanitize=address,undefined"
# Build against the same Node headers npm uses for the normal build (npm's nodedir setting, if any).
nodedir=${npm_config_nodedir:-$(cd "$root" && npm config get nodedir 2>/dev/null || true)}
gypargs=()
[ -n "$nodedir" ] && [ "$nodedir" != "undefined" ] && [ "$nodedir" != "null" ] && gypargs+=("--nodedir=$nodedir")
(cd "$work" && "$root/node_modules/.bin/node-gyp" rebuild "${gypargs[@]}" -- -Dsanitize=1 >"$work/build.log" 2>&1) || { cat "$work/build.log"; exit 1; }
mod="$work/build/Release/memhp.node"
# Make sure the module really is instrumented (a silent fallback to a plain build would prove nothing).
libs=$(ldd "$mod")  # captured first: `ldd | grep -q` can die of SIGPIPE under pipefail
for lib in libasan libubsan; do
  [[ $libs == *"$lib"* ]] || { echo "sanitize: $mod is not linked against $lib" >&2; exit 1; }
done
asan=$(gcc -print-file-name=libasan.so)
echo "sanitize: running the native tests with $asan preloaded"
cd "$root"
# Node itself leaks by design at exit, so leak detection is off; every other report is fatal.
MEMHP_NATIVE="$mod" \
LD_PRELOAD="$asan" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  node --import tsx node_modules/mocha/bin/mocha.js --no-config --extension ts --timeout 120000 'test/native/**/*.test.ts'
