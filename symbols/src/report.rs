//! Parsing the kernel's panic report (docs/panic-report.md, format v1).
//!
//! The report is found anywhere in a console log: lines before and after it, and console
//! timestamps in front of lines, are ignored. Parsing is strict about the markers and lenient
//! about extra text after a backtrace address, so that later additions (in-kernel
//! `symbol+off/size`) do not break older tools.

use thiserror::Error;

pub const BEGIN: &str = "==== CADENZA PANIC REPORT v1 ====";
pub const END: &str = "==== END CADENZA PANIC REPORT ====";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanicKind {
    Panic,
    Exception,
}

/// A source location as printed in `location:` lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: u32,
    pub column: u32,
}

/// A CPU exception as printed in `exception:` lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exception {
    pub mnemonic: String,
    pub vector: u8,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PanicReport {
    pub kind: PanicKind,
    pub message: String,
    pub location: Option<Location>,
    pub exception: Option<Exception>,
    pub error_code: Option<u64>,
    pub cpu: u32,
    pub uptime_ns: u64,
    /// Register name (as printed, e.g. `RIP`, `CR2`) and value, in report order.
    pub registers: Vec<(String, u64)>,
    /// Frame addresses, innermost first.
    pub backtrace: Vec<u64>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("no panic report in the log (no line '{BEGIN}')")]
    NotFound,
    #[error("the panic report is truncated: no line '{END}' after the start marker")]
    Truncated,
    #[error("line {line} of the panic report is malformed: {reason}: {text:?}")]
    Malformed {
        line: usize,
        reason: &'static str,
        text: String,
    },
    #[error("the panic report lacks its '{0}' line")]
    Missing(&'static str),
}

/// Drops a `[    1.234567] ` console timestamp, if present.
fn strip_timestamp(line: &str) -> &str {
    let trimmed = line.trim_end_matches('\r');
    if let Some(rest) = trimmed.strip_prefix('[')
        && let Some((stamp, after)) = rest.split_once("] ")
        && stamp.trim().chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        return after;
    }
    trimmed
}

fn parse_hex(text: &str) -> Option<u64> {
    u64::from_str_radix(text.strip_prefix("0x")?, 16).ok()
}

impl PanicReport {
    /// Finds and parses the first panic report in `log`.
    pub fn find_in(log: &str) -> Result<Self, ReportError> {
        let mut lines = log.lines().map(strip_timestamp).enumerate();
        lines
            .by_ref()
            .find(|(_, l)| l.trim() == BEGIN)
            .ok_or(ReportError::NotFound)?;

        let mut kind = None;
        let mut message = None;
        let mut location = None;
        let mut exception = None;
        let mut error_code = None;
        let mut cpu = None;
        let mut uptime_ns = None;
        let mut registers = Vec::new();
        let mut backtrace = Vec::new();
        let mut section = "";

        for (index, line) in lines {
            let number = index + 1;
            let malformed = |reason| ReportError::Malformed {
                line: number,
                reason,
                text: line.to_string(),
            };
            if line.trim() == END {
                return Ok(Self {
                    kind: kind.ok_or(ReportError::Missing("kind"))?,
                    message: message.ok_or(ReportError::Missing("message"))?,
                    location,
                    exception,
                    error_code,
                    cpu: cpu.ok_or(ReportError::Missing("cpu"))?,
                    uptime_ns: uptime_ns.ok_or(ReportError::Missing("uptime_ns"))?,
                    registers,
                    backtrace,
                });
            }
            // The report never contains blank lines or a second start marker: the report was cut
            // off and other output followed.
            if line.trim().is_empty() || line.trim() == BEGIN {
                return Err(ReportError::Truncated);
            }
            if let Some(body) = line.strip_prefix("  ") {
                match section {
                    "registers" => {
                        for pair in body.split_whitespace() {
                            let (name, value) = pair
                                .split_once('=')
                                .ok_or_else(|| malformed("register without '='"))?;
                            let value = parse_hex(value)
                                .ok_or_else(|| malformed("register value is not 0x-hex"))?;
                            registers.push((name.to_string(), value));
                        }
                    }
                    "backtrace" => {
                        let mut words = body.split_whitespace();
                        let frame = words.next().unwrap_or("");
                        if !frame.starts_with('#') {
                            return Err(malformed("backtrace line does not start with #N"));
                        }
                        let address = words
                            .next()
                            .and_then(parse_hex)
                            .ok_or_else(|| malformed("backtrace address is not 0x-hex"))?;
                        backtrace.push(address);
                    }
                    _ => return Err(malformed("indented line outside registers/backtrace")),
                }
                continue;
            }
            let (key, value) = line
                .split_once(':')
                .ok_or_else(|| malformed("expected 'key: value'"))?;
            let value = value.trim();
            section = "";
            match key {
                "kind" => {
                    kind = Some(match value {
                        "panic" => PanicKind::Panic,
                        "exception" => PanicKind::Exception,
                        _ => return Err(malformed("unknown kind")),
                    })
                }
                "message" => message = Some(value.to_string()),
                "location" => {
                    let mut parts = value.rsplitn(3, ':');
                    let column = parts.next().and_then(|c| c.parse().ok());
                    let line_no = parts.next().and_then(|l| l.parse().ok());
                    let file = parts.next();
                    match (file, line_no, column) {
                        (Some(file), Some(line), Some(column)) => {
                            location = Some(Location {
                                file: file.to_string(),
                                line,
                                column,
                            })
                        }
                        _ => return Err(malformed("location is not FILE:LINE:COLUMN")),
                    }
                }
                "exception" => {
                    let mut parts = value.splitn(3, ' ');
                    let mnemonic = parts.next().unwrap_or_default().to_string();
                    let vector = parts
                        .next()
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| malformed("exception vector is not a number"))?;
                    let name = parts.next().unwrap_or_default().to_string();
                    exception = Some(Exception {
                        mnemonic,
                        vector,
                        name,
                    });
                }
                "error_code" => {
                    error_code = Some(
                        parse_hex(value).ok_or_else(|| malformed("error code is not 0x-hex"))?,
                    )
                }
                "cpu" => {
                    cpu = Some(
                        value
                            .parse()
                            .map_err(|_| malformed("cpu is not a number"))?,
                    )
                }
                "uptime_ns" => {
                    uptime_ns = Some(
                        value
                            .parse()
                            .map_err(|_| malformed("uptime_ns is not a number"))?,
                    )
                }
                "registers" | "backtrace" => {
                    section = if key == "registers" {
                        "registers"
                    } else {
                        "backtrace"
                    }
                }
                _ => {} // Unknown keys are allowed: newer kernels may add lines.
            }
        }
        Err(ReportError::Truncated)
    }

    /// The value of register `name` (e.g. `"CR2"`), if the report has it.
    pub fn register(&self, name: &str) -> Option<u64> {
        self.registers
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXCEPTION_LOG: &str = "\
[    0.001043] initrd: none
[    0.001100] fault_test: raising page_fault

==== CADENZA PANIC REPORT v1 ====
kind: exception
message: page fault (#PF) at 0xdeadb000: kernel read, page not present, RIP 0xffffffff80214204
exception: #PF 14 page fault
error_code: 0x0
cpu: 0
uptime_ns: 1043512
registers:
  RIP=0xffffffff80214204 RSP=0xffffffff8025c4f0 RFLAGS=0x0000000000010082
  CR2=0x00000000deadb000
backtrace:
  #0 0xffffffff80214204
  #1 0xffffffff8020bce6 kernel::run_requested_mode+0x46/0x300
==== END CADENZA PANIC REPORT ====
trailing noise
";

    #[test]
    fn parses_an_exception_report_inside_a_log() {
        let report = PanicReport::find_in(EXCEPTION_LOG).expect("report parses");
        assert_eq!(report.kind, PanicKind::Exception);
        assert!(report.message.starts_with("page fault (#PF) at 0xdeadb000"));
        let exception = report.exception.as_ref().expect("exception line");
        assert_eq!((exception.mnemonic.as_str(), exception.vector), ("#PF", 14));
        assert_eq!(exception.name, "page fault");
        assert_eq!(report.error_code, Some(0));
        assert_eq!(report.register("CR2"), Some(0xdead_b000));
        assert_eq!(report.register("RIP"), Some(0xffff_ffff_8021_4204));
        assert_eq!(
            report.backtrace,
            vec![0xffff_ffff_8021_4204, 0xffff_ffff_8020_bce6]
        );
        assert_eq!(report.uptime_ns, 1_043_512);
        assert_eq!(report.location, None);
    }

    #[test]
    fn parses_a_panic_location_with_timestamps_and_crlf() {
        let log = "[    0.1] boot\r\n==== CADENZA PANIC REPORT v1 ====\r\nkind: panic\r\nmessage: oops: a:b\r\n\
                   location: kernel/src/debug/crash.rs:39:5\r\ncpu: 0\r\nuptime_ns: 7\r\nregisters:\r\n  RSP=0x10\r\n\
                   backtrace:\r\n==== END CADENZA PANIC REPORT ====\r\n";
        let report = PanicReport::find_in(log).expect("report parses");
        assert_eq!(report.kind, PanicKind::Panic);
        assert_eq!(report.message, "oops: a:b");
        let location = report.location.expect("location");
        assert_eq!(
            (location.file.as_str(), location.line, location.column),
            ("kernel/src/debug/crash.rs", 39, 5)
        );
        assert!(report.backtrace.is_empty());
    }

    #[test]
    fn reports_what_is_wrong_with_bad_input() {
        assert_eq!(
            PanicReport::find_in("just a log\n"),
            Err(ReportError::NotFound)
        );
        let truncated = EXCEPTION_LOG.replace(END, "");
        assert_eq!(
            PanicReport::find_in(&truncated),
            Err(ReportError::Truncated)
        );
        let bad_addr = EXCEPTION_LOG.replace("#1 0xffffffff8020bce6", "#1 nothex");
        assert!(matches!(
            PanicReport::find_in(&bad_addr),
            Err(ReportError::Malformed {
                reason: "backtrace address is not 0x-hex",
                ..
            })
        ));
        let no_kind = EXCEPTION_LOG.replace("kind: exception\n", "");
        assert_eq!(
            PanicReport::find_in(&no_kind),
            Err(ReportError::Missing("kind"))
        );
    }
}
