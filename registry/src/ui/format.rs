//! How the dashboard writes numbers and times for people: sizes in binary units, times in UTC,
//! durations in the two largest units.

/// `12.3 MiB` (exact bytes go in a `title`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `2026-12-05 09:17 UTC`.
pub fn time(ms: i64) -> String {
    let iso = depot_store::model::rfc3339(ms);
    // RFC 3339 is `YYYY-MM-DDTHH:MM:SS...Z`: the minute is enough on a page.
    match (iso.get(..10), iso.get(11..16)) {
        (Some(day), Some(hm)) => format!("{day} {hm} UTC"),
        _ => iso,
    }
}

/// `3 d 4 h`, `5 h 12 min`, `40 s`.
pub fn duration(ms: i64) -> String {
    let secs = (ms / 1000).max(0);
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min")
    } else {
        format!("{secs} s")
    }
}

/// When something ends, seen from `now`: `in 6 d 23 h`, `3 h 2 min ago`.
pub fn until(at: i64, now: i64) -> String {
    if at > now {
        format!("in {}", duration(at - now))
    } else {
        format!("{} ago", duration(now - at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_read_these() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(time(0), "1970-01-01 00:00 UTC");
        assert_eq!(duration(90_061_000), "1 d 1 h");
        assert_eq!(duration(3_720_000), "1 h 2 min");
        assert_eq!(duration(59_000), "59 s");
        assert_eq!(until(10_000, 0), "in 10 s");
        assert_eq!(until(0, 120_000), "2 min ago");
    }
}
