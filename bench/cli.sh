#!/usr/bin/env bash
# Wall time of the release-gate flow as a person runs it, in two processes:
# `fleet run release-gate` (to the gate) and `fleet approve` (to completion),
# on the builtin model and embedded SQLite. Prints per-iteration medians.
#
#   bash bench/cli.sh [ITERATIONS]      (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-30}
cargo build --release -q -p fleet-cli
bin=$PWD/target/release/fleet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" init "$work/p" >/dev/null
export FLEET_USER=dev@example.com

ns() { date +%s%N; }
runs=(); approves=(); totals=()
for i in $(seq 1 $((n + 3))); do
  t0=$(ns)
  "$bin" -C "$work/p" run release-gate --json >"$work/run.json"
  t1=$(ns)
  id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$work/run.json")
  t1b=$(ns)
  "$bin" -C "$work/p" approve "$id" --as release-owner@example.com >/dev/null 2>&1
  t2=$(ns)
  if [ "$i" -gt 3 ]; then # the first few warm the page cache
    runs+=($(( (t1 - t0) / 1000 ))); approves+=($(( (t2 - t1b) / 1000 ))); totals+=($(( (t1 - t0 + t2 - t1b) / 1000 )))
  fi
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf 'fleet run (to the gate):      median %6.1f ms\n' "$(echo "$(median "${runs[@]}") / 1000" | bc -l)"
printf 'fleet approve (to the end):   median %6.1f ms\n' "$(echo "$(median "${approves[@]}") / 1000" | bc -l)"
printf 'both processes together:      median %6.1f ms  (%d iterations)\n' "$(echo "$(median "${totals[@]}") / 1000" | bc -l)" "$n"
