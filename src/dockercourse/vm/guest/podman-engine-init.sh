#!/bin/sh
exec /usr/libexec/podman/catatonit -- /usr/lib/dockercourse/init.sh
