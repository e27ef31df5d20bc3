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
    // Numbered rows in the table style `depot list` uses.
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING);
    table.set_header(std::iter::once("").chain(columns.iter().copied()));
    for (i, r) in rows.iter().enumerate() {
        table.add_row(std::iter::once(format!("{})", i + 1)).chain(r.iter().cloned()));
    }
    let mut err = std::io::stderr().lock();
    writeln!(err, "{table}")?;
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
