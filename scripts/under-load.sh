#!/usr/bin/env bash
# Runs a command while every host CPU is kept busy by Debian's stress-ng (one CPU worker per online
# CPU, 100 % load), so the tests show that guest observations hold on a loaded host: a wait on a guest
# must be bounded by the guest's own progress, never by a wall-clock guess. The load goes when the
# command ends, however it ends; the command's exit status is passed through.
#
#   scripts/under-load.sh npx mocha test/guest/guest.test.ts
#
# Without MEMHP_TEST_UNDER_LOAD=1 (or with it 0) the command runs as it is; .ci/run sets it.
set -euo pipefail
if [ "${MEMHP_TEST_UNDER_LOAD:-0}" = 0 ]; then exec "$@"; fi
if ! command -v stress-ng >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends stress-ng >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends stress-ng >/dev/null; }
  else
    echo "under-load: stress-ng is missing; install it with: sudo apt-get install stress-ng" >&2
    exit 2
  fi
fi
cpus=$(nproc)
# Its own session, so one kill ends stress-ng and all its workers.
setsid stress-ng --cpu "$cpus" --cpu-load 100 --timeout 0 --quiet &
load=$!
trap 'kill -TERM -- -"$load" 2>/dev/null; wait "$load" 2>/dev/null || true' EXIT
echo "under-load: stress-ng keeps all $cpus CPUs busy (pid $load)" >&2
status=0
"$@" || status=$?
exit "$status"
