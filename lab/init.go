package lab

// initScript is /init in the initramfs (busybox sh). It loads the modules
// listed in /modules.order, mounts the host's root file system (9p tag
// "hostroot") read-only under an overlay whose upper layer is tmpfs, mounts
// proc, sys, dev, devpts, /run and /tmp in it, mounts the run directory
// (9p tag "labdir") read-write at the same path as on the host, and
// switch_roots into the overlay to run /run/lab-stage2 with the host's bash.
//
// Kernel command line parameters read from /proc/cmdline:
//
//	lab.dir=PATH    host directory shared read-write (same path inside)
//	lab.nonce=HEX   marker prefix, so script output cannot forge a result
//	lab.hang=1      hang before mounting anything (tests of the boot watchdog)
//
// It reports LAB:<nonce>:init on the console first, so that a boot that
// hangs can be told to have reached /init or not.
const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
nonce=none
dir=
hang=
for w in $(cat /proc/cmdline); do
	case "$w" in
	lab.nonce=*) nonce="${w#lab.nonce=}" ;;
	lab.dir=*) dir="${w#lab.dir=}" ;;
	lab.hang=1) hang=1 ;;
	esac
done
echo "LAB:$nonce:init"
if [ -n "$hang" ]; then
	while :; do sleep 3600; done
fi
fail() {
	echo
	echo "LAB:$nonce:initfail:$*"
	echo o > /proc/sysrq-trigger
	sleep 60 2>/dev/null
}
for m in $(cat /modules.order); do
	insmod "/lib/modules/$m" || fail "insmod $m"
done
mkdir -p /lower /upper /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /lower || fail "mount hostroot"
mount -t tmpfs -o mode=0755 tmpfs /upper || fail "mount tmpfs upper"
mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot || fail "mount overlay"
mount -t proc proc /newroot/proc || fail "mount proc"
mount -t sysfs sysfs /newroot/sys || fail "mount sys"
mount -t devtmpfs devtmpfs /newroot/dev || fail "mount dev"
mkdir -p /newroot/dev/pts /newroot/dev/shm
ln -sf /proc/self/fd /newroot/dev/fd
ln -sf /proc/self/fd/0 /newroot/dev/stdin
ln -sf /proc/self/fd/1 /newroot/dev/stdout
ln -sf /proc/self/fd/2 /newroot/dev/stderr
mount -t devpts -o newinstance,ptmxmode=0666,gid=5,mode=620 devpts /newroot/dev/pts || fail "mount devpts"
mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm || fail "mount shm"
mount -t tmpfs -o mode=0755 tmpfs /newroot/run || fail "mount run"
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp || fail "mount tmp"
if [ -n "$dir" ]; then
	mkdir -p "/newroot$dir" || fail "mkdir $dir"
	mount -t 9p -o trans=virtio,version=9p2000.L,rw,msize=262144 labdir "/newroot$dir" || fail "mount labdir at $dir"
fi
cp /stage2 /newroot/run/lab-stage2 || fail "copy stage2"
umount /proc /sys /dev
exec switch_root /newroot /bin/bash /run/lab-stage2
`

// stage2Script runs as PID 1 inside the overlay root with the host's bash.
// It loads the requested modules with the host's modprobe, runs
// $LAB_DIR/.lab/script.sh, and reports on the console:
//
//	LAB:<nonce>:start                   the script is starting (boot done)
//	LAB:<nonce>:modprobe-failed:<rc>    modprobe of lab.modules failed
//	LAB:<nonce>:exit:<rc>               the script's exit status
//
// The exit status is also written to $LAB_DIR/.lab/exit. Then it powers off.
const stage2Script = `#!/bin/bash
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8
nonce=none dir=/ modules= stdin=/dev/null
for w in $(</proc/cmdline); do
	case "$w" in
	lab.nonce=*) nonce="${w#lab.nonce=}" ;;
	lab.dir=*) dir="${w#lab.dir=}" ;;
	lab.modules=*) modules="${w#lab.modules=}" ;;
	lab.stdin=console) stdin=/dev/console ;;
	esac
done
poweroff() {
	sync
	echo o > /proc/sysrq-trigger
	sleep 60 2>/dev/null
}
# Keep kernel messages off the console, except emergencies; they are saved
# to $LAB_DIR/.lab/dmesg.txt at the end.
echo 1 > /proc/sys/kernel/printk
hostname lab
ip link set lo up
if [ -n "$modules" ]; then
	modprobe -a ${modules//,/ }
	rc=$?
	if [ $rc -ne 0 ]; then
		echo
		echo "LAB:$nonce:modprobe-failed:$rc"
		poweroff
	fi
fi
export LAB_DIR="$dir"
cd "$dir"
echo "LAB:$nonce:start"
bash "$dir/.lab/script.sh" <"$stdin"
rc=$?
echo $rc > "$dir/.lab/exit"
dmesg > "$dir/.lab/dmesg.txt" 2>&1
sync
echo
echo "LAB:$nonce:exit:$rc"
poweroff
`
