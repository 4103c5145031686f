#!/bin/sh
# Helpers of the benchmark scripts (sourced, not run): two network
# namespaces joined by a veth pair (the LNS under test in one, l2tpbench in
# the other), FreeRADIUS on the LNS side's loopback with users
# user0..user(N-1), our l2tpd and l2tpns. Needs root, iproute2, freeradius,
# l2tpns. Everything lives under $BENCH_DIR and in namespaces it creates
# (NS_LNS, NS_LAC: set both, and BENCH_DIR, to run two benches at once).

BENCH_DIR=${BENCH_DIR:-build/bench}
BENCH_L2TPD_ENV=${BENCH_L2TPD_ENV:-}
NS_LNS=${NS_LNS:-l2tpbench-lns}
NS_LAC=${NS_LAC:-l2tpbench-lac}
LNS_IP=10.201.0.1
LAC_IP=10.201.0.2
RADIUS_SECRET=bench-radius-secret
PASSWORD=pw

bench_log() { echo "bench: $*" >&2; }

# bench_netns: (re)create the two namespaces and the veth between them.
bench_netns() {
	ip netns del "$NS_LNS" 2>/dev/null || true
	ip netns del "$NS_LAC" 2>/dev/null || true
	ip netns add "$NS_LNS"
	ip netns add "$NS_LAC"
	# Created inside the namespaces: two runs with other NS_LNS/NS_LAC
	# (and BENCH_DIR) can run side by side.
	ip link add bl-lns netns "$NS_LNS" type veth peer name bl-lac netns "$NS_LAC"
	ip -n "$NS_LNS" addr add "$LNS_IP/24" dev bl-lns
	ip -n "$NS_LAC" addr add "$LAC_IP/24" dev bl-lac
	for ns in "$NS_LNS" "$NS_LAC"; do
		ip -n "$ns" link set lo up
	done
	ip -n "$NS_LNS" link set bl-lns up
	ip -n "$NS_LAC" link set bl-lac up
}

bench_cleanup() {
	[ -n "$LNS_PID" ] && kill "$LNS_PID" 2>/dev/null
	[ -n "$RADIUS_PID" ] && kill "$RADIUS_PID" 2>/dev/null
	sleep 1
	ip netns del "$NS_LNS" 2>/dev/null || true
	ip netns del "$NS_LAC" 2>/dev/null || true
	LNS_PID= RADIUS_PID=
}

# bench_freeradius N: FreeRADIUS on 127.0.0.1:1812/1813 in the LNS
# namespace with users user0..user(N-1), password $PASSWORD.
bench_freeradius() {
	n=$1
	d=$(realpath "$BENCH_DIR")/radius
	rm -rf "$d"
	mkdir -p "$d/log" "$d/run"
	cp -rL /etc/freeradius/3.0 "$d/raddb"
	rm -f "$d/raddb/sites-enabled/inner-tunnel"
	sed -i -e "s|^logdir = .*|logdir = $d/log|" -e "s|^run_dir = .*|run_dir = $d/run|" \
		-e '/^\s*user = freerad$/d' -e '/^\s*group = freerad$/d' "$d/raddb/radiusd.conf"
	sed -i -e 's/ipaddr = \*/ipaddr = 127.0.0.1/' -e 's/ipv6addr = ::/ipaddr = 127.0.0.2/' "$d/raddb/sites-enabled/default"
	printf 'client lns {\n\tipaddr = 127.0.0.1\n\tsecret = %s\n}\n' "$RADIUS_SECRET" >"$d/raddb/clients.conf"
	awk -v n="$n" -v pw="$PASSWORD" 'BEGIN { for (i = 0; i < n; i++) printf "user%d Cleartext-Password := \"%s\"\n", i, pw }' \
		>"$d/raddb/mods-config/files/authorize"
	setsid ip netns exec "$NS_LNS" freeradius -f -d "$d/raddb" >"$d/log/stdout" 2>&1 &
	RADIUS_PID=$!
	i=0
	until ip netns exec "$NS_LNS" ss -uln | grep -q '127.0.0.1:1812'; do
		i=$((i + 1))
		[ $i -gt 100 ] && { bench_log "FreeRADIUS did not start"; cat "$d/log/stdout" >&2; return 1; }
		sleep 0.2
	done
}

# bench_l2tpd_config N AUTH: our LNS config (userspace data path); AUTH is
# "local" (N [[subscriber]]s) or "radius" (the FreeRADIUS above).
bench_l2tpd_config() {
	n=$1
	cat <<H
dataplane = "userspace"
# One thread for our Go code: l2tpbench keeps the other of this machine's
# two cores busy (docs/benchmarks.md, "Threads", has the default, every
# CPU, side by side). BENCH_THREADS overrides it (0: the default).
threads = ${BENCH_THREADS:-1}
host_name = "l2tpd-bench"
log_level = "warn"
[l2tp]
listen = ["$LNS_IP:1701"]
accept_unknown_peers = true
# no admission limit (the default max_sessions is 50,000): the bench
# measures the server, up to 100,000 sessions
max_sessions = 0
[[pool]]
name = "bench"
ranges = ["10.128.0.0/14"]
gateway = "10.128.0.1"
[ppp]
ip_pool = "bench"
auth = ["chap", "mschapv2", "pap"]
ipv6 = "deny"
# the DNS servers l2tpns is given below: the subscribers ask for both
dns1 = "10.0.0.1"
dns2 = "10.0.0.2"
H
	if [ "$2" = radius ]; then
		cat <<H
authenticator = "radius"
[radius]
nas_identifier = "l2tpd-bench"
nas_ip_address = "127.0.0.1"
spool_dir = "$(realpath "$BENCH_DIR")/spool"
[[radius.server]]
address = "127.0.0.1"
auth_port = 1812
acct_port = 1813
secret = "$RADIUS_SECRET"
require_message_authenticator = false
H
	else
		awk -v n="$n" -v pw="$PASSWORD" 'BEGIN { for (i = 0; i < n; i++) printf "[[subscriber]]\nname = \"user%d\"\npassword = \"%s\"\n", i, pw }'
	fi
}

# bench_l2tpd BIN N AUTH: start our LNS in the LNS namespace, with the
# variables of BENCH_L2TPD_ENV (NAME=VALUE ..., none by default) in its
# environment; sets LNS_PID.
bench_l2tpd() {
	mkdir -p "$BENCH_DIR/spool"
	bench_l2tpd_config "$2" "$3" >"$BENCH_DIR/l2tpd.toml"
	# shellcheck disable=SC2086
	setsid ip netns exec "$NS_LNS" env $BENCH_L2TPD_ENV "$1" --config "$BENCH_DIR/l2tpd.toml" >"$BENCH_DIR/l2tpd.log" 2>&1 &
	LNS_PID=$!
	i=0
	until ip netns exec "$NS_LNS" ss -uln | grep -q "$LNS_IP:1701"; do
		i=$((i + 1))
		[ $i -gt 200 ] && { bench_log "l2tpd did not start"; cat "$BENCH_DIR/l2tpd.log" >&2; return 1; }
		sleep 0.1
	done
}

# bench_l2tpns: start l2tpns (RADIUS above) in the LNS namespace with its
# pool file bind-mounted over /etc/l2tpns/ip_pool in a private mount
# namespace, and wait until it is the cluster master (it ignores L2TP
# before). Sets LNS_PID.
bench_l2tpns() {
	d=$(realpath "$BENCH_DIR")/l2tpns
	rm -rf "$d"
	mkdir -p "$d"
	echo "10.128.0.0/14" >"$d/ip_pool"
	cat >"$d/startup-config" <<H
set debug 1
set log_file "$d/l2tpns.log"
set pid_file "$d/l2tpns.pid"
set bind_address $LNS_IP
set cluster_interface bl-lns
set primary_radius 127.0.0.1
set radius_secret "$RADIUS_SECRET"
set radius_accounting yes
set radius_authtypes "chap"
set primary_dns 10.0.0.1
set secondary_dns 10.0.0.2
set cli_bind_address 127.0.0.1
set ppp_keepalive yes
H
	setsid unshare -m sh -c "mount --make-rprivate / && mount --bind '$d/ip_pool' /etc/l2tpns/ip_pool && exec ip netns exec '$NS_LNS' l2tpns -c '$d/startup-config'" \
		>"$d/stdout" 2>&1 &
	LNS_PID=$!
	i=0
	until grep -qi 'master' "$d/l2tpns.log" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 600 ] && { bench_log "l2tpns did not become cluster master"; cat "$d/stdout" "$d/l2tpns.log" >&2; return 1; }
		sleep 0.1
	done
	sleep 1
	# The pid that burns the CPU: l2tpns itself (unshare and ip exec into it).
	LNS_PID=$(pgrep -n -x l2tpns)
}

bench_stop_lns() {
	[ -n "$LNS_PID" ] || return 0
	kill "$LNS_PID" 2>/dev/null
	i=0
	while kill -0 "$LNS_PID" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 100 ] && { kill -9 "$LNS_PID" 2>/dev/null; break; }
		sleep 0.1
	done
	LNS_PID=
}

# bench_run NAME ARGS...: run l2tpbench in the LAC namespace against the
# LNS, with --target-pid; JSON and CSV under $BENCH_DIR/NAME.*
bench_run() {
	name=$1
	shift
	bench_log "$name: l2tpbench $*"
	ip netns exec "$NS_LAC" "$BENCH_BIN" --target "$LNS_IP:1701" --password "$PASSWORD" --target-pid "$LNS_PID" \
		--json "$BENCH_DIR/$name.json" --csv "$BENCH_DIR/$name.csv" --quiet "$@" >"$BENCH_DIR/$name.txt" 2>&1
	rc=$?
	cat "$BENCH_DIR/$name.txt" >&2
	echo "l2tpbench --target $LNS_IP:1701 --password $PASSWORD --target-pid PID $*" >"$BENCH_DIR/$name.cmd"
	return $rc
}
