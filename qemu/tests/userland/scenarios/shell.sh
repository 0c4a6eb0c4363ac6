#!/bin/sh
# Shell-level scenarios, run by Debian's busybox sh as init, on Cadenza and on Debian's own
# Linux kernel with the same initramfs (qemu/tests/userland.rs): every line printed must be the
# same on both. Lines are short and deterministic (no pids, times or sizes that vary).
mount -t proc proc /proc
echo "pipeline: $(echo one two three | tr ' ' '\n' | sort -r | head -n 1)"
printf 'a\nb\n' > /tmp/f
echo c >> /tmp/f
echo "redirections: $(wc -l < /tmp/f) $(tr -d '\n' < /tmp/f)"
ls /nonexistent 2> /tmp/err
echo "stderr to a file: $? $(grep -c 'No such file' /tmp/err)"
exec 3> /tmp/fd3
echo "through fd 3" >&3
exec 3>&-
echo "dup'd descriptor: $(cat /tmp/fd3)"
echo "here document: $(cat <<END
inside
END
)"

trap 'echo "trap: USR1 caught"' USR1
kill -USR1 $$
(trap 'echo "trap: subshell EXIT"' EXIT; exit 3)
echo "subshell status: $?"
trap - USR1

sleep 10 &
victim=$!
kill -TERM $victim
wait $victim
echo "background job killed: $?"
i=0
while [ $i -lt 40 ]; do
    (exit $i) &
    i=$((i + 1))
done
wait
echo "40 background processes reaped"
sum=0
for i in $(seq 1 20); do
    sh -c "exit $i"
    sum=$((sum + $?))
done
echo "20 shells, exit codes sum $sum"

mkdir /tmp/many
i=0
while [ $i -lt 200 ]; do
    echo $i > /tmp/many/f$i
    i=$((i + 1))
done
echo "many files: $(ls /tmp/many | wc -l) $(cat /tmp/many/f199)"
rm -r /tmp/many
echo "removed: $(ls /tmp | grep -c many)"
ln -s /tmp/f /tmp/link
echo "symlink: $(readlink /tmp/link) $(wc -l < /tmp/link)"
touch -d @1000000000 /tmp/t && echo "touch -d: $(stat -c '%X %Y' /tmp/t)"
touch -r /tmp/t /tmp/f && echo "touch -r: $(stat -c %Y /tmp/f)"
touch /tmp/t && echo "touch now: $(( $(stat -c %Y /tmp/t) > 1000000000 ))"
touch -c /tmp/nothing-here; echo "touch -c: $? $(ls /tmp | grep -c nothing-here)"

mkdir -p /mnt
mount -t tmpfs -o size=64k scratch /mnt
echo "tmpfs mounted: $(grep -c '^scratch /mnt tmpfs ' /proc/mounts)"
dd if=/dev/zero of=/mnt/big bs=1k count=100 2> /dev/null
echo "tmpfs full: $?"
cd /mnt
umount /mnt 2> /dev/null
echo "busy umount: $?"
cd /
umount /mnt
echo "umount: $? $(grep -c ' /mnt ' /proc/mounts)"
mount -t nosuchfs none /mnt 2>&1 | sed 's/.*: //'

mkfifo /tmp/fifo
(echo "through a named pipe" > /tmp/fifo) &
cat /tmp/fifo
wait
echo "fifo type: $(ls -l /tmp/fifo | cut -c 1)"
exec 4<> /tmp/fifo
echo "read-write open does not wait" >&4
read -r line <&4
exec 4>&-
echo "$line"
# udev makes these on Linux, Cadenza's boot does; this initramfs has neither.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
[ -e /dev/stdin ] || ln -s /proc/self/fd/0 /dev/stdin
[ -e /dev/stdout ] || ln -s /proc/self/fd/1 /dev/stdout
echo "pipe reopened through /dev/stdin: $(echo piped | cat /dev/stdin)"

sleep 30 &
sleeper=$!
sleep 1
echo "procfs cmdline: $(tr '\0' ' ' < /proc/$sleeper/cmdline)"
echo "procfs comm: $(cat /proc/$sleeper/comm)"
echo "procfs status: $(grep -E '^(State|PPid):' /proc/$sleeper/status | tr -d '\t' | tr '\n' ' ')"
echo "procfs stat: $(cut -d ' ' -f 2,3,4 /proc/$sleeper/stat)"
echo "ps sees it: $(ps -o pid,args | grep -c "^ *$sleeper sleep 30")"
kill $sleeper
echo "readlink: $(readlink /proc/self/fd/0) $(readlink /proc/$$/cwd) $(readlink /proc/self/root)"
echo "meminfo fields: $(grep -c -E '^(MemTotal|MemFree|MemAvailable):' /proc/meminfo)"
echo "uname: $(uname -s -m)"
echo "scenario done"
poweroff -f
