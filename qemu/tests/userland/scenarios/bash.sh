# Debian's bash (package bash-static) as init, on Cadenza and on Debian's own Linux kernel with
# the same initramfs (qemu/tests/userland.rs): every line printed must be the same on both.
mount -t proc proc /proc
# udev makes these on Linux, Cadenza's boot does; this initramfs has neither.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
[ -e /dev/stdin ] || ln -s /proc/self/fd/0 /dev/stdin
[ -e /dev/stdout ] || ln -s /proc/self/fd/1 /dev/stdout
echo "bash ${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}"
declare -A map=([a]=1 [b]=2)
echo "associative array: ${map[b]} of ${#map[@]}"
list=(x y z)
echo "array: ${#list[@]} ${list[1]} ${list[*]: -1}"
echo "substitution: $(echo inner) $((6 * 7)) ${PWD}"
greet() { local who=$1; echo "function: hello $who"; return 3; }
greet world
echo "function status: $?"
echo "pipeline: $(printf 'b\na\nc\n' | sort | head -n 1)"
set -o pipefail
false | true
echo "pipefail: $?"
set +o pipefail
# The coprocess stays until its input closes: bash closes a finished coprocess's descriptors
# when it reaps it, so one that exits by itself races the read of its reply.
coproc worker { read -r line; echo "worker got $line"; read -r _; }
echo ping >&"${worker[1]}"
read -r reply <&"${worker[0]}"
echo "coprocess: $reply"
exec {worker[1]}>&-
wait
sleep 0.2 &
wait $!
echo "background: $?"
trap 'echo "trap: USR1"' USR1
kill -USR1 $$
read -r word <<< "here string"
echo "here string: $word"
# Process substitution: /dev/fd/63 is a pipe, reached through procfs's magic links.
if diff <(printf 'a\nb\n') <(printf 'a\nb\n') > /dev/null; then
    echo "process substitution: same"
fi
exec 3< <(echo "through fd 3")
read -r from3 <&3
exec 3<&-
echo "fd from a process substitution: $from3"
while read -r line; do echo "loop over <(...): $line"; done < <(printf 'p\nq\n')
echo "to a pipe by name" > >(cat)
wait
echo "written through /dev/stdout" > /dev/stdout
shopt -s extglob
name=file.tar.gz
echo "parameter expansion: ${name%%.*} ${name#*.} ${name//./_} ${name^^}"
printf -v formatted '%05.1f|%-4s|%x' 3.14159 ab 255
echo "printf -v: $formatted"
[[ "abc123" =~ ^([a-z]+)([0-9]+)$ ]] && echo "regex: ${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
mapfile -t lines < <(printf 'one\ntwo\nthree\n')
echo "mapfile: ${#lines[@]} ${lines[2]}"
total=0
for ((i = 1; i <= 100; i++)); do ((total += i)); done
echo "arithmetic loop: $total"
jobs_before=$(jobs | wc -l)
{ sleep 0.1; echo "group in the background"; } &
wait
echo "jobs: $jobs_before"
( exit 42 )
echo "subshell: $?"
ulimit -n 64
echo "ulimit -n: $(ulimit -n)"
echo "umask: $(umask)"
cd /tmp && echo "cd: $PWD" && cd - > /dev/null
echo "scenario done"
