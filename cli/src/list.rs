//! `depot list projects|builds`: a table on a terminal, CSV when piped, JSON on request.

use std::io::IsTerminal;

use anyhow::Result;
use serde_json::Value;

use crate::api::Api;
use crate::config::Context;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// The projects this token can see
    #[command(after_help = "Example:\n  depot list projects --output json")]
    Projects,
    /// The project's builds, newest first: state (`expired` once past its expiry), size in
    /// bytes of its saved images, and a failed build's reason
    #[command(
        after_help = "Examples:\n  depot list builds --project k3j9x2m1pq\n  depot list builds --limit 200 --output csv > builds.csv"
    )]
    Builds {
        /// How many builds at most
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
    /// table, json or csv (default: table on a terminal, csv otherwise)
    #[arg(long, short = 'o', value_enum, global = true)]
    pub output: Option<Format>,
}

/// `--output` as given, else a table on a terminal and CSV otherwise.
pub fn format_or_default(output: Option<Format>) -> Format {
    output.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Csv
    })
}

pub async fn run(ctx: &Context, http: &reqwest::Client, args: Args) -> Result<()> {
    let api = Api::new(http.clone(), ctx);
    let format = format_or_default(args.output);
    let (columns, rows): (Vec<&str>, Vec<Value>) = match args.what {
        What::Projects => (
            vec![
                "id",
                "name",
                "retention_secs",
                "keep_builds",
                "keep_days",
                "created_at",
            ],
            api.projects()
                .await?
                .into_iter()
                .map(|p| serde_json::to_value(p).unwrap_or_default())
                .collect(),
        ),
        What::Builds { limit } => {
            let project = ctx.project()?;
            let mut rows = Vec::new();
            let mut cursor: Option<String> = None;
            while (rows.len() as u32) < limit {
                let want = (limit - rows.len() as u32).min(100);
                let (page, next) = api
                    .builds_page(project, want, cursor.as_deref())
                    .await?
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "project {project} not found (or not visible to this token)"
                        )
                    })?;
                rows.extend(page.into_iter().map(|b| {
                    let expired = b.expired;
                    let mut row = serde_json::to_value(b).unwrap_or_default();
                    if expired {
                        // Gone for pulls whatever state it ended in: say so where it is read.
                        row["state"] = Value::from("expired");
                    }
                    row
                }));
                match next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
            (
                vec![
                    "id",
                    "state",
                    "platforms",
                    "targets",
                    "save_tags",
                    "created_at",
                    "expires_at",
                    "size",
                    "image",
                    "failure",
                ],
                rows,
            )
        }
    };
    print(format, &columns, &rows)
}

/// A cell as text: arrays joined by spaces, null as empty.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

fn print(format: Format, columns: &[&str], rows: &[Value]) -> Result<()> {
    let upper: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
    print_rows(format, columns, columns, &upper, rows)
}

/// `rows` (JSON objects) as `format`: JSON as they are; CSV and table with one column per key
/// of `keys`, headed by `csv_headers` and `table_headers`.
pub fn print_rows(
    format: Format,
    keys: &[&str],
    csv_headers: &[&str],
    table_headers: &[&str],
    rows: &[Value],
) -> Result<()> {
    let columns = keys;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(rows)?),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout());
            w.write_record(csv_headers)?;
            for r in rows {
                w.write_record(columns.iter().map(|c| cell(&r[*c])))?;
            }
            w.flush()?;
        }
        Format::Table => {
            let mut t = comfy_table::Table::new();
            t.load_style(comfy_table::presets::UTF8_BORDERS_ONLY);
            t.set_header(table_headers);
            for r in rows {
                t.add_row(columns.iter().map(|c| cell(&r[*c])));
            }
            println!("{t}");
        }
    }
    Ok(())
}
