//! `cadenza-symbols`: the command-line face of the `symbols` crate.
//!
//! Deliberately thin: everything it prints comes from `Symbolizer` and `Annotator`, so the TUI
//! and the boot tests see exactly what a user sees here. What lives here is I/O policy: logs are
//! read and written as bytes, line by line with a flush after each, so `annotate` works live at
//! the end of a QEMU pipe and never alters a line it does not understand (not even invalid
//! UTF-8); a bad image is fatal (exit 2), a bad address is not (reported, then exit 1 at the end),
//! because a batch of addresses is usually pasted from a log and one typo should not hide the
//! rest.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use symbols::{AnnotateOptions, Annotator, OpenOptions, Symbolizer, find_workspace_root};

/// Resolve Cadenza kernel addresses to functions and source lines, inlined frames included.
#[derive(Debug, Parser)]
#[command(name = "cadenza-symbols", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Resolve addresses (or symbol+0xoff) to `symbol+0xoff/0xsize` and source frames.
    Resolve(ResolveArgs),
    /// Copy a console log, adding source frames under every backtrace line.
    Annotate(AnnotateArgs),
}

#[derive(Debug, Args)]
struct ImageArgs {
    /// Kernel ELF [default: target/x86_64-unknown-none/release/kernel in the workspace]
    #[arg(long, value_name = "KERNEL")]
    elf: Option<PathBuf>,
    /// Print source paths relative to DIR [default: the workspace that contains the ELF]
    #[arg(long, value_name = "DIR")]
    source_root: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ResolveArgs {
    #[command(flatten)]
    image: ImageArgs,
    /// Treat addresses as return addresses: report the call's line (address - 1)
    #[arg(long)]
    return_address: bool,
    /// 0xADDR, ADDR (hex), symbol, symbol+0xOFF or symbol+0xOFF/0xSIZE; read from stdin (one
    /// or more per line) when absent
    #[arg(value_name = "ADDR")]
    addresses: Vec<String>,
}

#[derive(Debug, Args)]
struct AnnotateArgs {
    #[command(flatten)]
    image: ImageArgs,
    /// Show N source lines before and after each resolved line
    #[arg(long, value_name = "N", default_value_t = 0)]
    context: usize,
    /// Console log to annotate [default: stdin, streamed]
    #[arg(value_name = "LOG")]
    log: Option<PathBuf>,
}

const NAME: &str = "cadenza-symbols";
const DEFAULT_KERNEL: &str = "target/x86_64-unknown-none/release/kernel";

/// Why the command stopped early.
enum Fatal {
    /// Printed as one line, exit status 2.
    Error(String),
    /// The reader went away (`| head`): nothing left to say, and nobody to say it to.
    BrokenPipe,
}

impl From<symbols::SymbolsError> for Fatal {
    fn from(error: symbols::SymbolsError) -> Self {
        Self::Error(error.to_string())
    }
}

impl From<io::Error> for Fatal {
    fn from(error: io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::BrokenPipe => Self::BrokenPipe,
            _ => Self::Error(format!("I/O error: {error}")),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Resolve(args) => resolve(args),
        Command::Annotate(args) => annotate(args),
    };
    match result {
        Ok(code) => code,
        Err(Fatal::BrokenPipe) => ExitCode::SUCCESS,
        Err(Fatal::Error(message)) => {
            // Keep whatever was already printed ahead of the error.
            let _ = io::stdout().flush();
            eprintln!("{NAME}: error: {message}");
            ExitCode::from(2)
        }
    }
}

fn open(image: &ImageArgs) -> Result<Symbolizer, Fatal> {
    let elf = match &image.elf {
        Some(elf) => elf.clone(),
        None => default_kernel()?,
    };
    let options = OpenOptions {
        source_root: image.source_root.clone(),
        require_debug_info: false,
    };
    let symbolizer = Symbolizer::open_with(&elf, &options)?;
    if let Some(warning) = symbolizer.missing_debug_info() {
        eprintln!("{NAME}: warning: {warning}; printing symbols only");
    }
    Ok(symbolizer)
}

fn default_kernel() -> Result<PathBuf, Fatal> {
    let root = std::env::current_dir()
        .ok()
        .and_then(|dir| find_workspace_root(&dir))
        .or_else(|| find_workspace_root(Path::new(env!("CARGO_MANIFEST_DIR"))))
        .ok_or_else(|| {
            Fatal::Error("no --elf given and not inside the Cadenza workspace".into())
        })?;
    let kernel = root.join(DEFAULT_KERNEL);
    if kernel.is_file() {
        Ok(kernel)
    } else {
        Err(Fatal::Error(format!(
            "no --elf given and {} does not exist (build it with \
             `cargo build -p kernel --release --target x86_64-unknown-none`)",
            kernel.display()
        )))
    }
}

fn resolve(args: ResolveArgs) -> Result<ExitCode, Fatal> {
    let symbolizer = open(&args.image)?;
    let mut out = output();
    let mut failed = false;
    let mut one = |text: &str, out: &mut Output| -> io::Result<()> {
        let resolution = symbolizer.parse_address(text).and_then(|address| {
            if args.return_address {
                symbolizer.resolve_return_address(address)
            } else {
                symbolizer.resolve(address)
            }
        });
        match resolution {
            Ok(resolution) => writeln!(out, "{resolution}"),
            Err(error) => {
                failed = true;
                out.flush()?;
                eprintln!("{NAME}: {text}: {error}");
                Ok(())
            }
        }
    };
    if args.addresses.is_empty() {
        let mut input = input(None)?;
        let mut line = String::new();
        while {
            line.clear();
            input.read_line(&mut line)? > 0
        } {
            for text in line.split_whitespace() {
                one(text, &mut out)?;
            }
            // Answer before waiting for more input, but don't pay a write per line while a
            // pasted batch is still buffered.
            if input.buffer().is_empty() {
                out.flush()?;
            }
        }
    } else {
        for text in &args.addresses {
            one(text, &mut out)?;
        }
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn annotate(args: AnnotateArgs) -> Result<ExitCode, Fatal> {
    let symbolizer = open(&args.image)?;
    let mut input = input(args.log.as_deref())?;
    let mut annotator = Annotator::new(
        &symbolizer,
        AnnotateOptions {
            context: args.context,
        },
    );
    annotate_stream(&mut annotator, &mut input, &mut output())?;
    Ok(ExitCode::SUCCESS)
}

type Input = BufReader<Box<dyn Read>>;
type Output = BufWriter<io::StdoutLock<'static>>;

/// `path`, or stdin, behind a buffer we can ask "is there more input already?" (`buffer()`),
/// which decides when to flush. It is large enough that stdin's own buffer is bypassed.
fn input(path: Option<&Path>) -> Result<Input, Fatal> {
    let reader: Box<dyn Read> = match path {
        Some(path) => Box::new(
            File::open(path)
                .map_err(|e| Fatal::Error(format!("cannot read log {}: {e}", path.display())))?,
        ),
        None => Box::new(io::stdin().lock()),
    };
    Ok(BufReader::with_capacity(64 * 1024, reader))
}

/// Stdout is line-buffered by default: one write per line would dominate a large batch, so
/// output is block-buffered and flushed explicitly whenever we are about to wait for input.
fn output() -> Output {
    BufWriter::with_capacity(64 * 1024, io::stdout().lock())
}

/// Copies `input` to `output` line by line, annotated; flushes whenever the input buffered so
/// far is used up, i.e. before every wait for more.
fn annotate_stream(
    annotator: &mut Annotator<'_>,
    input: &mut Input,
    output: &mut impl Write,
) -> io::Result<()> {
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        if input.read_until(b'\n', &mut buffer)? == 0 {
            return output.flush();
        }
        let (line, newline) = match buffer.strip_suffix(b"\n") {
            Some(line) => (line, true),
            None => (&buffer[..], false),
        };
        match std::str::from_utf8(line) {
            Ok(text) => {
                let lines = annotator.line(text);
                let count = lines.len();
                for (i, text) in lines.iter().enumerate() {
                    output.write_all(text.as_bytes())?;
                    if newline || i + 1 < count {
                        output.write_all(b"\n")?;
                    }
                }
            }
            // Not text: not a backtrace line either. Pass it through untouched.
            Err(_) => output.write_all(&buffer)?,
        }
        // Flush before we could block on input, so a live console shows every line at once.
        if input.buffer().is_empty() {
            output.flush()?;
        }
    }
}
