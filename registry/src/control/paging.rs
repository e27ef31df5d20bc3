//! Keyset pagination of `/api/v1` listings: `?limit=&cursor=`, where the cursor is the
//! `(time, name)` of the last item of the previous page (`<millis>.<name>`), so a page costs
//! an index range however deep it is, and items added meanwhile never shift a page.

use serde::Deserialize;

use crate::error::{Error, Result};

/// Default and largest page.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 500;

/// The query of a listing.
#[derive(Debug, Deserialize)]
pub(crate) struct PageQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// A page asked for, checked.
#[derive(Debug)]
pub(crate) struct Page {
    pub limit: i64,
    /// The `(time, name)` the page starts after.
    pub after: Option<(i64, String)>,
}

impl Page {
    pub fn of(q: &PageQuery) -> Result<Page> {
        let limit = q.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Error::invalid_request(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )));
        }
        let after = q.cursor.as_deref().map(parse_cursor).transpose()?;
        Ok(Page { limit, after })
    }

    /// `after` as the store takes it.
    pub fn after(&self) -> Option<(i64, &str)> {
        self.after.as_ref().map(|(at, name)| (*at, name.as_str()))
    }
}

/// A cursor's `(time, name)`.
pub(crate) fn parse_cursor(cursor: &str) -> Result<(i64, String)> {
    cursor
        .split_once('.')
        .and_then(|(at, name)| Some((at.parse::<i64>().ok()?, name.to_owned())))
        .ok_or_else(|| Error::invalid_request("malformed cursor"))
}

/// The cursor of the page after the one ending at `(at, name)`.
pub fn cursor(at: i64, name: &str) -> String {
    format!("{at}.{name}")
}
