//! Starting QEMU the way Linux is booted (`-kernel`, `-initrd`, `-append`), with the guest's
//! serial ports wired to the terminal, to the launcher itself, to files or to sockets.
//!
//! Two choices here are deliberate. TCG is the default accelerator: nested KVM on our CI machines
//! hangs guests and kills QEMU on a guest `int3`, while TCG behaves the same everywhere (KVM stays
//! one flag away for real machines). And every run can be bounded: `Running::wait` kills QEMU
//! when its timeout expires, and dropping a `Running` kills it too, so no caller can leak a
//! guest that spins forever.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::exit::GuestExit;

/// The I/O port and size of QEMU's `isa-debug-exit` device; the kernel writes its exit code there.
pub const DEBUG_EXIT_DEVICE: &str = "isa-debug-exit,iobase=0xf4,iosize=0x04";
/// COM1..COM4 on the PC machine.
pub const MAX_SERIAL_PORTS: usize = 4;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Accel {
    /// QEMU's emulator: slower, identical everywhere, every debug feature works.
    #[default]
    Tcg,
    /// Hardware virtualisation: fast on real machines; under nested KVM guest `int3` may kill QEMU.
    Kvm,
}

impl FromStr for Accel {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "tcg" => Ok(Self::Tcg),
            "kvm" => Ok(Self::Kvm),
            other => Err(format!("unknown accelerator {other:?}: use tcg or kvm")),
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcg => "tcg",
            Self::Kvm => "kvm",
        })
    }
}

/// Where one guest serial port (`ttyS<n>`) goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SerialBackend {
    /// The launcher's terminal: QEMU reads our stdin and writes our stdout (interactive use).
    Stdio,
    /// Captured by the launcher: read it through `Running`, send input with `Running::send`.
    Capture,
    /// Written to a file.
    File(PathBuf),
    /// A TCP server on 127.0.0.1 (gdb: `target remote :PORT`).
    Tcp(u16),
    /// A unix-socket server (gdb: `target remote PATH`).
    Unix(PathBuf),
    /// Present in the guest, connected to nothing.
    Null,
}

impl SerialBackend {
    fn qemu_arg(&self) -> OsString {
        match self {
            Self::Stdio | Self::Capture => "stdio".into(),
            Self::File(path) => prefixed("file:", path),
            // nodelay: gdb trades many tiny packets; with Nagle every round trip waits ~40 ms.
            Self::Tcp(port) => format!("tcp:127.0.0.1:{port},server=on,wait=off,nodelay=on").into(),
            Self::Unix(path) => {
                let mut arg = prefixed("unix:", path);
                arg.push(",server=on,wait=off");
                arg
            }
            Self::Null => "null".into(),
        }
    }

    fn uses_stdio(&self) -> bool {
        matches!(self, Self::Stdio | Self::Capture)
    }
}

impl FromStr for SerialBackend {
    type Err = String;

    /// `stdio`, `null`, `file:PATH`, `tcp:PORT` (or `tcp::PORT`), `unix:PATH`.
    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(port) = text.strip_prefix("tcp:") {
            let port = port.trim_start_matches(':');
            return port
                .parse()
                .map(Self::Tcp)
                .map_err(|_| format!("bad TCP port {port:?} in {text:?}"));
        }
        if let Some(path) = text.strip_prefix("unix:") {
            return Ok(Self::Unix(path.into()));
        }
        if let Some(path) = text.strip_prefix("file:") {
            return Ok(Self::File(path.into()));
        }
        match text {
            "stdio" => Ok(Self::Stdio),
            "null" => Ok(Self::Null),
            _ => Err(format!(
                "unknown serial backend {text:?}: use stdio, null, file:PATH, tcp:PORT or unix:PATH"
            )),
        }
    }
}

fn prefixed(prefix: &str, path: &Path) -> OsString {
    let mut arg = OsString::from(prefix);
    arg.push(path.as_os_str());
    arg
}

/// QEMU's own gdb stub (`-gdb tcp::PORT`), which sees vCPUs rather than kernel tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QemuGdb {
    pub port: u16,
    /// Freeze the CPU at the first instruction until gdb says `continue` (`-S`).
    pub wait_for_attach: bool,
}

#[derive(Debug, Error)]
pub enum LaunchError {
    #[error(
        "{binary} not found: install QEMU (Debian: apt-get install -y qemu-system-x86), \
         or run `bash scripts/setup.sh`"
    )]
    QemuNotFound { binary: String },
    #[error(
        "kernel image {0} does not exist: build it with `cargo build -p kernel --release --target x86_64-unknown-none`"
    )]
    KernelMissing(PathBuf),
    #[error("initramfs {0} does not exist")]
    InitrdMissing(PathBuf),
    #[error("at most {MAX_SERIAL_PORTS} serial ports (ttyS0..ttyS3); {0} were given")]
    TooManySerialPorts(usize),
    #[error(
        "only one serial port can use the launcher's stdio; ttyS{first} and ttyS{second} both do"
    )]
    StdioTwice { first: usize, second: usize },
    #[error("cannot start {binary}: {source}")]
    Spawn { binary: String, source: io::Error },
    #[error("waiting for QEMU failed: {0}")]
    Wait(io::Error),
}

#[derive(Clone, Debug)]
pub struct QemuConfig {
    /// `qemu-system-x86_64` unless overridden (a name is looked up on `PATH`).
    pub qemu_binary: PathBuf,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    /// The kernel command line (`-append`).
    pub append: String,
    pub accel: Accel,
    pub memory_mib: u32,
    /// `serial[n]` is `ttyS<n>`.
    pub serial: Vec<SerialBackend>,
    pub qemu_gdb: Option<QemuGdb>,
    /// Echo QEMU's own stderr (warnings, errors) to ours as it comes, besides capturing it.
    pub echo_stderr: bool,
    /// Appended verbatim.
    pub extra_args: Vec<OsString>,
    /// Kill QEMU when the thread that spawned it ends, even by SIGKILL (Linux's
    /// `PR_SET_PDEATHSIG`), so a front end that dies cannot leave a guest running. The kernel
    /// ties this to the spawning *thread*: set it only when spawning from one that lives as
    /// long as the guest should (the TUI's and the CLI's main threads).
    pub exit_with_parent: bool,
}

/// Makes the child get SIGKILL when the spawning thread ends (`PR_SET_PDEATHSIG`). If the
/// parent is already gone by the time the child runs the hook (it was re-parented), the spawn
/// fails instead of leaving an orphan.
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the hook runs in the forked child before `exec` and only makes two
    // async-signal-safe system calls (`prctl`, `getppid`), touching no locks or allocations.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other(
                    "the launcher exited during the spawn",
                ));
            }
            Ok(())
        });
    }
}

impl QemuConfig {
    /// TCG, 256 MiB, the console captured on ttyS0 and a spare ttyS1 (the self-tests use it).
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        Self {
            qemu_binary: "qemu-system-x86_64".into(),
            kernel: kernel.into(),
            initrd: None,
            append: "console=ttyS0".into(),
            accel: Accel::Tcg,
            memory_mib: 256,
            serial: vec![SerialBackend::Capture, SerialBackend::Null],
            qemu_gdb: None,
            echo_stderr: false,
            extra_args: Vec::new(),
            exit_with_parent: false,
        }
    }

    fn validate(&self) -> Result<(), LaunchError> {
        if self.serial.len() > MAX_SERIAL_PORTS {
            return Err(LaunchError::TooManySerialPorts(self.serial.len()));
        }
        let mut stdio = self
            .serial
            .iter()
            .enumerate()
            .filter(|(_, s)| s.uses_stdio());
        if let (Some((first, _)), Some((second, _))) = (stdio.next(), stdio.next()) {
            return Err(LaunchError::StdioTwice { first, second });
        }
        if !self.kernel.is_file() {
            return Err(LaunchError::KernelMissing(self.kernel.clone()));
        }
        if let Some(initrd) = &self.initrd
            && !initrd.is_file()
        {
            return Err(LaunchError::InitrdMissing(initrd.clone()));
        }
        find_executable(&self.qemu_binary).ok_or_else(|| LaunchError::QemuNotFound {
            binary: self.qemu_binary.display().to_string(),
        })?;
        Ok(())
    }

    /// QEMU's arguments (without the binary).
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
        push(&["-machine", "pc", "-accel", &self.accel.to_string()]);
        push(&["-cpu", "max", "-m", &format!("{}M", self.memory_mib)]);
        push(&["-nodefaults", "-display", "none", "-monitor", "none"]);
        push(&["-no-reboot", "-device", DEBUG_EXIT_DEVICE]);
        args.push("-kernel".into());
        args.push(self.kernel.clone().into_os_string());
        if let Some(initrd) = &self.initrd {
            args.push("-initrd".into());
            args.push(initrd.clone().into_os_string());
        }
        args.push("-append".into());
        args.push(self.append.clone().into());
        for port in &self.serial {
            args.push("-serial".into());
            args.push(port.qemu_arg());
        }
        if let Some(gdb) = self.qemu_gdb {
            args.push("-gdb".into());
            args.push(format!("tcp:127.0.0.1:{}", gdb.port).into());
            if gdb.wait_for_attach {
                args.push("-S".into());
            }
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// The whole command, quoted for a shell (for logs and "run this yourself" hints).
    pub fn command_line(&self) -> String {
        let mut words = vec![shell_quote(&self.qemu_binary.to_string_lossy())];
        words.extend(
            self.args()
                .iter()
                .map(|a| shell_quote(&a.to_string_lossy())),
        );
        words.join(" ")
    }

    /// Starts QEMU.
    pub fn spawn(&self) -> Result<Running, LaunchError> {
        self.validate()?;
        let mut command = Command::new(&self.qemu_binary);
        command.args(self.args());
        let capture = self.serial.contains(&SerialBackend::Capture);
        let interactive = self.serial.contains(&SerialBackend::Stdio);
        if capture {
            command.stdin(Stdio::piped()).stdout(Stdio::piped());
        } else if interactive {
            command.stdin(Stdio::inherit()).stdout(Stdio::inherit());
        } else {
            command.stdin(Stdio::null()).stdout(Stdio::null());
        }
        command.stderr(Stdio::piped());
        if self.exit_with_parent {
            die_with_parent(&mut command);
        }
        let mut child = command.spawn().map_err(|source| LaunchError::Spawn {
            binary: self.qemu_binary.display().to_string(),
            source,
        })?;
        let mut readers = Vec::new();
        let console = if capture {
            let buffer = Arc::new(Shared::default());
            let stdout = child.stdout.take().expect("stdout is piped");
            readers.push(buffer.clone().collect(stdout, false));
            Some(buffer)
        } else {
            None
        };
        let stderr = Arc::new(Shared::default());
        let pipe = child.stderr.take().expect("stderr is piped");
        readers.push(stderr.clone().collect(pipe, self.echo_stderr));
        Ok(Running {
            stdin: child.stdin.take(),
            child,
            console,
            stderr,
            readers,
            started: Instant::now(),
        })
    }

    /// Starts QEMU and waits for it, killing it after `timeout`.
    pub fn run(&self, timeout: Duration) -> Result<RunResult, LaunchError> {
        self.spawn()?.wait(Some(timeout))
    }
}

/// Output collected from one of QEMU's pipes by a reader thread.
#[derive(Default)]
pub(crate) struct Shared {
    bytes: Mutex<Vec<u8>>,
    grew: Condvar,
}

impl Shared {
    pub(crate) fn collect(
        self: Arc<Self>,
        mut pipe: impl Read + Send + 'static,
        echo: bool,
    ) -> JoinHandle<()> {
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if echo {
                            let _ = io::stderr().write_all(&chunk[..n]);
                        }
                        let mut bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
                        bytes.extend_from_slice(&chunk[..n]);
                        self.grew.notify_all();
                    }
                }
            }
        })
    }

    pub(crate) fn text(&self) -> String {
        let bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Waits until the text from byte `from` on contains `needle`; returns the offset just past it.
    pub(crate) fn wait_for(&self, needle: &str, from: usize, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        let mut bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let start = from.min(bytes.len());
            if let Some(at) = find(&bytes[start..], needle.as_bytes()) {
                return Some(start + at + needle.len());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            bytes = self
                .grew
                .wait_timeout(bytes, left.min(Duration::from_millis(100)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A QEMU process. Dropping it kills QEMU.
pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    console: Option<Arc<Shared>>,
    stderr: Arc<Shared>,
    readers: Vec<JoinHandle<()>>,
    started: Instant,
}

/// How a run ended and what it printed.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub exit: GuestExit,
    /// The captured console (empty unless a port used `SerialBackend::Capture`).
    pub console: String,
    /// QEMU's own stderr.
    pub stderr: String,
    pub elapsed: Duration,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The captured console so far.
    pub fn console(&self) -> String {
        self.console.as_ref().map(|c| c.text()).unwrap_or_default()
    }

    /// Bytes of console captured so far (an offset for `wait_for_console`).
    pub fn console_len(&self) -> usize {
        self.console.as_ref().map_or(0, |c| c.len())
    }

    /// Waits until the captured console, from byte offset `from` on, contains `needle`.
    /// Returns the offset just past the match, or `None` on timeout.
    pub fn wait_for_console(&self, needle: &str, from: usize, timeout: Duration) -> Option<usize> {
        self.console.as_ref()?.wait_for(needle, from, timeout)
    }

    /// Types into the captured console.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stdin = self.stdin.as_mut().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "the console is not captured")
        })?;
        stdin.write_all(bytes)?;
        stdin.flush()
    }

    /// Whether QEMU has exited, without waiting.
    pub fn try_exit(&mut self) -> Result<Option<GuestExit>, LaunchError> {
        Ok(self
            .child
            .try_wait()
            .map_err(LaunchError::Wait)?
            .map(GuestExit::from_status))
    }

    /// Waits for QEMU to exit, killing it once `timeout` (counted from the start) has passed.
    pub fn wait(mut self, timeout: Option<Duration>) -> Result<RunResult, LaunchError> {
        let deadline = timeout.map(|t| self.started + t);
        let exit = loop {
            if let Some(status) = self.child.try_wait().map_err(LaunchError::Wait)? {
                break GuestExit::from_status(status);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.kill();
                break GuestExit::TimedOut;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // The pipes close when QEMU exits, so the readers finish.
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Ok(RunResult {
            exit,
            console: self.console(),
            stderr: self.stderr.text(),
            elapsed: self.started.elapsed(),
        })
    }

    /// Kills QEMU (no-op if it already exited).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_local_port() -> io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn find_executable(binary: &Path) -> Option<PathBuf> {
    if binary.components().count() > 1 {
        return binary.is_file().then(|| binary.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
}

fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The pids of `parent`'s child processes, from Linux's /proc (for tests and tools that check
/// what a launcher left behind).
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| proc_stat(pid).is_some_and(|(_, ppid)| ppid == parent))
        .collect()
}

/// Whether process `pid` exists and is not a zombie.
pub fn is_running(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// State letter and parent pid from `/proc/<pid>/stat` (`pid (comm) state ppid ...`; the name
/// may hold spaces and parentheses, so the fields are read after the last `)`).
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> QemuConfig {
        // Any existing file will do as the "kernel" for argument checks.
        QemuConfig::new(env!("CARGO_MANIFEST_PATH"))
    }

    #[test]
    fn missing_qemu_is_one_clear_error() {
        let mut config = config();
        config.qemu_binary = "qemu-system-definitely-not-installed".into();
        let error = config.spawn().err().expect("must fail").to_string();
        assert!(error.contains("not found"), "{error}");
        assert!(
            error.contains("apt-get install -y qemu-system-x86"),
            "{error}"
        );
        assert_eq!(error.lines().count(), 1);
    }

    #[test]
    fn rejects_bad_serial_wiring_and_missing_files() {
        let mut two = config();
        two.serial = vec![SerialBackend::Stdio, SerialBackend::Capture];
        assert!(matches!(
            two.spawn().err(),
            Some(LaunchError::StdioTwice {
                first: 0,
                second: 1
            })
        ));
        let mut five = config();
        five.serial = vec![SerialBackend::Null; 5];
        assert!(matches!(
            five.spawn().err(),
            Some(LaunchError::TooManySerialPorts(5))
        ));
        let missing = QemuConfig::new("/nonexistent/kernel");
        assert!(matches!(
            missing.spawn().err(),
            Some(LaunchError::KernelMissing(_))
        ));
    }

    #[test]
    fn builds_the_linux_style_command_line() {
        let mut config = config();
        config.initrd = Some("/tmp/root.cpio".into());
        config.append = "console=ttyS0 kgdbwait".into();
        config.serial = vec![
            SerialBackend::Capture,
            SerialBackend::Tcp(4444),
            SerialBackend::Unix("/tmp/s".into()),
        ];
        config.qemu_gdb = Some(QemuGdb {
            port: 1234,
            wait_for_attach: true,
        });
        let line = config.command_line();
        for expected in [
            "-accel tcg",
            "-initrd /tmp/root.cpio",
            "-append 'console=ttyS0 kgdbwait'",
            "-serial stdio -serial tcp:127.0.0.1:4444,server=on,wait=off,nodelay=on -serial unix:/tmp/s,server=on,wait=off",
            "-gdb tcp:127.0.0.1:1234 -S",
            "-device isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-no-reboot",
        ] {
            assert!(line.contains(expected), "{expected:?} not in {line}");
        }
        config.accel = "kvm".parse().unwrap();
        assert!(config.command_line().contains("-accel kvm"));
    }

    #[test]
    fn parses_serial_backends() {
        assert_eq!("tcp::1234".parse(), Ok(SerialBackend::Tcp(1234)));
        assert_eq!("tcp:99".parse(), Ok(SerialBackend::Tcp(99)));
        assert_eq!(
            "unix:/tmp/x".parse(),
            Ok(SerialBackend::Unix("/tmp/x".into()))
        );
        assert_eq!("null".parse(), Ok(SerialBackend::Null));
        assert!("tcp:abc".parse::<SerialBackend>().is_err());
        assert!("telnet:1".parse::<SerialBackend>().is_err());
        assert!("hvf".parse::<Accel>().is_err());
    }
}
