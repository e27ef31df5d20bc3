//! Progress for people and for logs: bars with bytes and rate when stderr is a terminal, one
//! line per finished item otherwise (CI logs stay readable), nothing with `--quiet`; chosen by
//! `--progress auto|plain|tty|quiet` as buildx and Depot spell it (and `BUILDKIT_PROGRESS`).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `--progress`, as buildx takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// `tty` on a terminal outside CI, else `plain`
    Auto,
    /// One line per step or finished item
    Plain,
    /// Live bars (where stderr is a terminal; lines otherwise)
    Tty,
    /// Nothing but errors and results
    Quiet,
    /// buildx's JSON stream: handed to a buildx builder (buildah's output and ours stay lines)
    Rawjson,
}

/// The progress options of `build`, `bake`, `pull` and `push`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProgressArgs {
    /// Progress output: auto (tty on a terminal outside CI, else plain), plain, tty, quiet
    #[arg(long, value_enum, env = "BUILDKIT_PROGRESS", default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// The same as --progress quiet
    #[arg(short, long)]
    pub quiet: bool,
}

impl ProgressArgs {
    /// What was asked for, `auto` resolved: never `Auto`.
    pub fn mode(&self) -> ProgressMode {
        if self.quiet {
            return ProgressMode::Quiet;
        }
        match self.progress {
            ProgressMode::Auto if std::io::stderr().is_terminal() && !in_ci() => ProgressMode::Tty,
            ProgressMode::Auto => ProgressMode::Plain,
            other => other,
        }
    }

    pub fn quiet(&self) -> bool {
        self.mode() == ProgressMode::Quiet
    }
}

/// Whether this runs in a CI job (`CI` set, as every major CI system sets it).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

#[derive(Clone)]
pub struct Progress {
    mode: Mode,
}

#[derive(Clone)]
enum Mode {
    Bars(MultiProgress),
    Lines,
    Quiet,
}

impl Progress {
    /// Bars on a terminal, else lines; nothing but notes when `quiet`.
    pub fn new(quiet: bool) -> Progress {
        let args = ProgressArgs {
            progress: ProgressMode::Auto,
            quiet,
        };
        Progress::of(&args)
    }

    pub fn of(args: &ProgressArgs) -> Progress {
        let mode = match args.mode() {
            ProgressMode::Quiet => Mode::Quiet,
            ProgressMode::Tty if std::io::stderr().is_terminal() => {
                Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
            }
            _ => Mode::Lines,
        };
        Progress { mode }
    }

    /// A message that should be seen (above the bars on a terminal). Shown even with
    /// `--quiet`, because these are retries and failures a user must know about.
    pub fn note(&self, msg: &str) {
        match &self.mode {
            Mode::Bars(m) => {
                let _ = m.println(msg);
            }
            _ => eprintln!("{msg}"),
        }
    }

    /// A line for the log; hidden with `--quiet` (what happened, not what went wrong: a
    /// fallback that worked is one).
    pub fn line(&self, msg: &str) {
        match &self.mode {
            Mode::Bars(m) => {
                let _ = m.println(msg);
            }
            Mode::Lines => eprintln!("{msg}"),
            Mode::Quiet => {}
        }
    }

    /// A bar for `label` of `total` bytes (0 when not yet known).
    pub fn bar(&self, label: String, total: u64) -> Bar {
        let pb = match &self.mode {
            Mode::Bars(m) => {
                let pb = m.add(ProgressBar::new(total));
                pb.set_style(
                    ProgressStyle::with_template(
                        "{prefix:<30!} [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {msg}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                pb.set_prefix(label.clone());
                pb.enable_steady_tick(Duration::from_millis(200));
                Some(pb)
            }
            _ => None,
        };
        Bar {
            pb,
            label,
            progress: self.clone(),
        }
    }
}

/// One item's progress.
pub struct Bar {
    pb: Option<ProgressBar>,
    label: String,
    progress: Progress,
}

impl Bar {
    pub fn inc(&self, n: u64) {
        if let Some(pb) = &self.pb {
            pb.inc(n);
        }
    }

    pub fn set(&self, pos: u64, total: u64) {
        if let Some(pb) = &self.pb {
            if total > 0 {
                pb.set_length(total);
            }
            pb.set_position(pos);
        }
    }

    pub fn message(&self, msg: &str) {
        if let Some(pb) = &self.pb {
            pb.set_message(msg.to_owned());
        }
    }

    /// Done: the bar stays with `msg`, or one log line says so.
    pub fn finish(&self, msg: &str) {
        match &self.pb {
            Some(pb) => pb.finish_with_message(msg.to_owned()),
            None => self.progress.line(&format!("{}: {msg}", self.label)),
        }
    }

    /// Done with `bytes` moved: like [`Bar::finish`], with the size in the line.
    pub fn finish_bytes(&self, msg: &str, bytes: u64) {
        match &self.pb {
            Some(pb) => pb.finish_with_message(msg.to_owned()),
            None => self
                .progress
                .line(&format!("{}: {msg} ({})", self.label, HumanBytes(bytes))),
        }
    }

    pub fn abandon(&self, msg: &str) {
        match &self.pb {
            Some(pb) => pb.abandon_with_message(msg.to_owned()),
            None => self.progress.note(&format!("{}: {msg}", self.label)),
        }
    }
}

/// A short form of a digest for labels: `sha256:0123456789ab`.
pub fn short(digest: &str) -> &str {
    let end = digest
        .find(':')
        .map(|i| i + 13)
        .unwrap_or(12)
        .min(digest.len());
    &digest[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_wins_and_auto_is_resolved() {
        let args = |progress, quiet| ProgressArgs { progress, quiet };
        assert_eq!(args(ProgressMode::Tty, true).mode(), ProgressMode::Quiet);
        assert_eq!(args(ProgressMode::Plain, false).mode(), ProgressMode::Plain);
        // Tests run without a terminal on stderr.
        assert_eq!(args(ProgressMode::Auto, false).mode(), ProgressMode::Plain);
    }
}
