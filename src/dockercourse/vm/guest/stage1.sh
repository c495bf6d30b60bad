#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
echo "dockercourse: stage1"
for m in $(cat /modules.order); do insmod /lib/dcmod/$m.ko 2>/dev/null; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
mkdir -p /newroot
if ! mount -t ext4 -o rw,noatime /dev/vda /newroot; then
  echo "dockercourse: cannot mount the system disk /dev/vda"; poweroff -f
fi
umount /dev 2>/dev/null; umount /sys; umount /proc
exec switch_root /newroot /sbin/engine-init
