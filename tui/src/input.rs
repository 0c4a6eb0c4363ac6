//! Keys: what each one does, and how a key becomes bytes for the guest.
//!
//! The bindings are described in one table (`KEYS`) that the help overlay prints and
//! docs/tui.md mirrors; the handling itself is `App::handle_key`. Keys are modal on purpose: in the console's *typing mode* every key
//! goes to the guest — including `q`, Tab and Ctrl-C, which a shell will want — until Ctrl-],
//! telnet's and QEMU's traditional escape, hands the keyboard back to the TUI.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// (where, keys, what) for the help overlay.
pub const KEYS: &[(&str, &str, &str)] = &[
    ("anywhere", "Tab / Shift-Tab", "next / previous pane"),
    (
        "anywhere",
        "1 2 3 4 5, F1-F5",
        "Console, Panic, Memory, Processes, GDB",
    ),
    ("anywhere", "?", "show / hide this help"),
    (
        "anywhere",
        "s",
        "save a report (console, annotated panic, last snapshot)",
    ),
    ("anywhere", "q, Ctrl-C", "quit (QEMU is stopped)"),
    ("Console", "i or Enter", "typing mode: keys go to the guest"),
    ("Console", "Ctrl-]", "leave typing mode"),
    ("Console", "/  n  N", "search, next match, previous match"),
    (
        "Console",
        "Up Down PgUp PgDn",
        "scroll back through the output",
    ),
    (
        "Console",
        "Home / End",
        "oldest output / follow live output",
    ),
    (
        "Panic",
        "Up Down PgUp PgDn",
        "scroll the symbolized backtrace",
    ),
    ("Memory", "m", "mark: show growth since now"),
    ("Memory", "l", "leak scan now (kmemleak scan)"),
    ("Memory", "Up / Down", "select a leak to see its backtrace"),
    ("Processes", "Up / Down", "select a process"),
    (
        "Processes",
        "o / r",
        "sort by the next column / reverse the order",
    ),
    ("GDB", "a", "attach gdb in this pane"),
    (
        "GDB",
        ": or i",
        "type a gdb command (Enter runs it, Esc leaves)",
    ),
    ("GDB", "Ctrl-C (typing)", "interrupt the running kernel"),
];

pub fn is_ctrl(key: &KeyEvent, c: char) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char(c)
}

/// Ctrl-]: terminals send 0x1d, which crossterm reports as Ctrl-5 on some and Ctrl-] on others.
pub fn is_escape_from_typing(key: &KeyEvent) -> bool {
    is_ctrl(key, ']') || is_ctrl(key, '5')
}

/// The bytes a terminal would send for `key` (what a serial console on a real terminal sees).
pub fn key_to_bytes(key: &KeyEvent) -> Vec<u8> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    let mut bytes = match key.code {
        KeyCode::Char(c) if ctrl => match c {
            'a'..='z' => vec![c as u8 - b'a' + 1],
            'A'..='Z' => vec![c as u8 - b'A' + 1],
            '@' | ' ' | '2' => vec![0],
            '[' | '3' => vec![0x1b],
            '\\' | '4' => vec![0x1c],
            ']' | '5' => vec![0x1d],
            '^' | '6' => vec![0x1e],
            '_' | '7' | '/' => vec![0x1f],
            '?' | '8' => vec![0x7f],
            other => other.to_string().into_bytes(),
        },
        KeyCode::Char(c) => c.to_string().into_bytes(),
        KeyCode::Enter => vec![b'\r'],
        KeyCode::Backspace => vec![0x7f],
        KeyCode::Tab => vec![b'\t'],
        KeyCode::BackTab => b"\x1b[Z".to_vec(),
        KeyCode::Esc => vec![0x1b],
        KeyCode::Up => b"\x1b[A".to_vec(),
        KeyCode::Down => b"\x1b[B".to_vec(),
        KeyCode::Right => b"\x1b[C".to_vec(),
        KeyCode::Left => b"\x1b[D".to_vec(),
        KeyCode::Home => b"\x1b[H".to_vec(),
        KeyCode::End => b"\x1b[F".to_vec(),
        KeyCode::Insert => b"\x1b[2~".to_vec(),
        KeyCode::Delete => b"\x1b[3~".to_vec(),
        KeyCode::PageUp => b"\x1b[5~".to_vec(),
        KeyCode::PageDown => b"\x1b[6~".to_vec(),
        KeyCode::F(n) => match n {
            1 => b"\x1bOP".to_vec(),
            2 => b"\x1bOQ".to_vec(),
            3 => b"\x1bOR".to_vec(),
            4 => b"\x1bOS".to_vec(),
            5..=12 => {
                let code = [15, 17, 18, 19, 20, 21, 23, 24][usize::from(n - 5)];
                format!("\x1b[{code}~").into_bytes()
            }
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    if alt && !bytes.is_empty() {
        bytes.insert(0, 0x1b);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn encodes_keys_as_a_terminal_does() {
        let none = KeyModifiers::NONE;
        let ctrl = KeyModifiers::CONTROL;
        assert_eq!(key_to_bytes(&key(KeyCode::Char('x'), none)), b"x");
        assert_eq!(key_to_bytes(&key(KeyCode::Char('é'), none)), "é".as_bytes());
        assert_eq!(key_to_bytes(&key(KeyCode::Char('c'), ctrl)), [3]);
        assert_eq!(key_to_bytes(&key(KeyCode::Char('D'), ctrl)), [4]);
        assert_eq!(key_to_bytes(&key(KeyCode::Enter, none)), b"\r");
        assert_eq!(key_to_bytes(&key(KeyCode::Backspace, none)), [0x7f]);
        assert_eq!(key_to_bytes(&key(KeyCode::Up, none)), b"\x1b[A");
        assert_eq!(key_to_bytes(&key(KeyCode::F(5), none)), b"\x1b[15~");
        assert_eq!(
            key_to_bytes(&key(KeyCode::Char('b'), KeyModifiers::ALT)),
            b"\x1bb"
        );
        assert!(is_escape_from_typing(&key(KeyCode::Char(']'), ctrl)));
        assert!(is_escape_from_typing(&key(KeyCode::Char('5'), ctrl)));
        assert!(!is_escape_from_typing(&key(KeyCode::Char(']'), none)));
    }
}
