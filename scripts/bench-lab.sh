#!/bin/sh
# The lab-VM benchmarks of docs/benchmarks.md (issue 7): in ONE boot of the
# lab VM (lab/, a real kernel under qemu), one after the other with the same
# l2tpbench load (CHAP, users user0..userN-1, password pw):
#   (a) our l2tpd, dataplane = "kernel", local subscribers, max_sessions = 0;
#   (b) xl2tpd 1.3 + one pppd 2.4 per session (require-chap, ms-dns, local ip
#       and ip range), CPU and RSS summed over xl2tpd and every pppd
#       (lab/benchlab/cmd/groupmeter samples /proc every 250 ms in the VM).
# Results: $BENCH_DIR/lab/*.json (one per run, with .csv, .txt, .cmd,
# .group.csv), $BENCH_DIR/lab/results.md (l2tpbench's table, the ratios and
# the exact commands). Needs root, qemu and the lab (shared LAB.md), xl2tpd
# and ppp. Every l2tpbench run has --timeout, the VM a timeout.
#
#   scripts/bench-lab.sh                              # ours 200:2 and 1000:10, xl2tpd 200:2
#   BENCH_LAB_OURS=200:2 BENCH_LAB_XL2TPD=200:2 scripts/bench-lab.sh
#   BENCH_LAB_CAPTURE=1 scripts/bench-lab.sh         # pcap of our runs (stragglers)
#   BENCH_LAB_PROFILE=15s scripts/bench-lab.sh       # Go CPU profile of our l2tpd in each of
#                                  our runs (NAME.cpu.pb.gz; go tool pprof bin/l2tpd FILE)
#   BENCH_LAB_THREADS=1 scripts/bench-lab.sh         # our l2tpd with threads = 1 (default:
#                                  the key not set, l2tpd's default)
#   BENCH_LAB_REV=HEAD scripts/bench-lab.sh          # build l2tpd and l2tpbench from a
#                                  commit (git archive) instead of the work tree
set -eu
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-build/bench}
BENCH_LAB_OURS=${BENCH_LAB_OURS-"200:2,1000:10"}
BENCH_LAB_XL2TPD=${BENCH_LAB_XL2TPD-"200:2"}
BENCH_LAB_INFLIGHT=${BENCH_LAB_INFLIGHT:-20}
BENCH_LAB_CAPTURE=${BENCH_LAB_CAPTURE:-0}
BENCH_LAB_PROFILE=${BENCH_LAB_PROFILE:-0}
BENCH_LAB_THREADS=${BENCH_LAB_THREADS:-0}
[ "$(id -u)" = 0 ] || { echo "bench-lab: needs root" >&2; exit 1; }
out="$BENCH_DIR/lab"
mkdir -p "$out/bin"
src=.
if [ -n "${BENCH_LAB_REV:-}" ]; then
	src="$out/src"
	rm -rf "$src"
	mkdir -p "$src"
	git archive "$BENCH_LAB_REV" | tar -x -C "$src"
	echo "bench-lab: l2tpd and l2tpbench from $(git rev-parse --short "$BENCH_LAB_REV")" >&2
fi
bin=$(realpath "$out/bin")
for p in l2tpd l2tpbench; do
	(cd "$src" && CGO_ENABLED=0 go build -o "$bin/$p" "./cmd/$p")
done
CGO_ENABLED=0 go build -o "$out/bin/groupmeter" ./lab/benchlab/cmd/groupmeter
go build -o "$out/bin/benchlab" ./lab/benchlab/cmd/benchlab
capture=
[ "$BENCH_LAB_CAPTURE" = 1 ] && capture=-capture
profile=
[ "$BENCH_LAB_PROFILE" != 0 ] && profile="-profile $BENCH_LAB_PROFILE"
set -x
"$out/bin/benchlab" -dir "$out" -l2tpd "$out/bin/l2tpd" -l2tpbench "$out/bin/l2tpbench" \
	-groupmeter "$out/bin/groupmeter" -ours "$BENCH_LAB_OURS" -xl2tpd "$BENCH_LAB_XL2TPD" \
	-in-flight "$BENCH_LAB_INFLIGHT" -threads "$BENCH_LAB_THREADS" $capture $profile
