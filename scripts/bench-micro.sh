#!/bin/sh
# The Go micro-benchmarks of docs/benchmarks.md: the hot paths (control
# message parse/encode, the control channel's receive path, PPP frame
# handling, RADIUS request build, the data plane, socket batching) with
# allocations. Writes $BENCH_DIR/micro.txt (go test's output) and
# $BENCH_DIR/micro.md (the page's table).
#
#   scripts/bench-micro.sh                    # -benchtime 1s
#   BENCH_MICRO_TIME=200ms scripts/bench-micro.sh
set -eu
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-build/bench}
BENCH_MICRO_TIME=${BENCH_MICRO_TIME:-1s}
BENCH_MICRO_PKGS=${BENCH_MICRO_PKGS:-"./l2tp/... ./ppp/... ./pppsession/... ./pool/... ./auth/... ./dataplane/... ./internal/udpbatch/..."}
mkdir -p "$BENCH_DIR"
# shellcheck disable=SC2086
go test -run '^$' -bench . -benchmem -benchtime "$BENCH_MICRO_TIME" $BENCH_MICRO_PKGS | tee "$BENCH_DIR/micro.txt"
mod=$(go list -m)
{
	echo "Commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%d), \`BENCH_MICRO_TIME=$BENCH_MICRO_TIME scripts/bench-micro.sh\`"
	echo
	echo "| package | benchmark | ns/op | B/op | allocs/op | other |"
	echo "|---|---|---:|---:|---:|---|"
	awk -v mod="$mod/" '
		/^pkg: / { pkg = $2; sub(mod, "", pkg); next }
		/^Benchmark/ {
			name = $1; sub(/-[0-9]+$/, "", name)
			ns = ""; bop = ""; aop = ""; other = ""
			for (i = 3; i < NF; i += 2) {
				v = $i; u = $(i + 1)
				if (u == "ns/op") ns = v
				else if (u == "B/op") bop = v
				else if (u == "allocs/op") aop = v
				else other = other (other == "" ? "" : ", ") v " " u
			}
			printf "| %s | %s | %s | %s | %s | %s |\n", pkg, name, ns, bop, aop, other
		}' "$BENCH_DIR/micro.txt"
} >"$BENCH_DIR/micro.md"
cat "$BENCH_DIR/micro.md"
