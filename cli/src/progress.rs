//! Progress for people and for logs: bars with bytes and rate when stderr is a terminal, one
//! line per finished item otherwise (CI logs stay readable), nothing with `--quiet`.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

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
    pub fn new(quiet: bool) -> Progress {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Mode::Lines
        };
        Progress { mode }
    }

    /// A message that should be seen (above the bars on a terminal). Shown even with
    /// `--quiet`, because these are retries and fallbacks a user must know about.
    pub fn note(&self, msg: &str) {
        match &self.mode {
            Mode::Bars(m) => {
                let _ = m.println(msg);
            }
            _ => eprintln!("{msg}"),
        }
    }

    /// A line for the log; hidden with `--quiet`.
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
