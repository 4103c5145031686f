#!/bin/sh
# Installs the Debian packages the test suite needs, when missing.
set -e
need=""
check() { command -v "$1" >/dev/null 2>&1 || need="$need $2"; }
check xl2tpd xl2tpd
check pppd ppp
check nft nftables
check ip iproute2
check tshark tshark
[ -n "$need" ] || exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing packages:$need (run as root to install them)" >&2
	exit 1
fi
echo "installing:$need"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq $need >/dev/null
