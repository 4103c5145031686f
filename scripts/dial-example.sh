#!/bin/sh
# Dial the LNS that `make run` starts (packaging/l2tpd.toml, listening on
# 127.0.0.1:1701) from this machine, as subscriber bob, with a second l2tpd
# acting as LAC in its own network namespace; then ping the LNS's end of the
# subscriber link through the tunnel. Needs root, iproute2 and nftables.
#
#   make run                        # terminal 1
#   sudo scripts/dial-example.sh    # terminal 2 (Ctrl-C hangs up)
#
# The namespace reaches the LNS's loopback address through a veth pair and
# a DNAT rule (route_localnet lets 127.0.0.1 be routed from the veth).
set -eu
NS=l2tpd-lac
BIN=${BIN:-$(dirname "$0")/../bin/l2tpd}
USER=${DIAL_USER:-bob}
PASS=${DIAL_PASSWORD:-bob-password}
METHOD=${DIAL_AUTH:-chap}
DIR=$(mktemp -d)

cleanup() {
	[ -n "${LAC_PID:-}" ] && kill "$LAC_PID" 2>/dev/null && wait "$LAC_PID" 2>/dev/null || true
	nft delete table ip l2tpd_dial 2>/dev/null || true
	ip link del l2tpd-dial0 2>/dev/null || true
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

ip netns add "$NS"
ip link add l2tpd-dial0 type veth peer name eth0 netns "$NS"
ip addr add 10.201.0.1/30 dev l2tpd-dial0
ip link set l2tpd-dial0 up
sysctl -qw net.ipv4.conf.l2tpd-dial0.route_localnet=1
ip -n "$NS" addr add 10.201.0.2/30 dev eth0
ip -n "$NS" link set eth0 up
ip -n "$NS" link set lo up
nft -f - <<NFT
table ip l2tpd_dial {
	chain pre {
		type nat hook prerouting priority dstnat;
		iifname "l2tpd-dial0" udp dport 1701 dnat to 127.0.0.1:1701
	}
	chain post {
		type nat hook postrouting priority srcnat;
		oifname "l2tpd-dial0" ip saddr 127.0.0.1 masquerade
	}
}
NFT

cat > "$DIR/lac.toml" <<TOML
dataplane = "userspace"
host_name = "dial-example"
[l2tp]
listen = []
[ppp]
ipv6 = "deny"
[[lac]]
name = "example"
lns = "10.201.0.1:1701"
sessions = 1
username = "$USER"
password = "$PASS"
auth = ["$METHOD"]
TOML

ip netns exec "$NS" "$BIN" --config "$DIR/lac.toml" >"$DIR/lac.log" 2>&1 &
LAC_PID=$!
echo "LAC started in namespace $NS (log: $DIR/lac.log); waiting for PPP..."
i=0
until grep -q 'subscriber up' "$DIR/lac.log"; do
	i=$((i + 1))
	if [ $i -gt 30 ] || ! kill -0 "$LAC_PID" 2>/dev/null; then
		echo "no session after 30s; LAC log:"; cat "$DIR/lac.log"; exit 1
	fi
	sleep 1
done
grep 'subscriber up' "$DIR/lac.log"
GW=$(sed -n 's/.*"lns_address": "\([0-9.]*\)".*/\1/p' "$DIR/lac.log" | head -n1)
echo "pinging the LNS ($GW) through the tunnel:"
if command -v ping >/dev/null; then
	ip netns exec "$NS" ping -c 3 -W 2 "$GW"
else
	# No ping binary: one ICMP echo with python3's raw socket.
	ip netns exec "$NS" python3 - "$GW" <<'PY'
import socket, struct, sys
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
hdr = struct.pack("!BBHHH", 8, 0, 0, 0x4c32, 1) + b"l2tpd-dial-example"
pkt = hdr[:2] + struct.pack("!H", csum(hdr)) + hdr[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(3)
s.sendto(pkt, (sys.argv[1], 0))
while True:
    data, addr = s.recvfrom(1500)
    ihl = (data[0] & 15) * 4
    if addr[0] == sys.argv[1] and data[ihl] == 0:
        print("echo reply from", addr[0]); break
PY
fi
echo "connected; Ctrl-C hangs up"
wait "$LAC_PID"
