#!/bin/sh
# Runs every native fuzz target (func FuzzXxx) for a short time each.
#
# A target fails the run when go test reports a failure AND wrote a
# reproducer under testdata/fuzz/<target>. Go 1.26's fuzz coordinator can
# report "context deadline exceeded" when -fuzztime expires while a worker
# is mid-execution (golang/go#75804, fixed in Go 1.27): no input failed and
# none is written; that case is reported and tolerated, anything else fails.
set -e
t=${1:-10s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
flakes=0
count=0
for dir in $(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./build/' | xargs -n1 dirname | sort -u); do
	for f in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do
		count=$((count + 1))
		corpus="$dir/testdata/fuzz/$f"
		before=$(ls "$corpus" 2>/dev/null | wc -l)
		echo "fuzz $dir $f ($t)"
		if go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$dir" >"$log" 2>&1; then
			continue
		fi
		after=$(ls "$corpus" 2>/dev/null | wc -l)
		if [ "$after" = "$before" ] && grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
			echo "  $f: fuzz coordinator deadline race (golang/go#75804), no failing input: tolerated"
			flakes=$((flakes + 1))
			continue
		fi
		cat "$log"
		echo "fuzz: $f in $dir found a failing input (see above and $corpus)"
		exit 1
	done
done
echo "fuzz: $count targets ran without a crash ($flakes coordinator deadline races tolerated)"
