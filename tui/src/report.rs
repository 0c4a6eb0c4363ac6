//! The `s` key: everything the TUI knows about the run, in one text file a colleague can read
//! without the TUI — session facts, the annotated panic, the last telemetry snapshot in its
//! wire format (parsable again with `Snapshot::parse`), QEMU's stderr and the full console log.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::app::{App, QemuState, TelemetryStatus};
use crate::panic;

/// The report's text.
pub fn compose(app: &App) -> String {
    let mut out = String::new();
    let mut section = |title: &str, body: &str| {
        out.push_str(&format!("===== {title} =====\n"));
        out.push_str(body);
        if !body.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
    };
    let info = &app.info;
    let (state, detail) = app.kernel_state();
    let qemu = match &app.qemu {
        QemuState::Building => "not started (building the kernel)".to_string(),
        QemuState::Starting => "starting".to_string(),
        QemuState::Running { pid } => format!("running (pid {pid})"),
        QemuState::Exited { exit, .. } => format!("exited: {}", crate::app::describe_exit(*exit)),
        QemuState::Failed { what, error } => format!("{what} failed: {error}"),
    };
    let telemetry = match &app.telemetry.status {
        _ if !app.telemetry_requested => "off".to_string(),
        None | Some(TelemetryStatus::Waiting) => "never announced".to_string(),
        Some(TelemetryStatus::Connecting) => "connecting".to_string(),
        Some(TelemetryStatus::Live) => "live".to_string(),
        Some(TelemetryStatus::Stalled(why)) => format!("stalled: {why}"),
        Some(TelemetryStatus::Unavailable(why)) => format!("unavailable: {why}"),
        Some(TelemetryStatus::Ended(why)) => format!("ended: {why}"),
    };
    let kernel = info
        .kernel
        .as_ref()
        .map_or_else(|| "(none)".to_string(), |p| p.display().to_string());
    section(
        "Cadenza TUI report",
        &format!(
            "kernel:      {kernel}\ncommand line: {}\ninitrd:      {}\naccel:       {}, {} MiB\n\
             qemu:        {qemu}\nguest:       {state}{}\ntelemetry:   {telemetry} ({} snapshots)\n\
             qemu command: {}\n",
            info.append,
            info.initrd,
            info.accel,
            info.memory_mib,
            if detail.is_empty() {
                String::new()
            } else {
                format!(" ({detail})")
            },
            app.telemetry.received,
            info.qemu_command,
        ),
    );
    let panic_text = match (&app.panic, &app.panic_error) {
        (Some(analysis), _) => panic::to_text(analysis),
        (None, Some(error)) => format!("a panic report could not be parsed: {error}\n"),
        (None, None) => "no panic\n".to_string(),
    };
    section("Panic (annotated)", &panic_text);
    let snapshot = if app.telemetry.last_raw.is_empty() {
        match &app.telemetry.last {
            Some(snapshot) => snapshot.to_text(),
            None => "no snapshot received\n".to_string(),
        }
    } else {
        app.telemetry.last_raw.clone()
    };
    section("Last telemetry snapshot", &snapshot);
    if let QemuState::Exited { stderr, .. } = &app.qemu
        && !stderr.trim().is_empty()
    {
        section("QEMU stderr", stderr);
    }
    let console = app.console.text().replace("\r\n", "\n");
    section("Console log", &console);
    out
}

/// Writes the report into `dir` under a fresh name; returns its path.
pub fn save(app: &App, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let text = compose(app);
    for attempt in 0..1000 {
        let name = if attempt == 0 {
            format!("cadenza-report-{stamp}.txt")
        } else {
            format!("cadenza-report-{stamp}-{attempt}.txt")
        };
        let path = dir.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(text.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                return Ok(path);
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => {
                return Err(error).with_context(|| format!("cannot create {}", path.display()));
            }
        }
    }
    anyhow::bail!(
        "too many reports named cadenza-report-{stamp}* in {}",
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_has_every_section_and_never_overwrites() {
        let mut app = App::new();
        app.on_qemu_started(7);
        app.on_console(b"Cadenza 0.1.0 (x86_64) booting\r\nhello\r\n");
        let text = compose(&app);
        for needle in [
            "===== Cadenza TUI report =====",
            "qemu:        running (pid 7)",
            "===== Panic (annotated) =====\nno panic",
            "===== Last telemetry snapshot =====\nno snapshot received",
            "===== Console log =====\nCadenza 0.1.0 (x86_64) booting\nhello\n",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
        let dir = tempfile::tempdir().unwrap();
        let first = save(&app, dir.path()).unwrap();
        let second = save(&app, dir.path()).unwrap();
        assert_ne!(first, second);
        assert_eq!(std::fs::read_to_string(first).unwrap(), text);
    }
}
