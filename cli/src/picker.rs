//! Choosing one of a few things (a project for `depot init`, a build for `depot pull`) when the
//! command was not told which: a numbered list and a prompt on a terminal; elsewhere (CI, a
//! pipe) the list as CSV on standard output and an error saying what to pass, so a script never
//! waits for an answer nobody will type.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context as _, Result};

/// Whether a person is there to answer: standard input and standard error are terminals.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks which of `rows` (cells under `columns`; the first cell is what is picked) to use, or,
/// without a terminal, prints them and fails with `hint`.
pub fn pick(what: &str, columns: &[&str], rows: &[Vec<String>], hint: &str) -> Result<String> {
    if rows.is_empty() {
        bail!("no {what} to choose from; {hint}");
    }
    if !interactive() {
        let mut w = csv::Writer::from_writer(std::io::stdout());
        w.write_record(columns)?;
        for r in rows {
            w.write_record(r)?;
        }
        w.flush()?;
        bail!("which {what}? {hint}");
    }
    let mut err = std::io::stderr().lock();
    let widths: Vec<usize> = (0..columns.len())
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, String::len))
                .chain([columns[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    writeln!(
        err,
        "     {}",
        line(&mut columns.iter().copied()).trim_end()
    )?;
    for (i, r) in rows.iter().enumerate() {
        writeln!(
            err,
            "{:>3}) {}",
            i + 1,
            line(&mut r.iter().map(String::as_str)).trim_end()
        )?;
    }
    loop {
        write!(err, "Which {what} [1-{}]? ", rows.len())?;
        err.flush()?;
        let mut answer = String::new();
        let n = std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .context("reading the answer")?;
        if n == 0 {
            bail!("no {what} chosen; {hint}");
        }
        match answer.trim().parse::<usize>() {
            Ok(i) if (1..=rows.len()).contains(&i) => return Ok(rows[i - 1][0].clone()),
            _ => writeln!(err, "Type a number from 1 to {}.", rows.len())?,
        }
    }
}
