#!/bin/sh
# Compares two l2tpd binaries (or one binary under two environments) on
# the same load, run after run alternately, in one script run: the way
# docs/benchmarks.md measures a change whose effect is smaller than the
# spread between two `make bench` runs (this machine's speed varies by the
# hour; alternating runs share it). Each run starts the LNS afresh, sets
# up the sessions with l2tpbench (built from this tree, the same for both
# sides) and stops the LNS. Prints one line per run and the median, lowest
# and highest CPU per setup of each side; writes them to
# $BENCH_DIR/ab.txt.
#
#   go build -o /tmp/before/l2tpd ./cmd/l2tpd     # at the commit before
#   go build -o /tmp/after/l2tpd ./cmd/l2tpd      # at the change
#   scripts/bench-ab.sh /tmp/before/l2tpd /tmp/after/l2tpd
#   BENCH_AB_ENV_B=GOMAXPROCS=1 scripts/bench-ab.sh bin/l2tpd bin/l2tpd
#
# BENCH_AB_RUNS (12) runs of each; BENCH_AB_SIZE sessions:tunnels
# (20000:50); BENCH_AB_AUTH local or radius (FreeRADIUS as in
# scripts/bench-all.sh); BENCH_AB_ENV_A, BENCH_AB_ENV_B: variables for
# each side's l2tpd (NAME=VALUE, space-separated); BENCH_AB_THREADS_A,
# BENCH_AB_THREADS_B: each side's `threads` (default BENCH_THREADS, else
# 1, as in scripts/bench-lib.sh); BENCH_AB_ARGS: more l2tpbench arguments
# (with --hold, each line also gives the LNS's CPU while holding, in % of
# one core, and the p99 setup latency of the last thousand sessions over
# that of the first, and the summary their medians). Needs root.
#
#   BENCH_AB_SIZE=100000:100 BENCH_AB_ARGS="--hold 60s" BENCH_AB_RUNS=3 \
#     scripts/bench-ab.sh /tmp/before/l2tpd /tmp/after/l2tpd
#
#   BENCH_AB_THREADS_B=0 scripts/bench-ab.sh bin/l2tpd bin/l2tpd  # threads = 1 against 0
#   BENCH_AB_AUTH=radius scripts/bench-ab.sh bin/l2tpd l2tpns     # ours against l2tpns
#
# A side given as the word l2tpns runs Debian's l2tpns as in
# scripts/bench-all.sh (RADIUS; with BENCH_AB_AUTH=radius).
set -eu
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
[ $# -eq 2 ] || { echo "usage: scripts/bench-ab.sh L2TPD_A L2TPD_B" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "bench: needs root (network namespaces)" >&2; exit 1; }
side_bin() { if [ "$1" = l2tpns ]; then echo l2tpns; else realpath "$1"; fi; }
A=$(side_bin "$1")
B=$(side_bin "$2")
BENCH_AB_RUNS=${BENCH_AB_RUNS:-12}
BENCH_AB_SIZE=${BENCH_AB_SIZE:-20000:50}
BENCH_AB_AUTH=${BENCH_AB_AUTH:-local}
BENCH_AB_ENV_A=${BENCH_AB_ENV_A:-}
BENCH_AB_ENV_B=${BENCH_AB_ENV_B:-}
BENCH_AB_THREADS_A=${BENCH_AB_THREADS_A:-${BENCH_THREADS:-1}}
BENCH_AB_THREADS_B=${BENCH_AB_THREADS_B:-${BENCH_THREADS:-1}}
BENCH_AB_ARGS=${BENCH_AB_ARGS:-}
LNS_PID= RADIUS_PID=
n=${BENCH_AB_SIZE%%:*}
t=${BENCH_AB_SIZE##*:}
mkdir -p "$BENCH_DIR"
go build -o "$BENCH_DIR/l2tpbench" ./cmd/l2tpbench
BENCH_BIN=$(realpath "$BENCH_DIR/l2tpbench")
trap bench_cleanup EXIT
trap 'exit 1' INT TERM
bench_netns
[ "$BENCH_AB_AUTH" = radius ] && bench_freeradius "$n"

# field NAME FILE: the first number after "NAME": in l2tpbench's JSON.
field() { sed -n "s/.*\"$1\": *\([0-9.]*\).*/\1/p" "$2" | head -n 1; }
# p99 OBJECT FILE: p99_ns of the JSON object OBJECT (one level deep).
p99() { sed -n "/\"$1\": {/,/}/s/.*\"p99_ns\": *\([0-9]*\).*/\1/p" "$2" | head -n 1; }
# held FILE: "held-CPU-% last/first-p99" when the run held its sessions.
held() {
	h=$(field target_hold_cpu_percent "$1")
	[ -n "$h" ] || return 0
	awk -v h="$h" -v f="$(p99 session_setup_first_1000 "$1")" -v l="$(p99 session_setup_last_1000 "$1")" \
		'BEGIN { printf " %.2f %.2f", h, (f > 0 ? l / f : 0) }'
}

out="$BENCH_DIR/ab.txt"
: >"$out"
run=1
while [ "$run" -le "$BENCH_AB_RUNS" ]; do
	for side in A B; do
		if [ $side = A ]; then
			bin=$A BENCH_L2TPD_ENV=$BENCH_AB_ENV_A BENCH_THREADS=$BENCH_AB_THREADS_A
		else
			bin=$B BENCH_L2TPD_ENV=$BENCH_AB_ENV_B BENCH_THREADS=$BENCH_AB_THREADS_B
		fi
		if [ "$bin" = l2tpns ]; then
			bench_l2tpns || exit 1
		else
			bench_l2tpd "$bin" "$n" "$BENCH_AB_AUTH" || exit 1
		fi
		# shellcheck disable=SC2086
		bench_run "ab-$side" --tunnels "$t" --sessions "$n" --in-flight 100 --auth chap \
			--setup-timeout 60s --timeout 10m $BENCH_AB_ARGS 2>/dev/null || true
		bench_stop_lns
		j="$BENCH_DIR/ab-$side.json"
		echo "$side $run $(field target_cpu_per_setup_ns "$j") $(field sessions_up "$j") $(field setup_rate_per_s "$j")$(held "$j")" | tee -a "$out"
	done
	run=$((run + 1))
done
runs="$BENCH_DIR/ab-runs.txt"
cp "$out" "$runs"
# stats SIDE COLUMN: how many of SIDE's runs have COLUMN, and its median,
# lowest and highest over them.
stats() {
	awk -v s="$1" -v c="$2" '$1 == s && $c != "" { print $c }' "$runs" | sort -n |
		awk '{ v[NR] = $1 } END { if (NR) print NR, v[int((NR + 1) / 2)], v[1], v[NR] }'
}
echo "side runs median_ns lowest_ns highest_ns (target CPU per setup)" | tee -a "$out"
for side in A B; do
	r=$(stats $side 3)
	[ -z "$r" ] || echo "$side $r" | tee -a "$out"
done
if [ -n "$(stats A 6)$(stats B 6)" ]; then
	echo "side runs median lowest highest (held CPU, % of one core; then last/first thousand p99)" | tee -a "$out"
	for side in A B; do
		for col in 6 7; do
			r=$(stats $side $col)
			[ -z "$r" ] || echo "$side $r" | tee -a "$out"
		done
	done
fi
