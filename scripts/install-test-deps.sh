#!/bin/sh
# Installs the Debian packages the test suite needs, when missing, so that
# `make test` passes on a fresh Debian machine. Run as root.
set -e
need=""
has() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
check() { has "$1" || need="$need $2"; }
check xl2tpd xl2tpd
check pppd ppp
check nft nftables
check ip iproute2
check tshark tshark
check ping iputils-ping
check qemu-system-x86_64 qemu-system-x86
check busybox busybox-static
check modprobe kmod
check freeradius freeradius
check radclient freeradius-utils
check rpm rpm
check l2tpns l2tpns
check systemd-analyze systemd
ls /boot/vmlinuz-* >/dev/null 2>&1 || need="$need linux-image-amd64"
[ -n "$need" ] || exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing packages:$need (run as root, or: sudo apt-get install$need)" >&2
	exit 1
fi
echo "installing:$need"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $need >/dev/null
# Debian starts services on install; the tests run their own instances.
for s in xl2tpd freeradius l2tpns; do
	systemctl disable --now "$s" >/dev/null 2>&1 || true
done
