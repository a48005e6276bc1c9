#!/bin/bash
# onexen xenlab dom0 startup, run once by busybox init (sysinit).
#
# Everything that differs between lab hosts (hostname, SSH host key, authorized keys, the peer
# host's address and key) comes from the config drive `xenlab up` attached (ext4, label
# XENLABCFG). Without it sshd is not started: dom0 never makes up a host key of its own.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "xenlab-rc [$(cut -d" " -f1 /proc/uptime 2>/dev/null)s]: $*"; }

mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mountpoint -q /dev/pts || mount -t devpts -o gid=5,mode=620 devpts /dev/pts
# udev would make these; without them Xen's hotplug locking (locking.sh: stat -L /dev/stdin)
# spins until libxl kills `block add`, and every file-backed disk fails to attach.
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
mountpoint -q /dev/shm || mount -t tmpfs tmpfs /dev/shm
mountpoint -q /run || mount -t tmpfs -o mode=755 tmpfs /run
mount -o remount,rw /
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /run/lock /run/sshd /run/xen /var/log/xen/console /var/lib/xen
say "dom0 userspace started"

# in parallel: each modprobe takes seconds of emulated CPU
for m in virtio_net xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-blkback xen-netback \
         bridge loop tun; do
    { modprobe "$m" 2>/dev/null || say "modprobe $m failed"; } &
done
wait
say "modules loaded"

# ---- per-host configuration from the config drive
CFG=/run/xenlab-cfg
mkdir -p "$CFG"
dev=$(blkid -L XENLABCFG 2>/dev/null || true)
if [ -z "$dev" ] || ! mount -o ro "$dev" "$CFG"; then
    say "XENLAB-DOM0-NOCONFIG: no config drive (label XENLABCFG); sshd not started"
    exit 0
fi
name=$(cat "$CFG/hostname")
hostname "$name"
echo "$name" > /etc/hostname
{ echo "127.0.0.1 localhost"; echo "127.0.1.1 $name"; cat "$CFG/hosts"; } > /etc/hosts
install -m 600 "$CFG/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
install -m 644 "$CFG/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub
install -m 644 "$CFG/ssh_known_hosts" /etc/ssh/ssh_known_hosts
for user in root oneadmin; do
    home=$(getent passwd "$user" | cut -d: -f6)
    group=$(id -gn "$user")
    install -d -m 700 -o "$user" -g "$group" "$home/.ssh"
    install -m 600 -o "$user" -g "$group" "$CFG/authorized_keys" "$home/.ssh/authorized_keys"
    # the lab's dom0-to-dom0 key, for `xl migrate` over ssh between lab hosts
    install -m 600 -o "$user" -g "$group" "$CFG/peer_ed25519" "$home/.ssh/id_ed25519"
    install -m 644 -o "$user" -g "$group" "$CFG/peer_ed25519.pub" "$home/.ssh/id_ed25519.pub"
done
link=$(cat "$CFG/link_address" 2>/dev/null || true)
umount "$CFG"
say "configured as $name from the config drive"

# ---- network: eth0 is QEMU's user network (ssh from outside only, no default route),
# eth1 the link to the other lab host, xenbr0 an isolated bridge for guest NICs.
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
if [ -n "$link" ] && [ -e /sys/class/net/eth1 ]; then
    ip link set eth1 up
    ip addr add "$link" dev eth1
fi
ip link add xenbr0 type bridge
ip addr add 10.77.0.1/24 dev xenbr0
ip link set xenbr0 up

# ---- Xen daemons (xenstored, xenconsoled, the qdisk qemu) through Debian's init script
/etc/init.d/xen start || say "/etc/init.d/xen start failed"
say "xen daemons started"
chmod 755 /var/log/xen /var/log/xen/console

/usr/sbin/sshd -E /var/log/sshd.log || say "sshd failed"
say "XENLAB-DOM0-READY $name"
