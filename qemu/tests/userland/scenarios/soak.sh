#!/bin/sh
# The soak (qemu/tests/reliability.rs): Debian's busybox sh as init loops the shell scenarios,
# fork/exec, pipelines, background jobs and file churn, each round in a fresh tmpfs on /tmp,
# for $1 seconds (at least one round), then shows what is left: the processes (only this shell
# and ps may remain) and the free memory, which must be back to what one round leaves.
seconds=${1:-60}
end=$(( $(date +%s) + seconds ))
rounds=0
while [ $rounds -eq 0 ] || [ "$(date +%s)" -lt $end ]; do
    mount -t tmpfs soakfs /tmp || echo "soak: mount failed in round $rounds"
    # The shell scenarios (qemu/tests/userland/scenarios/shell.sh without its poweroff); they
    # mount procfs, which would otherwise stack one more mount on /proc every round.
    sh /scenario > /tmp/out 2>&1
    umount /proc || echo "soak: umount /proc failed in round $rounds"
    grep -q "^scenario done" /tmp/out || { echo "soak: scenarios failed in round $rounds"; cat /tmp/out; }
    # fork/exec
    i=0
    while [ $i -lt 30 ]; do /bin/true || echo "soak: true failed"; i=$((i + 1)); done
    # pipelines
    [ "$(seq 1 2000 | sort -r | tr 1 x | grep -c x)" = 1271 ] || echo "soak: pipeline failed"
    # background jobs
    for i in 1 2 3 4 5 6; do (seq 1 500 | sort -n | tail -n 1 > /tmp/job$i) & done
    wait
    [ "$(cat /tmp/job1 /tmp/job6)" = "500
500" ] || echo "soak: background jobs failed"
    # file churn
    mkdir /tmp/churn
    for i in $(seq 1 60); do dd if=/dev/zero of=/tmp/churn/f$i bs=1k count=8 2> /dev/null; done
    for i in $(seq 1 60); do mv /tmp/churn/f$i /tmp/churn/g$i; done
    [ "$(ls /tmp/churn | wc -l)" = 60 ] || echo "soak: file churn failed"
    rm -r /tmp/churn
    cd /
    umount /tmp || echo "soak: umount failed in round $rounds"
    rounds=$((rounds + 1))
done
echo "soak: $rounds rounds"
mount -t proc proc /proc
ps -o pid,stat,args | while read -r pid stat args; do echo "soak: ps: $stat $args"; done
while read -r key value unit; do [ "$key" = MemFree: ] && echo "soak: free $value"; done < /proc/meminfo
umount /proc
exit 0
