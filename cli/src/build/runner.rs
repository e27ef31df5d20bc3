//! Running builder processes: their output goes to stderr line by line, prefixed with what they
//! build (several run at once, one per platform), and the last lines are kept so that a failure
//! can say why without the user scrolling back.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context as _, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

/// Lines of output kept for the error of a failed step.
const TAIL_LINES: usize = 15;

/// Runs `cmd` to completion, showing its output as `[label] line` (unless `quiet`). The child is
/// killed if the future is dropped (another platform failed, or Ctrl-C).
pub async fn run(mut cmd: Command, label: &str, quiet: bool) -> Result<String> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let shown = shown_command(&cmd);
    if !quiet {
        eprintln!("[{label}] $ {shown}");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {program} (is it installed and on PATH?)"))?;
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let stdout = pump(child.stdout.take().expect("piped"), label, quiet, &tail);
    let stderr = pump(child.stderr.take().expect("piped"), label, quiet, &tail);
    let (status, _, _) = tokio::join!(child.wait(), stdout, stderr);
    let status = status.with_context(|| format!("waiting for {program}"))?;
    let tail: Vec<String> = tail.lock().expect("tail lock").drain(..).collect();
    if status.success() {
        return Ok(tail.join("\n"));
    }
    let why = match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "was killed by a signal".to_owned(),
    };
    Err(anyhow!("`{shown}` {why}:\n  {}", tail.join("\n  ")))
}

async fn pump(
    stream: impl AsyncRead + Unpin,
    label: &str,
    quiet: bool,
    tail: &Mutex<VecDeque<String>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if !quiet {
            eprintln!("[{label}] {line}");
        }
        let mut tail = tail.lock().expect("tail lock");
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// The command line as a user could paste it (arguments never carry secrets: credentials go
/// in files and the environment).
fn shown_command(cmd: &Command) -> String {
    let std = cmd.as_std();
    std::iter::once(std.get_program())
        .chain(std.get_args())
        .map(|a| {
            let a = a.to_string_lossy();
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$\\".contains(c)) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failure_carries_the_last_lines() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "for i in $(seq 1 40); do echo line $i; done; echo oops >&2; exit 3",
        ]);
        let err = run(cmd, "t", true).await.unwrap_err().to_string();
        assert!(err.contains("exited with status 3"), "{err}");
        assert!(err.contains("oops") && err.contains("line 40"), "{err}");
        assert!(!err.contains("line 20\n"), "{err}");
    }

    #[tokio::test]
    async fn success_returns_the_tail_and_a_missing_program_is_named() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo done"]);
        assert_eq!(run(cmd, "t", true).await.unwrap(), "done");
        let err = run(Command::new("no-such-builder-here"), "t", true)
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("no-such-builder-here"));
    }

    #[test]
    fn commands_are_shown_quoted() {
        let mut cmd = Command::new("buildah");
        cmd.args(["build", "--build-arg", "MSG=hello world", ""]);
        assert_eq!(
            shown_command(&cmd),
            "buildah build --build-arg 'MSG=hello world' ''"
        );
    }
}
