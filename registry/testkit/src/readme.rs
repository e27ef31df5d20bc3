//! The README's generated tables kept in step with what the code says: a test builds the rows
//! it expects, and [`assert_lists`] checks the README has each, printing the whole table to
//! paste in when one is missing.

/// The workspace's `README.md`.
pub fn text() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap()
}

/// Fails unless the README holds every one of `rows` (lines of the table named `table`, whose
/// header lines are `header`).
pub fn assert_lists(table: &str, header: &str, rows: &[String]) {
    let readme = text();
    let missing: Vec<&str> = rows
        .iter()
        .map(String::as_str)
        .filter(|r| !readme.contains(r))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md's {table} table is out of date; these rows are missing:\n{}\n\nthe whole table:\n{header}\n{}",
        missing.join("\n"),
        rows.join("\n")
    );
}
