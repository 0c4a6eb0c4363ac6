//! The kernel command line, in Linux's syntax.
//!
//! Words are separated by spaces; a word is a flag (`kgdbwait`) or `key=value`, and a value may
//! be double-quoted to hold spaces (`init_args="-x -y"`). As in Linux, `-` and `_` are the same in
//! key names and everything after a lone `--` belongs to init, not to the kernel. The line is kept
//! as bytes in a fixed buffer because it is parsed before the heap exists.

use core::fmt;

pub struct Cmdline {
    bytes: [u8; Self::CAPACITY],
    len: usize,
}

/// One parsed word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    pub key: &'a str,
    pub value: Option<&'a str>,
}

impl Cmdline {
    /// Linux's x86 COMMAND_LINE_SIZE.
    pub const CAPACITY: usize = 2048;

    pub const fn empty() -> Self {
        Self {
            bytes: [0; Self::CAPACITY],
            len: 0,
        }
    }

    /// Copies `bytes`, truncated to `CAPACITY`; bytes that are not UTF-8 are replaced by `?`.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut line = Self::empty();
        let len = bytes.len().min(Self::CAPACITY);
        for (dst, &src) in line.bytes.iter_mut().zip(&bytes[..len]) {
            *dst = if src.is_ascii() && src != 0 {
                src
            } else {
                b'?'
            };
        }
        line.len = len;
        line
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are stored (see `from_bytes`).
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }

    /// The kernel's parameters (those before a lone `--`).
    pub fn params(&self) -> impl Iterator<Item = Param<'_>> {
        Words::new(self.as_str())
            .take_while(|w| *w != "--")
            .map(split_param)
    }

    /// The words after a lone `--`, meant for init.
    pub fn init_args(&self) -> impl Iterator<Item = &str> {
        Words::new(self.as_str()).skip_while(|w| *w != "--").skip(1)
    }

    /// The value of the last `key=value` for `key` (Linux lets later words override earlier ones).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params()
            .filter(|p| keys_equal(p.key, key))
            .filter_map(|p| p.value)
            .last()
    }

    /// Whether `name` appears as a flag or with a value.
    pub fn has(&self, name: &str) -> bool {
        self.params().any(|p| keys_equal(p.key, name))
    }
}

impl fmt::Display for Cmdline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn keys_equal(a: &str, b: &str) -> bool {
    let norm = |c: u8| if c == b'-' { b'_' } else { c };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| norm(x) == norm(y))
}

fn split_param(word: &str) -> Param<'_> {
    match word.split_once('=') {
        Some((key, value)) => Param {
            key,
            value: Some(unquote(value)),
        },
        None => Param {
            key: unquote(word),
            value: None,
        },
    }
}

fn unquote(value: &str) -> &str {
    let value = value.strip_prefix('"').unwrap_or(value);
    value.strip_suffix('"').unwrap_or(value)
}

/// Splits on ASCII whitespace outside double quotes.
struct Words<'a> {
    rest: &'a str,
}

impl<'a> Words<'a> {
    fn new(line: &'a str) -> Self {
        Self { rest: line }
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.rest = self
            .rest
            .trim_start_matches(|c: char| c.is_ascii_whitespace());
        if self.rest.is_empty() {
            return None;
        }
        let mut in_quotes = false;
        let end = self
            .rest
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    in_quotes = !in_quotes;
                }
                c.is_ascii_whitespace() && !in_quotes
            })
            .map_or(self.rest.len(), |(i, _)| i);
        let (word, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(word)
    }
}

crate::kernel_test!(cmdline_flags_and_values, {
    let line = Cmdline::from_bytes(
        b"console=ttyS0  kgdbwait init_args=\"-x -y\" log-level=7 console=ttyS1 -- single foo=bar",
    );
    crate::check_eq!(line.get("console"), Some("ttyS1"));
    crate::check!(line.has("kgdbwait"));
    crate::check_eq!(line.get("kgdbwait"), None);
    crate::check_eq!(line.get("init_args"), Some("-x -y"));
    crate::check_eq!(line.get("log_level"), Some("7"));
    crate::check!(!line.has("single"), "words after -- belong to init");
    crate::check!(!line.has("foo"));
    let mut init = line.init_args();
    crate::check_eq!(init.next(), Some("single"));
    crate::check_eq!(init.next(), Some("foo=bar"));
    crate::check_eq!(init.next(), None);
});

crate::kernel_test!(cmdline_hostile_input, {
    let line = Cmdline::from_bytes(b"\"unterminated =x= \xff\x00 a==b");
    crate::check!(line.params().count() >= 1);
    crate::check_eq!(Cmdline::from_bytes(b"").params().count(), 0);
    let long = [b'a'; 5000];
    crate::check_eq!(Cmdline::from_bytes(&long).as_str().len(), Cmdline::CAPACITY);
    crate::check_eq!(Cmdline::from_bytes(b"a==b").get("a"), Some("=b"));
});
