#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t mqueue mqueue /dev/mqueue 2>/dev/null
mount -t tmpfs -o mode=755 run /run
mount -t tmpfs -o mode=1777 tmp /tmp
# host folders shared by qemu (virtio-9p, tag dcshareN) at the paths they have on the host, so that
# bind mounts of them work as on a native engine (see shares.py; the same as the Docker guest's)
for a in $(cat /proc/cmdline); do
  case "$a" in dc.share=*)
    s="${a#dc.share=}"; tag="${s%%:*}"; dir="${s#*:}"
    if mkdir -p "$dir" && mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none "$tag" "$dir" 2>/dev/null
    then echo "dockercourse: shared $dir"
    else echo "dockercourse: cannot share $dir (this kernel has no 9p file system: DOCKERCOURSE_VM_KERNEL_PKG=linux-image-amd64)"
    fi;;
  esac
done
if mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup; then
  for c in cpuset cpu io memory pids hugetlb misc rdma; do
    grep -qw "$c" /sys/fs/cgroup/cgroup.controllers && echo "+$c" 2>/dev/null > /sys/fs/cgroup/cgroup.subtree_control
  done
  mkdir -p /sys/fs/cgroup/engine && echo $$ > /sys/fs/cgroup/engine/cgroup.procs
  echo "dockercourse: cgroup v2 ($(cat /sys/fs/cgroup/cgroup.subtree_control))"
else
  echo "dockercourse: cannot mount cgroup2 (podman needs it here)"
fi
hostname dockercourse-vm
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo 1 > /proc/sys/net/ipv4/ip_forward
echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet
echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet
mirror=""
for a in $(cat /proc/cmdline); do
  case "$a" in dc.mirror=*) mirror="${a#dc.mirror=}";; esac
done
{
  echo 'table ip dockercourse {'
  # published ports: a new connection qemu delivers from the host (10.0.2.2 -> 10.0.2.15:P)
  # is readdressed to 127.0.0.1:P after conntrack saw it and before NAT, so netavark's DNAT
  # (for 127.0.0.1:P and 0.0.0.0:P bindings alike) takes it to the container; conntrack
  # keeps 10.0.2.15:P as the original address, so replies leave with it
  echo '  chain dc_pre { type filter hook prerouting priority -150; policy accept;'
  echo '    iifname "eth0" ip saddr 10.0.2.2 ip daddr 10.0.2.15 ct state new tcp dport != 2375 ip daddr set 127.0.0.1'
  echo '    iifname "eth0" ip saddr 10.0.2.2 ip daddr 10.0.2.15 ct state new meta l4proto udp ip daddr set 127.0.0.1'
  echo '  }'
  if [ -n "$mirror" ]; then
    # the host's mirror at the same address as on the host: 127.0.0.1:PORT -> 10.0.2.2:PORT
    echo '  chain dc_out { type nat hook output priority -100; policy accept;'
    echo "    ip daddr 127.0.0.1 tcp dport $mirror dnat to 10.0.2.2:$mirror"
    echo '  }'
    echo '  chain dc_masq { type nat hook postrouting priority 100; policy accept;'
    echo '    oifname "eth0" ip saddr 127.0.0.1 masquerade'
    echo '  }'
  fi
  echo '}'
} > /run/dockercourse.nft
nft -f /run/dockercourse.nft || echo "dockercourse: nft rules failed"
if [ -n "$mirror" ]; then
  cat > /etc/containers/registries.conf.d/99-dockercourse-mirror.conf <<EOF
[[registry]]
prefix = "docker.io"
location = "registry-1.docker.io"

[[registry.mirror]]
location = "127.0.0.1:$mirror"
insecure = true
EOF
fi
mkdir -p /var/log /run/containers /var/lib/containers
echo "dockercourse: starting podman"
# the engine's own temporary files stay in the guest, also when the host's /tmp is shared at /tmp (9p)
mkdir -p /run/engine-tmp
# Docker treats registries on 127.0.0.0/8 as insecure (plain HTTP) by default; Podman needs them listed.
# The chapters' own registries run on 127.0.0.1:<free port>; a prefix without a port matches every port.
mkdir -p /etc/containers/registries.conf.d
cat > /etc/containers/registries.conf.d/98-dockercourse-loopback.conf <<EOF
[[registry]]
location = "127.0.0.1"
insecure = true

[[registry]]
location = "localhost"
insecure = true
EOF
# the service, started again if it ends (with its last words on the console, where the host can read them)
supervise_podman() {
  while :; do
    TMPDIR=/run/engine-tmp podman system service --time=0 tcp://0.0.0.0:2375 > /var/log/podman.log 2>&1
    rc=$?
    [ -e /run/dockercourse-halting ] && return
    echo "dockercourse: podman ended ($rc), starting it again; its last lines and the kernel's:"
    tail -n 20 /var/log/podman.log; dmesg | tail -n 10
    sleep 1
  done
}
supervise_podman &
halt_engine() {
  echo "dockercourse: halting"
  : > /run/dockercourse-halting
  for c in $(podman ps -q 2>/dev/null); do podman stop -t 2 "$c" >/dev/null 2>&1; done
  kill -TERM $(pidof podman) 2>/dev/null
  i=0
  while pidof podman >/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  sync
  mount -o remount,ro / 2>/dev/null
  sync
  echo "dockercourse: halted"
  echo o > /proc/sysrq-trigger
}
trap halt_engine TERM
( i=0; while [ $i -lt 1200 ]; do
    if ss -ltn 2>/dev/null | grep -q ':2375 '; then echo "dockercourse: engine ready"; exit 0; fi
    if ! pidof podman >/dev/null; then echo "dockercourse: engine died:"; tail -n 20 /var/log/podman.log; exit 1; fi
    sleep 0.1; i=$((i+1)); done ) &
if [ -e /dev/hvc0 ]; then
  while read -r cmd < /dev/hvc0; do
    case "$cmd" in
      halt) halt_engine;;
      log) tail -n 40 /var/log/podman.log;;
    esac
  done
fi
while :; do sleep 3600; done
