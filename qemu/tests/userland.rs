//! Userspace on the real kernel: static musl programs (built here with Debian's musl-gcc) run as
//! /init from the initramfs, exercising the ELF loader, system calls and their error paths,
//! fork/execve/wait4, preemption, and fatal faults in user mode.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use cadenza_qemu::{GuestExit, QemuConfig, RunResult};
use common::{compile, debian_linux, kernel, user_lines, workspace};

/// Compiles `qemu/tests/userland/<name>.c` statically with musl (and pthreads), once per test
/// binary; returns the binary.
fn program(name: &str) -> PathBuf {
    static OUT: OnceLock<PathBuf> = OnceLock::new();
    let out = OUT.get_or_init(|| tempfile::tempdir().unwrap().keep());
    let binary = out.join(name);
    if !binary.exists() {
        compile(name, &binary);
    }
    binary
}

/// Asserts that every one of `lines` is on the console (showing the console if one is not).
fn assert_printed(console: &str, lines: &[&str]) {
    for line in lines {
        assert!(console.contains(line), "{line:?} missing:\n{console}");
    }
}

/// Boots the test program `name` as init: it must print every one of `lines` and the machine
/// must end cleanly.
fn program_prints(name: &str, lines: &[&str]) -> RunResult {
    let result = boot(&[("init", &program(name))], "");
    assert_printed(&result.console, lines);
    assert_eq!(result.exit, GuestExit::Clean, "{}", result.console);
    result
}

/// Boots with a root file system holding `files` (path in the archive, file to copy).
fn boot(files: &[(&str, &Path)], append: &str) -> RunResult {
    boot_kernel(&kernel(), files, append)
}

fn boot_kernel(kernel: &Path, files: &[(&str, &Path)], append: &str) -> RunResult {
    let root = tempfile::tempdir().unwrap();
    let tree = root.path().join("tree");
    for (name, source) in files {
        let target = tree.join(name);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(source, &target).unwrap();
    }
    let archive = root.path().join("root.cpio");
    cadenza_qemu::initramfs::pack_directory(&tree, &archive).unwrap();
    let mut config = QemuConfig::new(kernel.to_path_buf());
    config.initrd = Some(archive);
    config.append = format!("console=ttyS0 {append}");
    let result = config.run(Duration::from_secs(120)).expect("QEMU starts");
    assert_ne!(result.exit, GuestExit::TimedOut, "{}", result.console);
    result
}

#[test]
fn a_static_musl_program_runs_as_init() {
    let result = boot(&[("init", &program("hello"))], "-- extra");
    let console = &result.console;
    assert_printed(
        console,
        &[
            "SMEP on, SMAP on",
            "Run /init as init process",
            "hello from userspace: argc=2 argv0=/init",
            "env: HOME=/",
            "uname: Linux x86_64",
            "pid=1 ppid=0",
            "write(bad pointer) = -1 errno=14",
            "write(kernel pointer) = -1 errno=14",
            "write(bad fd) = -1 errno=9",
            "syscall(999) = -1 errno=38",
            "malloc: 7 9",
            "init[1]: exited with status 3",
        ],
    );
    assert!(
        console.contains("unimplemented system call 999"),
        "ENOSYS is logged once: {console}"
    );
    assert_eq!(result.exit, GuestExit::Clean);
}

#[test]
fn fork_exec_wait_and_preemption() {
    let forkexec = program("forkexec");
    let result = boot(&[("init", &forkexec), ("forkexec", &forkexec)], "");
    let console = &result.console;
    assert_printed(
        console,
        &[
            "exec'd child: argv[2]=two ppid-is-parent=1",
            "waitpid: same pid exited=1 status=7",
            "reaped 20 children, exit codes sum 190, then errno=10",
            "copy on fork: parent sees 1, child exited with 42",
            "cow both ways: child ok=1 parent intact=1",
            "exec of a missing file: errno=2",
            "child groups: setpgid=0 pgid-is-self=1 setsid=-1 errno=1",
            "parent groups: pgrp=0 sid=0",
            "preempted the spinner: work done",
            "init[1]: exited with status 0",
        ],
    );
    assert_eq!(result.exit, GuestExit::Clean);

    // `poweroff` ends the machine through reboot(2), before init exits.
    let off = boot(
        &[("init", &forkexec), ("forkexec", &forkexec)],
        "-- poweroff",
    );
    assert!(
        off.console.contains("reboot: Power down"),
        "{}",
        off.console
    );
    assert!(!off.console.contains("init has exited"), "{}", off.console);
    assert_eq!(off.exit, GuestExit::Clean);
}

#[test]
fn a_faulting_program_is_killed_not_the_kernel() {
    let result = boot(&[("init", &program("crash"))], "");
    let console = &result.console;
    assert!(console.contains("about to fault"), "{console}");
    assert!(console.contains("init[1]: segfault at 10 ip "), "{console}");
    assert!(
        // No core file is written, so none is claimed (Linux with RLIMIT_CORE 0 says the same).
        console.contains("init[1]: killed by signal 11 (SIGSEGV)\r\n")
            || console.contains("init[1]: killed by signal 11 (SIGSEGV)\n"),
        "{console}"
    );
    assert!(!console.contains("PANIC"), "{console}");
    assert_eq!(result.exit, GuestExit::Clean);
}

#[test]
fn bad_executables_and_missing_init_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let write_script = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        path
    };
    // A script whose interpreter is not there, and one with an empty `#!` line.
    for (text, expected) in [
        (
            "#!/bin/sh\necho not for us\n",
            "init: cannot run /init: its #! interpreter does not exist",
        ),
        ("#!\n", "init: cannot run /init: ENOEXEC (8)"),
        ("not an executable\n", "init: cannot run /init: ENOEXEC (8)"),
    ] {
        let script = write_script("script", text);
        let result = boot(&[("init", &script)], "");
        assert!(result.console.contains(expected), "{}", result.console);
        assert_eq!(result.exit, GuestExit::Clean);
    }

    let missing = boot(&[("init", &program("hello"))], "init=/sbin/nothing");
    assert!(
        missing
            .console
            .contains("init: no /sbin/nothing in the initramfs"),
        "{}",
        missing.console
    );
}

#[test]
fn strace_logs_every_system_call() {
    let result = boot(&[("init", &program("hello"))], "strace");
    assert!(
        result.console.contains("strace: uname("),
        "{}",
        result.console
    );
    assert!(
        result.console.contains("strace: write(0x1, 0x1, 0x5, "),
        "{}",
        result.console
    );
    assert!(
        result.console.contains("= -1 EFAULT (14)"),
        "{}",
        result.console
    );
}

#[test]
fn signals_handlers_masks_faults_and_kills() {
    program_prints(
        "signals",
        &[
            "SIGUSR1 handled: sig=10 from self=1 fpu intact=1",
            "blocked SIGUSR2: delivered=0 pending=1",
            "unblocked SIGUSR2: delivered=12",
            "caught SIGSEGV at 0x18",
            "SIGCHLD seen=1 child status=5",
            "killed child: signaled=1 termsig=15",
            "kill(nonexistent) = -1 errno=3; kill(bad signal) = -1 errno=22",
            "init survives SIGTERM and SIGKILL without handlers",
            "blocked SIGTERM to init: pending=1",
            "handler ran: 15",
            "init[1]: exited with status 0",
        ],
    );
}

#[test]
fn waits_with_deadlines_and_for_blocked_signals() {
    program_prints(
        "timed_waits",
        &[
            "sigtimedwait timeout: -1 errno=11 waited>=60ms=1",
            "sigwaitinfo: sig=10 from child=1",
            "sigtimedwait SIGCHLD: sig=17 pid matches=1 code=1",
            "reaped: 1",
            "futex timeout: -1 errno=110 waited>=40ms=1",
            "init[1]: exited with status 0",
        ],
    );
}

/// What `jobctl.c` prints, line for line, on Linux (run the static binary on the host to check).
const JOBCTL_EXPECTED: &[&str] = &[
    "sigaction(SIGSTOP) = -1 errno=22",
    "child runs: 1",
    "SIGSTOP: stopped=1 sig=19",
    "SIGCHLD after SIGSTOP: code=5 status=19",
    "ticks while stopped: 0",
    "stop reported once: 0",
    "SIGCONT: continued=1 status=0xffff",
    "SIGCHLD after SIGCONT: code=6 status=18",
    "SIGCONT handler ran: 1, ticks again: 1",
    "continue reported once: 0",
    "SIGTSTP with a handler is caught: 1",
    "and does not stop: 0, ticks: 1",
    "SIGKILL ends a stopped child: killed=1 sig=9",
    "SIGCHLD after SIGSTOP and SIGKILL: code=5 status=19 code=2 status=9",
    "SIGCONT discards a pending SIGTSTP: tstp=0 cont=1",
    "SIGTSTP discards a pending SIGCONT: tstp=1 cont=0",
    "unblocked SIGTSTP stops: stopped=1 sig=20",
    "a blocked SIGCONT continues: continued=1 reply=u",
    "exited: 1",
    "SIGCHLD after SIGTSTP, SIGCONT, exit: code=5 status=20 code=6 status=18 code=1 status=0",
    "orphaned group ignores SIGTSTP/SIGTTIN/SIGTTOU: runs=1",
    "but SIGSTOP stops it: ticks=0",
    "orphaned while stopped: SIGHUP and SIGCONT handled=2",
    "SIGCHLD after SA_NOCLDSTOP: code=2 status=15",
    "job control tests done: 1",
];

#[test]
fn job_control_stops_continues_and_reports_like_linux() {
    let result = boot(&[("init", &program("jobctl"))], "");
    let console = &result.console;
    // The program's lines, in order, without the kernel's.
    let printed: Vec<&str> = console
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| {
            JOBCTL_EXPECTED
                .iter()
                .any(|e| l.split(':').next() == e.split(':').next())
        })
        .collect();
    assert_eq!(printed, JOBCTL_EXPECTED, "{console}");
    assert!(
        console.contains("init[1]: exited with status 0"),
        "{console}"
    );
    assert_eq!(result.exit, GuestExit::Clean);
}

#[test]
fn user_and_group_ids_change_by_linux_rules_and_are_enforced() {
    program_prints(
        "identity",
        &[
            "getgroups: count 2, got 2, one small list -22",
            "unprivileged, saved root: uid 1000/1000/0 gid 100/100/100",
            "open root's 0600 file: -13",
            "mkdir in a root-owned 0755 directory: -13",
            "setgroups without root: -1",
            "signal init: -1",
            "setuid(4242): -1",
            "effective root again: uid 1000/0/0 gid 100/100/100",
            "dropped for good: uid 1000/1000/1000 gid 100/100/100",
            "setreuid(-1,0) now: -1",
            "a file in /tmp is owned by 1000:100",
            "signal itself: 0",
            "child exited 0",
            "init unchanged: uid 0/0/0 gid 0/0/0",
        ],
    );
}

#[test]
fn resource_limits_prctl_and_parent_death_signals() {
    let result = boot(&[("init", &program("limits"))], "");
    let console = &result.console;
    assert_printed(
        console,
        &[
            "nofile: 1024/4096",
            "stack: 8 MiB, hard unlimited",
            "bad resource: -22",
            "soft above hard: -22",
            "opened 5 more before errno 24",
            "prlimit64 self: 0 (old soft 8)",
            "raise hard as a user: -1",
            "lower as a user: 0",
            "prlimit64 on init as a user: -1",
            "prctl name: renamed-process",
            "prctl unknown option: -22",
            "no_new_privs: set 0, now 1",
            "robust list registered by libc: 0, length 24",
            "orphan reaped by init: 1, killed by signal 15",
        ],
    );
    assert!(
        !console.contains("unimplemented system call"),
        "limits, prctl and robust lists are system calls now:\n{console}"
    );
    assert_eq!(result.exit, GuestExit::Clean);
}

#[test]
fn alternate_signal_stacks_catch_a_stack_overflow() {
    program_prints(
        "altstack",
        &[
            "initially: disabled 1",
            "too small: -1 errno 12",
            "bad flags: -1 errno 22",
            "reported: size 65536, ours 1, flags 0",
            "SA_ONSTACK handler: on the alternate stack 1, sees SS_ONSTACK 1, change refused 1",
            "plain handler: on the alternate stack 0",
            "autodisarm: inside disabled 1, after armed again",
            "a new thread starts without one: 1",
            "stack overflow survived on the alternate stack: 1",
        ],
    );
}

#[test]
fn threads_share_signal_actions_and_forks_copy_them() {
    program_prints(
        "sighand",
        &[
            "handler installed by another thread ran: 12, in the main thread: 1",
            "a forked child's change stays its own: 1",
        ],
    );
}

#[test]
fn lazy_memory_mprotect_and_munmap() {
    let result = boot(&[("init", &program("memory"))], "");
    let console = &result.console;
    assert_printed(
        console,
        &[
            "1 GiB mapping: refused errno=12",
            "lazy 200 MiB mapping: abc",
            "write to read-only page: si_code=2",
            "touch after munmap: si_code=1",
            "brk grew: 1",
            "deep stack: 0",
            "mprotect on unmapped = -1",
            "init[1]: exited with status 0",
        ],
    );
}

/// What qemu/tests/userland/waitid_mremap.c prints (the same as on Linux, which
/// `the_test_programs_print_the_same_lines_on_debians_linux` checks).
const WAITID_MREMAP_EXPECTED: &[&str] = &[
    "no event asked: ret=-1 EINVAL signo=0 code=none pid=0 uid=0 status=0",
    "unknown option bit: ret=-1 EINVAL signo=0 code=none pid=0 uid=0 status=0",
    "unknown id type: ret=-1 EINVAL signo=0 code=none pid=0 uid=0 status=0",
    "P_PID 0: ret=-1 EINVAL signo=0 code=none pid=0 uid=0 status=0",
    "no children: ret=-1 ECHILD signo=0 code=none pid=0 uid=0 status=0",
    "no children WNOHANG: ret=-1 ECHILD signo=0 code=none pid=0 uid=0 status=0",
    "exit WNOWAIT: ret=0 ok signo=17 code=CLD_EXITED pid=child uid=0 status=7",
    "exit again WNOWAIT: ret=0 ok signo=17 code=CLD_EXITED pid=child uid=0 status=7",
    "zombie WSTOPPED WNOHANG: ret=-1 ECHILD signo=0 code=none pid=0 uid=0 status=0",
    "exit reaped: ret=0 ok signo=17 code=CLD_EXITED pid=child uid=0 status=7",
    "exit reaped twice: ret=-1 ECHILD signo=0 code=none pid=0 uid=0 status=0",
    "running WNOHANG: ret=0 ok signo=0 code=none pid=0 uid=0 status=0",
    "stop WNOWAIT: ret=0 ok signo=17 code=CLD_STOPPED pid=child uid=0 status=19",
    "stop: ret=0 ok signo=17 code=CLD_STOPPED pid=child uid=0 status=19",
    "stop reported: ret=0 ok signo=0 code=none pid=0 uid=0 status=0",
    "continue WNOWAIT: ret=0 ok signo=17 code=CLD_CONTINUED pid=child uid=0 status=18",
    "continue: ret=0 ok signo=17 code=CLD_CONTINUED pid=child uid=0 status=18",
    "continue reported: ret=0 ok signo=0 code=none pid=0 uid=0 status=0",
    "killed: ret=0 ok signo=17 code=CLD_KILLED pid=child uid=0 status=9",
    "other group WNOHANG: ret=0 ok signo=0 code=none pid=0 uid=0 status=0",
    "my group WNOHANG: ret=-1 ECHILD signo=0 code=none pid=0 uid=0 status=0",
    "no such group: ret=-1 ECHILD signo=0 code=none pid=0 uid=0 status=0",
    "child's group: ret=0 ok signo=17 code=CLD_EXITED pid=child uid=0 status=3",
    "my group: ret=0 ok signo=17 code=CLD_EXITED pid=child uid=0 status=4",
    "with rusage: ret=0 status=5",
    "shrink: same=1 kept=1 tail mapped=0",
    "grow in place: same=1 kept=1 new zero=1",
    "blocked growth: ENOMEM",
    "grow by moving: moved=1 contents=1 untouched zero=1 new zero=1",
    "after the move: old mapped=0 neighbour mapped=1",
    "fixed: at target=1 contents=1 new zero=1 old mapped=0 before it=1",
    "fixed and shrunk: at target=1 contents=1 rest mapped=0",
    "unaligned address: EINVAL",
    "unknown flag: EINVAL",
    "fixed without maymove: EINVAL",
    "new length 0: EINVAL",
    "overlapping target: EINVAL",
    "unaligned target: EINVAL",
    "old range past its mapping: EFAULT",
    "unmapped address: EFAULT",
    "old length 0: EINVAL",
    "after fork: child moved and wrote=1 parent kept=1",
    "realloc 1 MiB to 8 MiB: kept=1",
    // Every frame the remapping children used (moved pages, copy-on-write copies, page
    // tables for the new addresses) is free again once they are reaped.
    "free memory lost to remapping children: 0 bytes",
    "waitid and mremap tests done",
];

#[test]
fn waitid_reports_and_mremap_moves_pages_like_linux() {
    let result = boot(&[("init", &program("waitid_mremap"))], "-- leaks");
    let console = &result.console;
    assert_eq!(user_lines(console), WAITID_MREMAP_EXPECTED, "{console}");
    assert!(
        console.contains("init[1]: exited with status 0"),
        "{console}"
    );
    assert_eq!(shutdown_report(console).2, 0, "{console}");
    assert_eq!(result.exit, GuestExit::Clean);
}

#[test]
fn utimensat_and_the_older_calls_set_file_times_like_linux() {
    // qemu/tests/userland/file_times.c; `the_test_programs_print_the_same_lines_on_debians_linux`
    // checks that Linux prints the same.
    let now = "ctime now=1";
    program_prints(
        "file_times",
        &[
            &format!("explicit: ok atime=1000.000000500 mtime=2000.000000600 {now}"),
            &format!("omit atime: ok atime=1000.000000500 mtime=3000.000000000 {now}"),
            &format!("omit mtime: ok atime=4000.000000000 mtime=3000.000000000 {now}"),
            &format!("mtime now: ok atime=4000.000000000 mtime=now {now}"),
            &format!("atime now, mtime before 1970: ok atime=now mtime=-100.999999999 {now}"),
            &format!("null times: ok atime=now mtime=now {now}"),
            "both omitted, missing file: ok",
            "both omitted, null path: ok",
            "missing file: ENOENT",
            "through a file: ENOTDIR",
            "null path at AT_FDCWD: EFAULT",
            "bad times pointer: EFAULT",
            "nsec 1000000000: EINVAL",
            "nsec -1: EINVAL",
            "unknown flag: EINVAL",
            "AT_REMOVEDIR: EINVAL",
            "empty path: ENOENT",
            &format!("after the errors: ok atime=now mtime=now {now}"),
            &format!(
                "null path on a read-only descriptor: ok atime=5.000000001 mtime=6.000000002 {now}"
            ),
            &format!("futimens: ok atime=7.000000000 mtime=8.000000000 {now}"),
            "null path with AT_SYMLINK_NOFOLLOW: EINVAL",
            "null path on a closed descriptor: EBADF",
            &format!(
                "relative to a directory descriptor: ok atime=9.000000000 mtime=10.000000000 {now}"
            ),
            "relative to a file descriptor: ENOTDIR",
            "null path on an O_PATH descriptor: EBADF",
            &format!(
                "AT_EMPTY_PATH on an O_PATH descriptor: ok atime=11.000000000 mtime=12.000000000 {now}"
            ),
            "empty path without AT_EMPTY_PATH: ENOENT",
            // AT_SYMLINK_NOFOLLOW changes the link, not its target
            &format!(
                "link with AT_SYMLINK_NOFOLLOW: ok atime=13.000000000 mtime=14.000000000 {now}"
            ),
            &format!("its target: ok atime=11.000000000 mtime=12.000000000 {now}"),
            &format!("link followed: the target: ok atime=15.000000000 mtime=16.000000000 {now}"),
            "the link itself: mtime=14",
            "dangling link followed: ENOENT",
            &format!("dangling link itself: ok atime=17.000000000 mtime=18.000000000 {now}"),
            &format!("utime: ok atime=19.000000000 mtime=20.000000000 {now}"),
            &format!("utime null: ok atime=now mtime=now {now}"),
            &format!("utimes: ok atime=21.000005000 mtime=22.999999000 {now}"),
            "utimes usec 1000000: EINVAL",
            "utimes usec -1: EINVAL",
            &format!("utimes null: ok atime=now mtime=now {now}"),
            &format!("futimesat: ok atime=23.000001000 mtime=24.000002000 {now}"),
            &format!("futimesat null path: ok atime=25.000003000 mtime=26.000004000 {now}"),
            // a user (uid 1000): "now" with write permission, explicit times on its own files
            "setuid(1000): ok",
            "touch root's 0644 file: EACCES",
            "touch it with a null times: EACCES",
            "explicit times on it: EPERM",
            "touch root's 0666 file: ok",
            "both UTIME_NOW on it: ok",
            "UTIME_NOW and UTIME_OMIT on it: EPERM",
            "both UTIME_OMIT on it: ok",
            "utimes on it: ok",
            "utimes with times on it: EPERM",
            &format!(
                "explicit times on my own 0444 file: ok atime=11.000000000 mtime=12.000000000 {now}"
            ),
            &format!("touch my own 0444 file: ok atime=now mtime=now {now}"),
            "child exited 0",
            &format!(
                "root's 0644 file after the child: ok atime=1.000000000 mtime=2.000000000 {now}"
            ),
            &format!(
                "root sets times on someone's 0000 file: ok atime=27.000000000 mtime=28.000000000 {now}"
            ),
            &format!("root touches it: ok atime=now mtime=now {now}"),
            "mount read-only tmpfs: ok",
            "touch on a read-only mount: EROFS",
            "explicit times on a read-only mount: EROFS",
            "both omitted on a read-only mount: ok",
            "file times tests done",
            "init[1]: exited with status 0",
        ],
    );
}

#[test]
fn the_console_is_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::copy(program("tty"), tree.join("init")).unwrap();
    let archive = dir.path().join("root.cpio");
    cadenza_qemu::initramfs::pack_directory(&tree, &archive).unwrap();
    let mut config = QemuConfig::new(kernel());
    config.initrd = Some(archive);
    let mut qemu = config.spawn().unwrap();
    let step = Duration::from_secs(60);
    let mut at = qemu
        .wait_for_console("type a line: ", 0, step)
        .expect("prompt");
    qemu.send(b"hellx\x7fo world\r").unwrap();
    at = qemu
        .wait_for_console("got 12 bytes: [hello world]", at, step)
        .unwrap_or_else(|| panic!("canonical line editing:\n{}", qemu.console()));
    at = qemu.wait_for_console("raw: press a key", at, step).unwrap();
    qemu.send(b"z").unwrap();
    at = qemu
        .wait_for_console("raw got 1 'z'", at, step)
        .expect("raw read");
    at = qemu.wait_for_console("press ^C", at, step).unwrap();
    qemu.send(b"\x03").unwrap();
    at = qemu
        .wait_for_console("read interrupted: n=-1 errno=4 sigint=1", at, step)
        .unwrap_or_else(|| panic!("^C:\n{}", qemu.console()));
    at = qemu.wait_for_console("press ^D", at, step).unwrap();
    qemu.send(b"\x04").unwrap();
    qemu.wait_for_console("eof read returned 0", at, step)
        .expect("^D");
    let result = qemu.wait(Some(step)).unwrap();
    let console = &result.console;
    assert!(console.contains("canonical=1 echo=1"), "{console}");
    assert!(console.contains("winsize 80x24 isatty=1"), "{console}");
    assert!(
        console.contains("poll and select time out with no input: 0 0"),
        "{console}"
    );
    assert!(
        console.contains("hello world"),
        "the line was echoed: {console}"
    );
    assert!(console.contains("^C"), "{console}");
    assert_eq!(result.exit, GuestExit::Clean);
}

/// `(live allocations, live bytes, new suspected leaks)` from the kernel's shutdown report.
fn shutdown_report(console: &str) -> (u64, u64, u64) {
    let leaks: u64 = console
        .lines()
        .filter(|l| l.contains("new suspected memory leaks"))
        .find_map(|l| l.split_once("kmemleak: ").map(|(_, rest)| rest))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no kmemleak summary in:\n{console}"));
    let heap = console
        .lines()
        .filter(|l| l.ends_with("bytes at shutdown"))
        .find_map(|l| l.split_once("heap: ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no heap line:\n{console}"));
    let words: Vec<&str> = heap.split_whitespace().collect();
    (words[0].parse().unwrap(), words[3].parse().unwrap(), leaks)
}

#[test]
fn a_thousand_fork_exec_exit_cycles_leak_nothing() {
    many_rounds_leave_the_heap_as_one_does("forkloop", 1000, "init[1]: exited with status 0");
}

/// Boots test program `name` with `-- 1` and with `-- rounds`; the long run must print
/// `done_line`, neither may leave an unreferenced object, and the long run's heap must end
/// exactly where the one-round run's did (the baseline is one round, so containers the first
/// round creates once, and keeps empty afterwards, count on both sides: what must not grow is
/// the cost per round).
fn many_rounds_leave_the_heap_as_one_does(name: &str, rounds: u32, done_line: &str) {
    let binary = program(name);
    let baseline = boot(&[("init", &binary)], "-- 1");
    let after = boot(&[("init", &binary)], &format!("-- {rounds}"));
    assert!(after.console.contains(done_line), "{}", after.console);
    let (live_before, bytes_before, leaks_before) = shutdown_report(&baseline.console);
    let (live_after, bytes_after, leaks_after) = shutdown_report(&after.console);
    assert_eq!(leaks_before, 0, "{}", baseline.console);
    assert_eq!(leaks_after, 0, "{}", after.console);
    assert_eq!(
        (live_after, bytes_after),
        (live_before, bytes_before),
        "{name}: the heap is back to its baseline after {rounds} rounds"
    );
}

#[test]
fn huge_sparse_ranges_cost_what_is_mapped_and_free_their_page_tables() {
    // munmap/mprotect/mmap of terabytes with little or nothing in them, 10,000 fresh mappings
    // each needing page tables of their own, an executable with 64 GiB of bss: a kernel that
    // visits such ranges a page at a time (interrupts off) freezes and the boot times out; one
    // that keeps emptied page tables runs out of memory counting "page tables freed: no".
    let binary = program("huge_ranges");
    let (cadenza, linux) = on_both_kernels(&[("init", &binary)], "");
    assert!(
        cadenza
            .iter()
            .any(|l| l == "exec with 16 MiB of bss: exited 42"),
        "{cadenza:#?}"
    );
    assert_eq!(cadenza, linux, "Cadenza (left) and Linux (right) differ");
}

#[test]
fn returns_to_non_canonical_addresses_end_in_sigsegv_as_on_linux() {
    // Signal handlers, rt_sigreturn frames and ELF entry points at addresses user mode cannot
    // run: the task gets SIGSEGV (and its SIGSEGV handler runs if it has one), the kernel does
    // not fault in `iretq`.
    // QEMU's TCG does not fault in `iretq` as Intel CPUs do, so the kernel's own check of every
    // return to user mode is what shows a non-canonical RIP got through.
    let binary = program("bad_rip");
    let files: &[(&str, &Path)] = &[("init", &binary)];
    let cadenza = boot(files, "");
    assert!(
        !cadenza.console.contains("non-canonical rip"),
        "a return to user mode at a non-canonical address: {}",
        cadenza.console
    );
    let linux = boot_kernel(&debian_linux(), files, "quiet panic=-1");
    assert_ne!(linux.exit, GuestExit::TimedOut, "{}", linux.console);
    let (cadenza, linux) = (user_lines(&cadenza.console), user_lines(&linux.console));
    assert!(
        cadenza
            .iter()
            .any(|l| l == "exec with a good entry: exited 42"),
        "{cadenza:#?}"
    );
    assert_eq!(cadenza, linux, "Cadenza (left) and Linux (right) differ");
}

#[test]
fn user_eflags_ac_never_reaches_a_kernel_handler() {
    // User code sets EFLAGS.AC and is interrupted by the timer and makes system calls: every
    // kernel entry clears AC (CLAC, SYSCALL's FMASK), else SMAP would be off in the handler.
    let result = program_prints(
        "ac_flag",
        &["AC set in user mode: 1, still set after interrupts and system calls: 1"],
    );
    assert!(
        result.console.contains("SMAP on"),
        "the check needs SMAP: {}",
        result.console
    );
    assert!(
        !result.console.contains("EFLAGS.AC set"),
        "a kernel handler ran with AC set: {}",
        result.console
    );
}

#[test]
fn threads_share_memory_lock_and_join() {
    let result = boot(&[("init", &program("threads"))], "");
    let console = &result.console;
    assert!(
        console.contains("threads: counter=80000 tls-and-tid-ok=1 main-tls=0"),
        "{console}"
    );
    assert!(
        console.contains("init[1]: exited with status 0"),
        "{console}"
    );
    assert!(
        console.contains("kmemleak: 0 new suspected memory leaks"),
        "{console}"
    );
    assert_eq!(result.exit, GuestExit::Clean);
}

/// A root file system with Debian's static busybox (package busybox-static) and a few applets.
fn busybox_root(dir: &Path) -> PathBuf {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "Debian's busybox-static is needed (scripts/setup.sh installs it)"
    );
    let tree = dir.join("tree");
    // The directories a root file system has (Cadenza would make the missing ones at boot;
    // Linux, which boots the same archive in the parity tests, would not).
    for sub in ["bin", "proc", "tmp", "sys/kernel/debug"] {
        std::fs::create_dir_all(tree.join(sub)).unwrap();
    }
    std::fs::copy(busybox, tree.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "ls", "cat", "echo", "uname", "mkdir", "rm", "wc", "grep", "sleep", "true", "chmod",
        "printf", "mount", "umount", "ps", "free", "uptime", "top", "readlink", "tr", "tail",
        "head", "dd", "stat", "kill", "sort", "seq", "cut", "sed", "ln", "poweroff", "diff",
        "date", "mkfifo", "touch",
    ] {
        std::os::unix::fs::symlink("busybox", tree.join("bin").join(applet)).unwrap();
    }
    let archive = dir.join("root.cpio");
    cadenza_qemu::initramfs::pack_directory(&tree, &archive).unwrap();
    archive
}

/// Debian's busybox shell as init, at its first prompt: (QEMU, console offset after it).
fn busybox_shell(dir: &Path) -> (cadenza_qemu::Running, usize) {
    let mut config = QemuConfig::new(kernel());
    config.initrd = Some(busybox_root(dir));
    config.append = "console=ttyS0 init=/bin/sh".into();
    let qemu = config.spawn().unwrap();
    let at = qemu
        .wait_for_console("/ # ", 0, SHELL_STEP)
        .unwrap_or_else(|| panic!("no shell prompt:\n{}", qemu.console()));
    (qemu, at)
}

const SHELL_STEP: Duration = Duration::from_secs(60);

/// Types `command` at the prompt, waits for `expected` and the next prompt; returns the console
/// offset after that prompt.
fn shell_command(
    qemu: &mut cadenza_qemu::Running,
    at: usize,
    command: &str,
    expected: &str,
) -> usize {
    qemu.send(format!("{command}\r").as_bytes()).unwrap();
    let at = qemu
        .wait_for_console(expected, at, SHELL_STEP)
        .unwrap_or_else(|| {
            panic!(
                "{command:?} did not print {expected:?}:\n{}",
                qemu.console()
            )
        });
    qemu.wait_for_console("/ # ", at, SHELL_STEP)
        .unwrap_or_else(|| panic!("no prompt after {command:?}:\n{}", qemu.console()))
}

/// `shell_command` for each (command, expected output) in turn.
fn shell_commands(
    qemu: &mut cadenza_qemu::Running,
    mut at: usize,
    steps: &[(&str, &str)],
) -> usize {
    for (command, expected) in steps {
        at = shell_command(qemu, at, command, expected);
    }
    at
}

#[test]
fn debians_busybox_shell_runs_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (mut qemu, mut at) = busybox_shell(dir.path());
    for (command, expected) in [
        ("echo hello from busybox", "hello from busybox"),
        ("uname -sm", "Linux x86_64"),
        (
            "mkdir -p /tmp/a/b && echo made > /tmp/a/b/f && cat /tmp/a/b/f",
            "made",
        ),
        ("ls /tmp/a", "b"),
        ("echo one two three | wc -w", "3"),
        ("ls /bin | grep -c busybox", "1"),
        ("false || echo status-$?", "status-1"),
        // `#!` scripts: the interpreter gets its optional argument, the script's path and the
        // arguments; a missing interpreter is ENOENT (the shell's 127), a bare `#!` ENOEXEC.
        (
            "printf '#!/bin/sh -e\\necho script: $0 $*\\n' > /tmp/s && chmod +x /tmp/s && /tmp/s a b",
            "script: /tmp/s a b",
        ),
        // Only a real interpreter exec prints this: on ENOEXEC ash would run the file itself,
        // where the `#!` line is a comment.
        (
            "printf '#!/bin/echo hello\\n' > /tmp/e && chmod +x /tmp/e && /tmp/e x",
            "hello /tmp/e x",
        ),
        (
            "printf '#!/bin/nothing\\n' > /tmp/bad && chmod +x /tmp/bad; /tmp/bad; echo rc-$?",
            "rc-127",
        ),
    ] {
        at = shell_command(&mut qemu, at, command, &format!("{expected}\r\n"));
    }
    qemu.send(b"exit\r").unwrap();
    let result = qemu.wait(Some(SHELL_STEP)).unwrap();
    assert!(
        result.console.contains("sh[1]: exited with status 0"),
        "{}",
        result.console
    );
    assert!(
        result
            .console
            .contains("kmemleak: 0 new suspected memory leaks"),
        "{}",
        result.console
    );
    assert_eq!(result.exit, GuestExit::Clean);
}

/// `busybox_shell` with `extra` files (path in the archive, file) added to the root.
fn busybox_shell_with(dir: &Path, extra: &[(&str, &Path)]) -> (cadenza_qemu::Running, usize) {
    let archive = busybox_root(dir);
    let tree = dir.join("tree");
    for (name, file) in extra {
        let target = tree.join(name);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(file, &target).unwrap();
    }
    std::fs::remove_file(&archive).unwrap();
    cadenza_qemu::initramfs::pack_directory(&tree, &archive).unwrap();
    let mut config = QemuConfig::new(kernel());
    config.initrd = Some(archive);
    config.append = "console=ttyS0 init=/bin/sh".into();
    let qemu = config.spawn().unwrap();
    let at = qemu
        .wait_for_console("/ # ", 0, SHELL_STEP)
        .unwrap_or_else(|| panic!("no shell prompt:\n{}", qemu.console()));
    (qemu, at)
}

#[test]
fn the_oom_killer_ends_memory_hogs_and_the_shell_goes_on() {
    // malloc, sbrk and mmap loops as uid 65534: each is killed by the OOM killer (SIGKILL: the
    // shell's 137) with Linux's log line, and the shell keeps working. Then a 1 MiB read while
    // a hog holds nearly all memory returns data or ENOMEM, never a panic.
    let dir = tempfile::tempdir().unwrap();
    let (mut qemu, mut at) = busybox_shell_with(dir.path(), &[("bin/memhog", &program("memhog"))]);
    for how in ["malloc", "sbrk", "mmap"] {
        let before = qemu
            .console()
            .matches("Out of memory: Killed process")
            .count();
        at = shell_command(
            &mut qemu,
            at,
            &format!("/bin/memhog {how}; echo status-$?"),
            "status-137\r\n",
        );
        let console = qemu.console();
        assert_eq!(
            console.matches("Out of memory: Killed process").count(),
            before + 1,
            "{console}"
        );
        let line = console
            .lines()
            .rfind(|l| l.contains("Out of memory: Killed process"))
            .unwrap();
        assert!(
            line.contains("(memhog) total-vm:")
                && line.contains("shmem-rss:0kB, UID:65534 pgtables:")
                && line.ends_with("oom_score_adj:0"),
            "{line}"
        );
    }
    at = shell_command(&mut qemu, at, "/bin/memhog read", "memhog: hog");
    let console = qemu.console();
    assert!(
        console.contains("memhog: read 1 MiB: ok")
            || console.contains("memhog: read 1 MiB: ENOMEM"),
        "{console}"
    );
    shell_command(&mut qemu, at, "echo still-here", "still-here\r\n");
    qemu.send(b"exit\r").unwrap();
    let result = qemu.wait(Some(SHELL_STEP)).unwrap();
    assert_eq!(result.exit, GuestExit::Clean, "{}", result.console);
    assert!(
        result
            .console
            .contains("kmemleak: 0 new suspected memory leaks"),
        "{}",
        result.console
    );
}

#[test]
fn the_fault_injection_knobs_read_and_write_in_linuxs_format() {
    let dir = tempfile::tempdir().unwrap();
    let (mut qemu, at) = busybox_shell(dir.path());
    let at = shell_commands(
        &mut qemu,
        at,
        &[
            (
                "mkdir -p /sys/kernel/debug && mount -t debugfs none /sys/kernel/debug && ls /sys/kernel/debug/failslab | tr '\\n' ' '",
                "injected interval probability space times verbose",
            ),
            (
                "cat /sys/kernel/debug/failslab/probability /sys/kernel/debug/fail_page_alloc/times",
                "0\r\n1\r\n",
            ),
            (
                // `times` 0 first: no failure is injected into the commands themselves.
                "echo 0 > /sys/kernel/debug/fail_page_alloc/times && echo 7 > /sys/kernel/debug/fail_page_alloc/probability && cat /sys/kernel/debug/fail_page_alloc/probability /sys/kernel/debug/fail_page_alloc/times",
                "7\r\n0\r\n",
            ),
            (
                "echo 0 > /sys/kernel/debug/fail_page_alloc/probability; echo x > /sys/kernel/debug/failslab/interval; echo rc-$?",
                "rc-1",
            ),
        ],
    );
    shell_command(&mut qemu, at, "echo done", "done\r\n");
    qemu.send(b"exit\r").unwrap();
    let result = qemu.wait(Some(SHELL_STEP)).unwrap();
    assert_eq!(result.exit, GuestExit::Clean, "{}", result.console);
}

#[test]
fn the_userland_runs_with_fault_injection_on_without_panics_or_leaks() {
    // Every fallible heap allocation fails with 2% probability and every 20th frame request
    // (but the reserve's) with 1%, from init's first instruction on, over five rounds of the
    // shell scenario and four programs, run by a tiny init that retries failed forks (about 75
    // heap and 13 frame failures, 5 s of guest time; execve populates every page of a binary,
    // so a denser frame rate makes nearly every exec fail): programs may fail with ENOMEM, the
    // kernel must neither panic nor leak, and failures must actually have been injected.
    let dir = tempfile::tempdir().unwrap();
    let archive = busybox_root(dir.path());
    let tree = dir.path().join("tree");
    let source = workspace()
        .root()
        .join("qemu/tests/userland/scenarios/shell.sh");
    std::fs::copy(&source, tree.join("scenario")).unwrap();
    for name in ["forkexec", "memory", "mmap_file", "threads", "fault_runner"] {
        std::fs::copy(program(name), tree.join("bin").join(name)).unwrap();
    }
    std::fs::remove_file(&archive).unwrap();
    cadenza_qemu::initramfs::pack_directory(&tree, &archive).unwrap();
    let mut config = QemuConfig::new(kernel());
    config.initrd = Some(archive);
    config.append =
        "console=ttyS0 failslab=1,2,0,-1 fail_page_alloc=20,1,0,-1 rdinit=/bin/fault_runner".into();
    // The runner ends a command that hangs for 20 s (a failed partner process, as on Linux),
    // so a run takes longer than a plain boot when that happens.
    let result = config.run(Duration::from_secs(300)).expect("QEMU starts");
    let console = &result.console;
    assert_eq!(result.exit, GuestExit::Clean, "{console}");
    // Every round ran (each program printed its exit status, whatever it was): the runner
    // retries the forks that fail.
    assert!(console.contains("rounds-done"), "{console}");
    assert!(
        console.contains("FAULT_INJECTION: forcing a failure."),
        "{console}"
    );
    let report = console
        .lines()
        .find(|l| l.contains("failures injected"))
        .unwrap_or_else(|| panic!("no injection report:\n{console}"));
    let counts: Vec<u64> = report
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        counts.len() >= 2 && counts[0] > 0 && counts[1] > 0,
        "{report}"
    );
    eprintln!(
        "{report} (guest time {:.1} s)",
        result.elapsed.as_secs_f64()
    );
    assert!(
        console.contains("kmemleak: 0 new suspected memory leaks"),
        "{console}"
    );
}

/// Runs `command` (which prints `label=<number>`) at the prompt: the number, and the console
/// offset after the next prompt.
fn shell_number(
    qemu: &mut cadenza_qemu::Running,
    at: usize,
    command: &str,
    label: &str,
) -> (u64, usize) {
    let next = shell_command(
        qemu,
        at,
        &format!("echo {label}=$({command})"),
        &format!("{label}="),
    );
    let console = qemu.console();
    let number = console[at..next]
        .lines()
        .find_map(|line| {
            line.trim_end_matches('\r')
                .strip_prefix(&format!("{label}="))
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no number after {label}= in:\n{console}"));
    (number, next)
}

#[test]
fn the_wall_clock_is_the_rtcs_and_stamps_files() {
    let dir = tempfile::tempdir().unwrap();
    let (mut qemu, at) = busybox_shell(dir.path());
    let host_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    // QEMU's RTC follows the host's clock (`-rtc base=utc`): the guest's wall clock, read at
    // boot from it, must agree within a few minutes (boot and command time included).
    let (guest, at) = shell_number(&mut qemu, at, "date +%s", "NOW");
    assert!(
        guest.abs_diff(host_now()) < 300,
        "guest {guest}, host {}",
        host_now()
    );
    // tmpfs stamps new files with the wall clock.
    let (mtime, at) = shell_number(
        &mut qemu,
        at,
        "echo x > /tmp/f && stat -c %Y /tmp/f",
        "MTIME",
    );
    assert!(
        mtime.abs_diff(host_now()) < 300,
        "mtime {mtime}, host {}",
        host_now()
    );
    // Root may set the clock (`settimeofday`/`clock_settime`); it goes on ticking from there.
    let (set, _) = shell_number(
        &mut qemu,
        at,
        "date -s @2000000000 >/dev/null; date +%s",
        "SET",
    );
    assert!(
        (2_000_000_000..2_000_000_300).contains(&set),
        "after date -s: {set}"
    );
    qemu.send(b"exit\r").unwrap();
    let result = qemu.wait(Some(SHELL_STEP)).unwrap();
    assert_eq!(result.exit, GuestExit::Clean, "{}", result.console);
}

/// Sends `key` (a signal character) until `expected` appears: the shell hands the terminal to a
/// job only once it has forked it, and a key typed before that goes to the shell, which ignores
/// it. Returns the offset after the next prompt.
fn press_until(qemu: &mut cadenza_qemu::Running, at: usize, key: &[u8], expected: &str) -> usize {
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(300));
        qemu.send(key).unwrap();
        if let Some(seen) = qemu.wait_for_console(expected, at, Duration::from_millis(700)) {
            return qemu
                .wait_for_console("/ # ", seen, SHELL_STEP)
                .expect("prompt again");
        }
    }
    panic!("{key:?} did not lead to {expected:?}:\n{}", qemu.console());
}

#[test]
fn busybox_shell_stops_continues_and_resumes_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let (mut qemu, mut at) = busybox_shell(dir.path());
    // ^Z stops the foreground job; the shell sees it through wait4(WUNTRACED).
    qemu.send(b"sleep 30\r").unwrap();
    at = press_until(
        &mut qemu,
        at,
        b"\x1a",
        "[1]+  Stopped                    sleep 30",
    );
    for (command, expected) in [
        ("jobs", "[1]+  Stopped                    sleep 30\r\n"),
        // SIGCONT to its group, in the background.
        ("bg", "[1] sleep 30\r\n"),
        ("jobs", "[1]+  Running                    sleep 30\r\n"),
    ] {
        at = shell_command(&mut qemu, at, command, expected);
    }
    // `fg` hands it the terminal again, so ^C (SIGINT to the foreground group) ends it.
    qemu.send(b"fg\r").unwrap();
    at = qemu
        .wait_for_console("sleep 30\r\n", at, SHELL_STEP)
        .expect("fg");
    at = press_until(&mut qemu, at, b"\x03", "^C");
    at = shell_command(&mut qemu, at, "echo status-$?", "status-130\r\n");

    // kill -STOP and -CONT from the shell, on a background job: stopped, it does not act on
    // SIGTERM until continued. (ash does not ask wait4 for WCONTINUED, so until then `jobs`
    // says "Stopped", as on Linux.)
    at = shell_commands(
        &mut qemu,
        at,
        &[
            ("sleep 40 & echo started", "started\r\n"),
            (
                "kill -STOP %1; sleep 1; jobs",
                "[1]+  Stopped (signal)           sleep 40\r\n",
            ),
            (
                "kill %1; sleep 1; jobs",
                "[1]+  Stopped (signal)           sleep 40\r\n",
            ),
            (
                "kill -CONT %1; sleep 1; jobs",
                "[1]+  Terminated                 sleep 40\r\n",
            ),
        ],
    );

    // A background job that reads the terminal is stopped by SIGTTIN; in the foreground it
    // reads what is typed.
    at = shell_commands(
        &mut qemu,
        at,
        &[
            ("cat & echo started", "started\r\n"),
            ("sleep 1; jobs", "[1]+  Stopped (tty input)        cat\r\n"),
        ],
    );
    qemu.send(b"fg\r").unwrap();
    at = qemu
        .wait_for_console("cat\r\n", at, SHELL_STEP)
        .expect("fg");
    std::thread::sleep(Duration::from_millis(500));
    qemu.send(b"typed for cat\r").unwrap();
    at = qemu
        .wait_for_console("typed for cat\r\ntyped for cat\r\n", at, SHELL_STEP)
        .unwrap_or_else(|| panic!("cat echoes the line:\n{}", qemu.console()));
    qemu.send(b"\x04").unwrap();
    at = qemu
        .wait_for_console("/ # ", at, SHELL_STEP)
        .expect("prompt after ^D");
    shell_command(&mut qemu, at, "echo status-$?", "status-0\r\n");

    qemu.send(b"exit\r").unwrap();
    let result = qemu.wait(Some(SHELL_STEP)).unwrap();
    assert!(
        result.console.contains("sh[1]: exited with status 0"),
        "{}",
        result.console
    );
    assert_eq!(result.exit, GuestExit::Clean);
}

#[test]
fn sysrq_trigger_crashes_the_kernel_from_userspace_like_linux() {
    let dir = tempfile::tempdir().unwrap();
    let (mut qemu, at) = busybox_shell(dir.path());
    shell_commands(
        &mut qemu,
        at,
        &[
            ("mount -t proc proc /proc && echo mounted", "mounted"),
            ("echo h > /proc/sysrq-trigger", "sysrq: HELP : crash(c)"),
            // Write-only, as on Linux.
            ("cat /proc/sysrq-trigger; echo rc-$?", "rc-1"),
        ],
    );
    qemu.send(b"echo c > /proc/sysrq-trigger\r").unwrap();
    let result = qemu.wait(Some(SHELL_STEP)).unwrap();
    assert_eq!(result.exit, GuestExit::Panic, "{}", result.console);
    for line in [
        "sysrq: Trigger a crash",
        "sysrq triggered crash",
        "kernel::debug::sysrq::crash+0x",
    ] {
        assert!(
            result.console.contains(line),
            "{line:?}:\n{}",
            result.console
        );
    }
    // The host symbolizer turns the report into source lines.
    let symbolizer = symbols::symbolizer::Symbolizer::open(kernel()).expect("DWARF");
    let annotated = symbols::Annotator::new(&symbolizer, symbols::AnnotateOptions { context: 0 })
        .annotate_str(&result.console);
    assert!(
        annotated.contains("kernel/src/debug/sysrq.rs"),
        "{annotated}"
    );
}

/// The first number after `label` on the line that starts with it.
fn number_after(text: &str, label: &str) -> u64 {
    text.lines()
        .find_map(|line| line.trim_start().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"))
}

#[test]
fn procfs_and_mount_serve_busybox_ps_free_top_uptime_and_mount() {
    let dir = tempfile::tempdir().unwrap();
    let (mut qemu, mut at) = busybox_shell(dir.path());
    // Before procfs is mounted, /proc is an empty directory, as on Linux.
    at = shell_command(&mut qemu, at, "ls /proc | wc -l", "0\r\n");
    at = shell_commands(
        &mut qemu,
        at,
        &[
            ("mount -t proc proc /proc && echo mounted", "mounted\r\n"),
            ("mount | grep ^proc", "proc on /proc type proc (rw)\r\n"),
            // The mount table is per reader; /proc/mounts is Linux's symlink to it.
            ("readlink /proc/mounts", "self/mounts\r\n"),
            ("sleep 60 & echo started", "started\r\n"),
            ("tr '\\0' ' ' < /proc/$!/cmdline; echo", "sleep 60 \r\n"),
            ("cat /proc/$!/comm", "sleep\r\n"),
            // `ps` reads /proc/<pid>/stat and cmdline; the sleeper is sleeping.
            (
                "ps -o pid,ppid,stat,args | grep 'sleep 60$'",
                " S    sleep 60\r\n",
            ),
            (
                "grep -E '^(State|PPid):' /proc/$!/status | tr '\\t\\n' ' '; echo",
                "State: S (sleeping) PPid: 1 \r\n",
            ),
            ("top -b -n 1 | grep -c '[s]leep 60'", "1\r\n"),
            ("kill $! && wait $!; echo wait-$?", "wait-143\r\n"),
            ("readlink /proc/self/fd/0", "/dev/console\r\n"),
            ("readlink /proc/$$/cwd", "/\r\n"),
            ("grep -c '\\[stack\\]' /proc/self/maps", "1\r\n"),
            ("uptime | grep -c 'load average: '", "1\r\n"),
            // tmpfs with options, a full file system, a busy mount, unknown types.
            (
                "mkdir /mnt && mount -t tmpfs -o size=64k,mode=700 scratch /mnt && stat -c %a /mnt",
                "700\r\n",
            ),
            (
                "grep ' /mnt ' /proc/mounts",
                "scratch /mnt tmpfs rw 0 0\r\n",
            ),
            (
                "dd if=/dev/zero of=/mnt/f bs=1k count=100 2>&1 | grep -c 'No space left'",
                "1\r\n",
            ),
            ("cd /mnt && umount /mnt; echo rc-$?; cd /", "rc-1\r\n"),
            ("umount /mnt && grep -c ' /mnt ' /proc/mounts", "0\r\n"),
            (
                "mount -t nosuchfs none /mnt 2>&1 | grep -c 'No such device'",
                "1\r\n",
            ),
            ("umount /tmp 2>&1 | grep -c 'Invalid argument'", "1\r\n"),
        ],
    );
    // `free` and /proc/meminfo agree, and total memory is what QEMU gave (256 MiB, less what
    // firmware and the kernel image keep).
    let before = at;
    at = shell_command(&mut qemu, at, "free; cat /proc/meminfo", "MemTotal:");
    let output = qemu.console()[before..at].to_string();
    let total = number_after(&output, "MemTotal:");
    assert!((200 * 1024..256 * 1024).contains(&total), "{output}");
    assert_eq!(number_after(&output, "Mem:"), total, "{output}");
    let _ = at;
    qemu.send(b"exit\r").unwrap();
    let result = qemu.wait(Some(SHELL_STEP)).unwrap();
    assert_eq!(result.exit, GuestExit::Clean, "{}", result.console);
}

#[test]
fn kmemleak_through_debugfs_like_linux() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = QemuConfig::new(kernel());
    config.initrd = Some(busybox_root(dir.path()));
    // A real leak at boot (`kmemleak_test=leak`), then the shell.
    config.append = "console=ttyS0 kmemleak_test=leak init=/bin/sh".into();
    let mut qemu = config.spawn().unwrap();
    let mut at = qemu
        .wait_for_console("/ # ", 0, SHELL_STEP)
        .unwrap_or_else(|| panic!("no shell prompt:\n{}", qemu.console()));
    let kmemleak = "/sys/kernel/debug/kmemleak";
    at = shell_command(
        &mut qemu,
        at,
        "mount -t debugfs none /sys/kernel/debug && echo mounted",
        "mounted\r\n",
    );
    // What the boot-time scan reported, as on Linux (the file lists the last scan's finds).
    let before = at;
    at = shell_command(&mut qemu, at, &format!("cat {kmemleak}"), "backtrace:");
    let report = qemu.console()[before..at].to_string();
    assert!(report.contains("unreferenced object 0x"), "{report}");
    assert!(report.contains("(size 72):"), "{report}");
    assert!(report.contains("kmemleak_test_leak+0x"), "{report}");
    for (command, expected) in [
        // `clear`: reported objects are not reported again.
        (format!("echo clear > {kmemleak}"), "cleared 1 unreferenced"),
        (format!("echo scan > {kmemleak}"), "kmemleak: scanned "),
        (format!("cat {kmemleak} | wc -l"), "0\r\n"),
        // Commands it does not know are refused, as Linux refuses them.
        (
            format!("echo frobnicate > {kmemleak}; echo rc-$?"),
            "rc-1\r\n",
        ),
        (
            format!("echo mark > {kmemleak}"),
            "mark set at allocation #",
        ),
        (
            format!("mkdir /tmp/new; tail -1 {kmemleak}_since_mark"),
            "allocated after mark #",
        ),
        // Root's only: the debugfs root is 0700.
        ("stat -c %a /sys/kernel/debug".to_string(), "700\r\n"),
    ] {
        at = shell_command(&mut qemu, at, &command, expected);
    }
    let _ = at;
    qemu.send(b"exit\r").unwrap();
    let result = qemu.wait(Some(SHELL_STEP)).unwrap();
    assert_eq!(result.exit, GuestExit::Clean, "{}", result.console);
}

// Parity with Linux: the same initramfs on Debian's own kernel (linux-image-amd64, unpacked by
// scripts/setup.sh into target/debian-linux/) under the same QEMU must print the same lines.

/// Boots `files` on both kernels; returns what userspace printed on each.
fn on_both_kernels(files: &[(&str, &Path)], init_args: &str) -> (Vec<String>, Vec<String>) {
    let cadenza = boot(files, init_args);
    // `quiet`: only warnings; `panic=-1`: init's exit (a panic on Linux) ends the machine.
    let linux = boot_kernel(
        &debian_linux(),
        files,
        &format!("quiet panic=-1 {init_args}"),
    );
    assert_ne!(linux.exit, GuestExit::TimedOut, "{}", linux.console);
    (user_lines(&cadenza.console), user_lines(&linux.console))
}

#[test]
fn the_test_programs_print_the_same_lines_on_debians_linux() {
    for name in [
        "hello",
        "forkexec",
        "signals",
        "timed_waits",
        "memory",
        "threads",
        "jobctl",
        "identity",
        "limits",
        "waitid_mremap",
        "altstack",
        "sighand",
        "file_times",
    ] {
        let binary = program(name);
        let files: &[(&str, &Path)] = &[("init", &binary), ("forkexec", &binary)];
        let (cadenza, linux) = on_both_kernels(files, "-- extra");
        assert!(!cadenza.is_empty(), "{name} printed nothing");
        assert_eq!(
            cadenza, linux,
            "{name}: Cadenza (left) and Linux (right) differ"
        );
    }
}

#[test]
fn unprivileged_users_are_refused_reboot_root_procfs_hard_links_and_the_terminal_as_on_linux() {
    // qemu/tests/userland/security.c: issue #11's findings 1, 6, 7 and 8, each attempt's result
    // line for line as on Linux; getrandom's flags, and that its bytes cannot be reproduced from
    // the TSC read around the call (they could when it was a TSC-seeded xorshift).
    let binary = program("security");
    let (cadenza, linux) = on_both_kernels(&[("init", &binary)], "");
    assert_eq!(
        cadenza, linux,
        "security: Cadenza (left) and Linux (right) differ"
    );
    for line in [
        "reboot POWER_OFF: EPERM",
        "open /proc/1/maps: EACCES",
        "readlink /proc/1/cwd: EACCES",
        "link root's 0600 file: EPERM",
        "TIOCSPGRP own group: ENOTTY",
        "TIOCSCTTY steal: EPERM",
        "TIOCSTI: EPERM",
        "getrandom predictable from the TSC: 0",
        "security checks done",
    ] {
        assert!(
            cadenza.iter().any(|l| l == line),
            "{line:?} missing: {cadenza:#?}"
        );
    }
}

/// Runs qemu/tests/userland/scenarios/<script> with `interpreter` (a path inside the busybox
/// root) as init on Cadenza and on Debian's Linux; both must print the same lines, ending with
/// "scenario done". `extra_files` are copied into the tree (their directories made), symlinks
/// followed.
fn scenario_on_both_kernels(interpreter: &str, script: &str, extra_files: &[(&str, &Path)]) {
    let dir = tempfile::tempdir().unwrap();
    let archive = busybox_root(dir.path());
    let tree = dir.path().join("tree");
    let source = workspace()
        .root()
        .join("qemu/tests/userland/scenarios")
        .join(script);
    std::fs::copy(&source, tree.join("scenario")).unwrap();
    for (name, file) in extra_files {
        let target = tree.join(name);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(file, &target)
            .unwrap_or_else(|e| panic!("copying {} to {name}: {e}", file.display()));
    }
    std::fs::remove_file(&archive).unwrap();
    cadenza_qemu::initramfs::pack_directory(&tree, &archive).unwrap();
    let run = |kernel: &Path, extra: &str| {
        let mut config = QemuConfig::new(kernel.to_path_buf());
        config.initrd = Some(archive.clone());
        // `rdinit=`: Linux's name for a program in the initramfs (`init=` is for root disks).
        config.append = format!("console=ttyS0 {extra} rdinit={interpreter} -- /scenario");
        let result = config.run(Duration::from_secs(120)).expect("QEMU starts");
        assert_ne!(result.exit, GuestExit::TimedOut, "{}", result.console);
        user_lines(&result.console)
    };
    let cadenza = run(&kernel(), "");
    let linux = run(&debian_linux(), "quiet panic=-1");
    assert_eq!(
        cadenza.last().map(String::as_str),
        Some("scenario done"),
        "{script}: {cadenza:#?}"
    );
    assert_eq!(
        cadenza, linux,
        "{script}: Cadenza (left) and Linux (right) differ"
    );
}

#[test]
fn shell_scenarios_print_the_same_lines_on_debians_linux() {
    // Pipelines, redirections, traps, background jobs, many processes and files, tmpfs mounts
    // and procfs readers, in Debian's busybox sh.
    scenario_on_both_kernels("/bin/sh", "shell.sh", &[]);
}

#[test]
fn debians_neofetch_describes_the_machine_as_on_linux() {
    // neofetch: a 10,000-line bash script reading /proc and /etc/os-release through awk, sed,
    // grep and friends (busybox's, installed by the scenario).
    let (bash, neofetch) = (
        Path::new("/bin/bash-static"),
        Path::new("/usr/bin/neofetch"),
    );
    for (file, package) in [(bash, "bash-static"), (neofetch, "neofetch")] {
        assert!(
            file.is_file(),
            "Debian's {package} is needed (scripts/setup.sh installs it)"
        );
    }
    scenario_on_both_kernels(
        "/bin/bash",
        "neofetch.sh",
        &[
            ("bin/bash", bash),
            ("usr/bin/neofetch", neofetch),
            ("etc/os-release", Path::new("/usr/lib/os-release")),
        ],
    );
}

#[test]
fn bash_scenarios_print_the_same_lines_on_debians_linux() {
    // Debian's bash (bash-static): arrays, coprocesses, process substitution, traps, regexes,
    // job control in a script, ulimit.
    let bash = Path::new("/bin/bash-static");
    assert!(
        bash.is_file(),
        "Debian's bash-static is needed (scripts/setup.sh installs it)"
    );
    scenario_on_both_kernels("/bin/bash", "bash.sh", &[("bin/bash", bash)]);
}

#[test]
fn private_file_mappings_behave_as_on_debians_linux() {
    // mmap of a regular file (MAP_PRIVATE): contents, private writes, fork, MAP_FIXED over a
    // reservation, mprotect, munmap, and Linux's errors.
    let binary = program("mmap_file");
    let (cadenza, linux) = on_both_kernels(&[("init", &binary)], "");
    assert_eq!(
        cadenza.last().map(String::as_str),
        Some("mmap_file done"),
        "{cadenza:#?}"
    );
    assert_eq!(cadenza, linux, "Cadenza (left) and Linux (right) differ");
}

/// The shared libraries `ldd` lists for `program`, the dynamic linker included (paths as the
/// program finds them, such as /lib/x86_64-linux-gnu/libc.so.6 and /lib64/ld-linux-x86-64.so.2;
/// the vDSO has none).
fn shared_libraries(program: &Path) -> Vec<PathBuf> {
    let output = Command::new("ldd").arg(program).output().expect("ldd runs");
    assert!(output.status.success(), "ldd {}", program.display());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, found)) => found.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Debian's programs `names` as usr/bin/<name>, with the shared libraries `ldd` lists for them
/// (at the paths it lists, symlinks followed): (path in the tree, file on the host).
fn debian_programs(names: &[&str]) -> Vec<(String, PathBuf)> {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for name in names {
        let path = ["/usr/bin", "/bin"]
            .iter()
            .map(|dir| Path::new(dir).join(name))
            .find(|path| path.is_file())
            .unwrap_or_else(|| panic!("Debian's coreutils {name} is needed"));
        for library in shared_libraries(&path) {
            let inside = library
                .to_str()
                .unwrap()
                .trim_start_matches('/')
                .to_string();
            if !files.iter().any(|(known, _)| *known == inside) {
                files.push((inside, library));
            }
        }
        files.push((format!("usr/bin/{name}"), path));
    }
    files
}

#[test]
fn dynamically_linked_programs_leak_nothing() {
    // ld.so mapping libc into every process: file mappings, the interpreter's load and the
    // regions' references to the open files must all go when the process does.
    let mut files = debian_programs(&["cat"]);
    // Copies of busybox run the applet they are named after.
    for applet in ["sh", "mount"] {
        files.push((format!("bin/{applet}"), PathBuf::from("/bin/busybox")));
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("loop");
    std::fs::write(
        &script,
        "/bin/mount -t proc proc /proc\n\
         i=0\n\
         while [ $i -lt $1 ]; do /usr/bin/cat /loop > /dev/null || echo failed; i=$((i + 1)); done\n\
         while read key value unit; do [ $key = MemFree: ] && echo \"free: $value\"; done < /proc/meminfo\n\
         exit 0\n",
    )
    .unwrap();
    files.push(("loop".into(), script));
    let files: Vec<(&str, &Path)> = files
        .iter()
        .map(|(name, path)| (name.as_str(), path.as_path()))
        .collect();
    let run = |cycles: u32| {
        let result = boot(&files, &format!("rdinit=/bin/sh -- /loop {cycles}"));
        assert!(
            result.console.contains("sh[1]: exited with status 0"),
            "{}",
            result.console
        );
        assert!(!result.console.contains("failed"), "{}", result.console);
        let free: u64 = result
            .console
            .lines()
            .find_map(|l| l.strip_prefix("free: "))
            .and_then(|kib| kib.trim().parse().ok())
            .unwrap_or_else(|| panic!("no free memory line:\n{}", result.console));
        (shutdown_report(&result.console), free, result.console)
    };
    let ((live_before, bytes_before, leaks_before), free_before, console) = run(1);
    assert_eq!(leaks_before, 0, "{console}");
    let ((live_after, bytes_after, leaks_after), free_after, console) = run(200);
    assert_eq!(leaks_after, 0, "{console}");
    assert_eq!(
        (live_after, bytes_after),
        (live_before, bytes_before),
        "the heap is back to its baseline after 200 dynamically linked programs"
    );
    assert_eq!(
        free_after, free_before,
        "free memory is back to its baseline after 200 dynamically linked programs"
    );
}

#[test]
fn debians_dynamically_linked_coreutils_print_the_same_lines_on_debians_linux() {
    // Debian's coreutils with glibc's ld.so and exactly the libraries ldd lists: the kernel
    // loads the program and ld.so, ld.so maps libc (and libselinux and libpcre2 for ls) with
    // file mmaps. The programs go to /usr/bin (/bin is busybox's).
    let mut files = debian_programs(&["ls", "cat", "echo", "wc", "sort", "env", "true", "false"]);
    let interpreter = "lib64/ld-linux-x86-64.so.2";
    assert!(
        files.iter().any(|(name, _)| name == interpreter),
        "{files:?}"
    );
    // Data of known content, and `true` with its PT_INTERP renamed (same length) to a missing
    // file and to a file that is not an ELF.
    let staging = tempfile::tempdir().unwrap();
    let mut stage = |name: &str, contents: &[u8]| {
        use std::os::unix::fs::PermissionsExt;
        let path = staging.path().join(name.replace('/', "_"));
        std::fs::write(&path, contents).unwrap();
        let mode = if name.starts_with("data/") {
            0o644
        } else {
            0o755
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        files.push((name.to_string(), path));
    };
    stage("data/fruits", b"cherry\napple\nbanana\ndate\n");
    stage("data/numbers", b"10\n9\n100\n-3\n42\n");
    stage("data/one-byte", b"x");
    let true_image = std::fs::read(Path::new("/usr/bin/true")).unwrap();
    let with_interpreter = |path: &[u8]| {
        let from = b"/lib64/ld-linux-x86-64.so.2";
        assert_eq!(path.len(), from.len());
        let at = true_image
            .windows(from.len())
            .position(|w| w == from)
            .expect("true names ld.so");
        let mut image = true_image.clone();
        image[at..at + from.len()].copy_from_slice(path);
        image
    };
    stage(
        "missing-interpreter",
        &with_interpreter(b"/lib64/ld-nonex-x86-64.so.2"),
    );
    stage(
        "corrupt-interpreter",
        &with_interpreter(b"/lib64/ld-broke-x86-64.so.2"),
    );
    stage(
        "lib64/ld-broke-x86-64.so.2",
        "this is not an ELF file, but it is longer than an ELF header is.\n"
            .repeat(2)
            .as_bytes(),
    );
    let extra: Vec<(&str, &Path)> = files
        .iter()
        .map(|(name, path)| (name.as_str(), path.as_path()))
        .collect();
    scenario_on_both_kernels("/bin/sh", "coreutils.sh", &extra);
}

/// The program's printed lines, the same on Cadenza and on Debian's Linux.
fn prints_the_same_on_debians_linux(name: &str, init_args: &str) -> Vec<String> {
    let binary = program(name);
    let (cadenza, linux) = on_both_kernels(&[("init", &binary)], init_args);
    assert!(!cadenza.is_empty(), "{name} printed nothing");
    assert_eq!(
        cadenza, linux,
        "{name}: Cadenza (left) and Linux (right) differ"
    );
    cadenza
}

#[test]
fn threads_blocked_in_the_kernel_end_with_their_process_as_on_debians_linux() {
    let lines = prints_the_same_on_debians_linux("thread_exit", "");
    assert!(
        lines.contains(&"pipe-read killed: killed by signal 9".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"futex thread-execs: exited 5".to_string()),
        "{lines:?}"
    );
}

#[test]
fn threads_blocked_in_the_kernel_unwind_when_their_process_ends_and_leak_nothing() {
    // Each round: 16 processes whose second thread is blocked (in a 1 MiB pipe read or write,
    // nanosleep, a futex) when the process exits, is killed or execs.
    many_rounds_leave_the_heap_as_one_does("thread_exit", 100, "thread_exit: 100 rounds done");
}

#[test]
fn rlimit_nproc_stops_an_unprivileged_fork_loop_as_on_debians_linux() {
    let lines = prints_the_same_on_debians_linux("nproc", "");
    assert!(
        lines.contains(&"fork: EAGAIN after 19".to_string()),
        "{lines:?}"
    );
}

#[test]
fn an_unlimited_unprivileged_fork_bomb_ends_in_eagain_not_a_panic() {
    let result = boot(&[("init", &program("nproc"))], "-- bomb");
    assert_printed(
        &result.console,
        &[
            "fork: EAGAIN after more than 100",
            "reaped all, all killed: yes",
            "fork after reaping: ok",
            "unprivileged child: exited 0",
            "root fork at RLIMIT_NPROC 1: ok",
        ],
    );
    assert_eq!(result.exit, GuestExit::Clean, "{}", result.console);
}

#[test]
fn bad_buffers_big_pipe_writes_and_bad_signal_frames_behave_as_on_debians_linux() {
    let lines = prints_the_same_on_debians_linux("transfers", "");
    assert!(lines.contains(&"transfers done".to_string()), "{lines:?}");
}
