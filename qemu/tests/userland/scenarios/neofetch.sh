# Debian's neofetch (a bash script that reads /proc and runs a dozen tools) under Debian's bash,
# on Cadenza and on Debian's Linux (qemu/tests/userland.rs): the same fields must come out, with
# values of the same form (they differ between the machines, so only their shape is printed).
/bin/busybox --install -s /bin
mount -t proc proc /proc
export PATH=/bin:/usr/bin HOME=/root USER=root
report=$(neofetch --stdout 2>&1)
echo "neofetch status: $?"
# The title line is user@host and a rule; then `Field: value` lines.
echo "$report" | tail -n +3 | cut -d: -f1 | sed '/^ *$/d'
echo "OS from /etc/os-release: $(echo "$report" | grep -c '^OS: Debian GNU/Linux 12')"
echo "kernel release like Linux 6.1: $(echo "$report" | grep -c '^Kernel: 6\.1\.0-')"
echo "memory used/total in MiB: $(echo "$report" | grep -c '^Memory: [0-9]*MiB / [0-9]*MiB')"
echo "one CPU: $(echo "$report" | grep -c '^CPU: .*(1)')"
echo "scenario done"
