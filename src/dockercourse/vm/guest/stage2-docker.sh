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
# bind mounts of them work as on a native engine (see shares.py)
for a in $(cat /proc/cmdline); do
  case "$a" in dc.share=*)
    s="${a#dc.share=}"; tag="${s%%:*}"; dir="${s#*:}"
    if mkdir -p "$dir" && mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none "$tag" "$dir" 2>/dev/null
    then echo "dockercourse: shared $dir"
    else echo "dockercourse: cannot share $dir (this kernel has no 9p file system: DOCKERCOURSE_VM_KERNEL_PKG=linux-image-amd64)"
    fi;;
  esac
done
# mutual TLS on the API (tls.py): the engine's certificate, key and the authority that signed the
# client's, shared read-only by qemu; without them the engine does not start (it never falls back
# to an API anyone on the host could use)
tls=""
for a in $(cat /proc/cmdline); do
  case "$a" in dc.tls=*)
    s="${a#dc.tls=}"; tag="${s%%:*}"; tls="${s#*:}"
    mkdir -p "$tls" && mount -t 9p -o ro,trans=virtio,version=9p2000.L,cache=none "$tag" "$tls" 2>/dev/null;;
  esac
done
if [ -n "$tls" ] && ! [ -s "$tls/server-key.pem" ]; then
  echo "dockercourse: no TLS files in $tls (this kernel has no 9p file system?): not starting the engine"
  while :; do sleep 3600; done
fi
cgroup=v2
for a in $(cat /proc/cmdline); do
  case "$a" in dc.cgroup=v1) cgroup=v1;; esac
done
# cgroup v2 (the unified hierarchy, as on current distributions and Docker Desktop), its
# controllers enabled for child groups so dockerd can apply limits; else cgroup v1
if [ "$cgroup" = v2 ] && mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup 2>/dev/null; then
  for c in cpuset cpu io memory pids hugetlb misc rdma; do
    grep -qw "$c" /sys/fs/cgroup/cgroup.controllers && echo "+$c" 2>/dev/null > /sys/fs/cgroup/cgroup.subtree_control
  done
  # the engine in a group of its own, as under systemd (dockerd then finds memory.swap.max)
  mkdir -p /sys/fs/cgroup/engine && echo $$ > /sys/fs/cgroup/engine/cgroup.procs
  echo "dockercourse: cgroup v2 ($(cat /sys/fs/cgroup/cgroup.subtree_control))"
else
  mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
  for c in cpuset cpu,cpuacct blkio memory devices freezer net_cls,net_prio perf_event hugetlb pids; do
    mkdir -p /sys/fs/cgroup/$c
    mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c 2>/dev/null || rmdir /sys/fs/cgroup/$c
  done
  for pair in cpu:cpu,cpuacct cpuacct:cpu,cpuacct net_cls:net_cls,net_prio net_prio:net_cls,net_prio; do
    [ -d /sys/fs/cgroup/${pair#*:} ] && ln -s ${pair#*:} /sys/fs/cgroup/${pair%%:*}
  done
  echo "dockercourse: cgroup v1"
fi
hostname dockercourse-vm
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo 1 > /proc/sys/net/ipv4/ip_forward
# published ports: qemu forwards the host's 127.0.0.1:P to 10.0.2.15:P (from 10.0.2.2, see
# portfwd.py); deliver those to the guest's 127.0.0.1:P, where docker-proxy listens for every
# binding (127.0.0.1:P as well as 0.0.0.0:P). The API port stays as it is.
echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet
iptables -t nat -A PREROUTING -i eth0 -s 10.0.2.2 -d 10.0.2.15 -p tcp -m tcp ! --dport 2375 -j DNAT --to-destination 127.0.0.1
iptables -t nat -A PREROUTING -i eth0 -s 10.0.2.2 -d 10.0.2.15 -p udp -j DNAT --to-destination 127.0.0.1
mirror=""
for a in $(cat /proc/cmdline); do
  case "$a" in dc.mirror=*) mirror="${a#dc.mirror=}";; esac
done
# the image store and storage driver are in /etc/docker/daemon.json (engine.daemon_config)
if [ -n "$tls" ]; then
  set -- --host tcp://0.0.0.0:2375 --tlsverify --tlscacert "$tls/ca.pem" \
    --tlscert "$tls/server-cert.pem" --tlskey "$tls/server-key.pem"
else
  set -- --host tcp://0.0.0.0:2375 --tls=false
fi
set -- "$@" --iptables=true --data-root /var/lib/docker --exec-root /run/docker --pidfile /run/docker.pid
if [ -n "$mirror" ]; then
  # the host's mirror at the same address as on the host: 127.0.0.1:PORT -> 10.0.2.2:PORT
  iptables -t nat -A OUTPUT -d 127.0.0.1/32 -p tcp --dport "$mirror" -j DNAT --to-destination "10.0.2.2:$mirror"
  iptables -t nat -A POSTROUTING -s 127.0.0.1/32 -o eth0 -j MASQUERADE
  set -- "$@" --registry-mirror "http://127.0.0.1:$mirror"
fi
mkdir -p /var/log
# The engine's own temporary files stay in the guest: with the host's /tmp shared at /tmp (9p), runc's
# console sockets (`docker run -t`) could not be made there ("bind: no such device or address").
# containerd and its shims inherit TMPDIR from dockerd.
mkdir -p /run/engine-tmp
echo "dockercourse: starting dockerd"
TMPDIR=/run/engine-tmp dockerd "$@" > /var/log/dockerd.log 2>&1 &
halt_engine() {
  echo "dockercourse: halting"
  kill -TERM $(pidof dockerd) 2>/dev/null
  i=0
  while pidof dockerd >/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
  kill -TERM $(pidof containerd) 2>/dev/null
  sleep 0.5
  sync
  mount -o remount,ro / 2>/dev/null
  sync
  echo "dockercourse: halted"
  poweroff -f
}
trap halt_engine TERM
( i=0; while [ $i -lt 600 ]; do
    if grep -q "API listen on" /var/log/dockerd.log 2>/dev/null; then echo "dockercourse: engine ready"; exit 0; fi
    if ! pidof dockerd >/dev/null; then echo "dockercourse: dockerd died:"; tail -n 20 /var/log/dockerd.log; exit 1; fi
    sleep 0.1; i=$((i+1)); done ) &
if [ -e /dev/hvc0 ]; then
  while read -r cmd < /dev/hvc0; do
    case "$cmd" in
      halt) halt_engine;;
      log) tail -n 40 /var/log/dockerd.log;;
    esac
  done
fi
while :; do sleep 3600; done
