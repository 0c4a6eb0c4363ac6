#!/bin/sh
# Debian's dynamically linked coreutils (glibc's ld.so, libc.so.6, and libselinux and
# libpcre2 for ls), run by busybox sh as init on Cadenza and on Debian's Linux kernel with the
# same initramfs (qemu/tests/userland.rs): every line printed must be the same on both. The
# programs are in /usr/bin (busybox's applets are /bin); /data holds files of known content.
mount -t proc proc /proc
/usr/bin/echo "echo: hello from glibc"
/usr/bin/true; echo "true: $?"
/usr/bin/false; echo "false: $?"
echo "ls -1:"
/usr/bin/ls -1 /data
echo "ls -ln:"
/usr/bin/ls -ln --time-style=+ /data
/usr/bin/ls -d /usr/bin /lib64 /nonexistent 2>&1
echo "ls status: $?"
echo "cat: $(/usr/bin/cat /data/fruits | /usr/bin/wc -l) lines"
/usr/bin/cat /data/numbers /data/fruits
echo "sort:"
/usr/bin/sort /data/fruits
echo "sort -n -r:"
/usr/bin/sort -n -r /data/numbers
echo "sort -u:"
/usr/bin/cat /data/fruits /data/fruits | /usr/bin/sort -u
echo "wc: $(/usr/bin/wc -l < /data/numbers) $(/usr/bin/wc -w < /data/fruits) $(/usr/bin/wc -c < /data/numbers)"
/usr/bin/env -i GREETING=hi /usr/bin/env
/usr/bin/env -i A=1 /bin/sh -c 'echo "env passed: $A"'
echo "through a pipeline: $(/usr/bin/sort /data/fruits | /usr/bin/cat | /usr/bin/wc -l)"
i=0
while [ $i -lt 20 ]; do
    /usr/bin/true || echo "true failed"
    i=$((i + 1))
done
echo "20 dynamically linked programs ran"
/usr/bin/cat /proc/self/maps > /tmp/maps
for library in /lib64/ld-linux-x86-64.so.2 /lib/x86_64-linux-gnu/libc.so.6; do
    grep -q " $library\$" /tmp/maps && echo "maps name $library"
done
grep " /lib/x86_64-linux-gnu/libc.so.6\$" /tmp/maps | grep -q ' r-xp ' && echo "libc text is r-x"
./missing-interpreter
echo "missing interpreter: $?"
./corrupt-interpreter
echo "corrupt interpreter: $?"
echo "scenario done"
