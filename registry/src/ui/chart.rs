//! Usage drawn as small SVG line charts on the server (no script needed to see them): each a
//! `role="img"` with a title naming what it shows and its range; the same numbers are on the
//! page as a table.

use std::fmt::Write as _;

const WIDTH: f64 = 320.0;
const HEIGHT: f64 = 120.0;
const PAD: f64 = 24.0;

/// One series to draw: `(time in ms, value)`, oldest first.
pub struct Series<'a> {
    pub title: &'a str,
    pub points: &'a [(i64, f64)],
    /// How a value is written on the axis.
    pub label: &'a dyn Fn(f64) -> String,
}

/// The chart as an inline `<svg>`.
pub fn svg(s: &Series<'_>) -> String {
    let mut out = String::new();
    let (lo_t, hi_t) = match (s.points.first(), s.points.last()) {
        (Some(a), Some(b)) => (a.0, b.0.max(a.0 + 1)),
        _ => (0, 1),
    };
    let hi_v = s
        .points
        .iter()
        .map(|p| p.1)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let x = |t: i64| PAD + (t - lo_t) as f64 / (hi_t - lo_t) as f64 * (WIDTH - 2.0 * PAD);
    let y = |v: f64| HEIGHT - PAD - v / hi_v * (HEIGHT - 2.0 * PAD);
    let _ = write!(
        out,
        r#"<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{}: from 0 to {} over {} samples"><title>{}</title>"#,
        s.title,
        (s.label)(hi_v),
        s.points.len(),
        s.title
    );
    let _ = write!(
        out,
        r#"<line class="axis" x1="{PAD}" y1="{0}" x2="{1}" y2="{0}"/><line class="axis" x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{0}"/>"#,
        HEIGHT - PAD,
        WIDTH - PAD
    );
    let _ = write!(
        out,
        r#"<text x="2" y="{}">{}</text><text x="2" y="{}">0</text>"#,
        PAD - 8.0,
        (s.label)(hi_v),
        HEIGHT - 8.0
    );
    if !s.points.is_empty() {
        let path: Vec<String> = s
            .points
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        let first = x(s.points[0].0);
        let last = x(s.points[s.points.len() - 1].0);
        let _ = write!(
            out,
            r#"<polygon class="area" points="{first:.1},{0:.1} {1} {last:.1},{0:.1}"/><polyline class="line" points="{1}"/>"#,
            HEIGHT - PAD,
            path.join(" ")
        );
        for (t, v) in s.points {
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="currentColor"/>"#,
                x(*t),
                y(*v)
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_names_what_it_shows_and_draws_each_point() {
        let label = |v: f64| format!("{v:.0}");
        let points = [(0, 1.0), (3_600_000, 4.0), (7_200_000, 2.0)];
        let out = svg(&Series {
            title: "Saved builds",
            points: &points,
            label: &label,
        });
        assert!(out.starts_with("<svg") && out.ends_with("</svg>"));
        assert!(out.contains(r#"aria-label="Saved builds: from 0 to 4 over 3 samples""#));
        assert_eq!(out.matches("<circle").count(), 3);
        // No points: an empty frame, never a division by zero.
        let empty = svg(&Series {
            title: "Pulls",
            points: &[],
            label: &label,
        });
        assert!(!empty.contains("NaN") && !empty.contains("<circle"));
    }
}
