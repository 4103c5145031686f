#!/bin/sh
# Runs the load benchmarks of docs/benchmarks.md on this machine and writes
# the tables to $BENCH_DIR/results.md (JSON, CSV and text of every run next
# to it). Needs root, iproute2, freeradius and l2tpns (make deps installs
# them). Every run is bounded (--timeout) and its traffic stays inside two
# namespaces this script creates.
#
#   scripts/bench-all.sh                 # setup-rate runs: ours (local, RADIUS) and l2tpns
#   BENCH_SIZES="1000:10" scripts/bench-all.sh
#   BENCH_REPEAT=1                      # each setup-rate run once (default 3: the
#                                  tables take the run with the median CPU per setup)
#   BENCH_OVERLOAD_TARGETS=""           # skips the overload runs: every session of
#                                  BENCH_OVERLOAD (sessions:tunnels, default 20000:50) asked for
#                                  at once, the emulator's Hellos every second; setups must slow
#                                  down, not fail, and no Hello may go unanswered
#   BENCH_100K=1 BENCH_HOLD=300s scripts/bench-all.sh   # adds the 100,000-session runs
#                                  (BENCH_100K_TARGETS, default ours-local, ours-radius and l2tpns;
#                                  each bounded by BENCH_100K_TIMEOUT, default 20m)
set -eu
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
BENCH_SIZES=${BENCH_SIZES-"1000:10 10000:50 20000:50"}
BENCH_REPEAT=${BENCH_REPEAT:-3}
BENCH_INFLIGHT=${BENCH_INFLIGHT:-100}
BENCH_AUTH=${BENCH_AUTH:-chap}
BENCH_HOLD=${BENCH_HOLD:-300s}
BENCH_100K=${BENCH_100K:-0}
BENCH_100K_TARGETS=${BENCH_100K_TARGETS-"ours-local ours-radius l2tpns"}
BENCH_100K_TIMEOUT=${BENCH_100K_TIMEOUT:-20m}
BENCH_TARGETS=${BENCH_TARGETS-"ours-local ours-radius l2tpns"}
BENCH_OVERLOAD=${BENCH_OVERLOAD:-20000:50}
BENCH_OVERLOAD_TARGETS=${BENCH_OVERLOAD_TARGETS-"ours-local ours-radius l2tpns"}
[ "$(id -u)" = 0 ] || { echo "bench: needs root (network namespaces)" >&2; exit 1; }
mkdir -p "$BENCH_DIR"
go build -o "$BENCH_DIR/l2tpd" ./cmd/l2tpd
go build -o "$BENCH_DIR/l2tpbench" ./cmd/l2tpbench
BENCH_BIN=$(realpath "$BENCH_DIR/l2tpbench")
trap bench_cleanup EXIT
trap 'exit 1' INT TERM

max_users=0
for s in $BENCH_SIZES; do
	n=${s%%:*}
	[ "$n" -gt "$max_users" ] && max_users=$n
done
if [ -n "$BENCH_OVERLOAD_TARGETS" ] && [ "${BENCH_OVERLOAD%%:*}" -gt "$max_users" ]; then
	max_users=${BENCH_OVERLOAD%%:*}
fi
[ "$BENCH_100K" = 1 ] && max_users=100000

runs=""
seen=""
bench_netns
bench_freeradius "$max_users"
# The setup-rate runs, BENCH_REPEAT rounds of every target and size (one
# round after the other, so that the machine's drift reaches every target
# alike): a table row is the run with the median CPU per setup, and the
# repeats table lists them all. The later rounds' files are NAME.rK.*.
round=1
while [ "$round" -le "$BENCH_REPEAT" ]; do
	for target in $BENCH_TARGETS; do
		for s in $BENCH_SIZES; do
			n=${s%%:*}
			t=${s##*:}
			name="$target-$n"
			file=$name
			[ "$round" -gt 1 ] && file="$name.r$round"
			case $target in
			ours-local) bench_l2tpd "$BENCH_DIR/l2tpd" "$n" local ;;
			ours-radius) bench_l2tpd "$BENCH_DIR/l2tpd" "$n" radius ;;
			l2tpns) bench_l2tpns ;;
			esac
			entry="$name=$BENCH_DIR/$file.json" # before bench_run, which sets name
			bench_run "$file" --tunnels "$t" --sessions "$n" --in-flight "$BENCH_INFLIGHT" --auth "$BENCH_AUTH" \
				--setup-timeout 60s --timeout 10m || true
			bench_stop_lns
			runs="$runs $entry"
		done
	done
	round=$((round + 1))
done

for target in $BENCH_OVERLOAD_TARGETS; do
	n=${BENCH_OVERLOAD%%:*}
	t=${BENCH_OVERLOAD##*:}
	name="$target-overload-$n"
	case $target in
	ours-local) bench_l2tpd "$BENCH_DIR/l2tpd" "$n" local ;;
	ours-radius) bench_l2tpd "$BENCH_DIR/l2tpd" "$n" radius ;;
	l2tpns) bench_l2tpns ;;
	esac
	bench_run "$name" --tunnels "$t" --sessions "$n" --in-flight "$n" --hello 1s --auth "$BENCH_AUTH" \
		--setup-timeout 120s --timeout 10m || true
	bench_stop_lns
	runs="$runs $name=$BENCH_DIR/$name.json"
done

if [ "$BENCH_100K" = 1 ]; then
	ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
	for target in $BENCH_100K_TARGETS; do
		name="$target-100000"
		case $target in
		ours-local) bench_l2tpd "$BENCH_DIR/l2tpd" 100000 local ;;
		ours-radius) bench_l2tpd "$BENCH_DIR/l2tpd" 100000 radius ;;
		l2tpns) bench_l2tpns ;;
		esac
		bench_run "$name" --tunnels 100 --sessions 100000 --in-flight "$BENCH_INFLIGHT" --auth "$BENCH_AUTH" \
			--hold "$BENCH_HOLD" --setup-timeout 120s --interval 5s --timeout "$BENCH_100K_TIMEOUT" || true
		bench_stop_lns
		runs="$runs $name=$BENCH_DIR/$name.json"
	done
fi

{
	echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r); $(date -u +%Y-%m-%d)"
	echo "Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo
	# shellcheck disable=SC2086
	"$BENCH_BIN" table --against l2tpns $runs
	echo
	echo "Commands (run in namespace $NS_LAC against $LNS_IP:1701 in $NS_LNS):"
	echo
	for r in $runs; do
		n=${r%%=*}
		case " $seen " in *" $n "*) continue ;; esac
		seen="$seen $n"
		echo "- $n: \`$(cat "$BENCH_DIR/$n.cmd")\`"
	done
} >"$BENCH_DIR/results.md"
cat "$BENCH_DIR/results.md"
