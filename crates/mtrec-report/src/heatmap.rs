//! Heat maps as self-contained SVG text (gate weights: gates x experts).
//!
//! Written by hand rather than with plotters: a grid of labelled rectangles needs no chart
//! machinery, and the result is a string to inline in a page, with no ids that two maps on
//! one page could share.

use std::fmt::Write;

/// A matrix of values in `[0, vmax]` with row and column labels; `None` cells (a gate that
/// cannot weigh an expert) are drawn grey.
#[derive(Debug, Clone)]
pub struct Heatmap {
    pub title: String,
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    pub values: Vec<Vec<Option<f64>>>,
    /// Text to the right of each row (e.g. the row's effective expert share).
    pub notes: Vec<String>,
    /// Heading of the notes column.
    pub notes_title: String,
}

const CELL_W: usize = 46;
const CELL_H: usize = 26;
/// Width of one character of the 12 px sans-serif labels, generously estimated.
const CHAR_W: usize = 7;

/// Escapes text for XML content and attribute values.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The top of the colour scale: the largest value rounded up to a tenth (at least 0.1), so a
/// map of small weights (8 experts near 1/8 each) still shows contrast, and the legend says
/// which scale is used.
pub fn scale_max(values: &[Vec<Option<f64>>]) -> f64 {
    let max = values
        .iter()
        .flatten()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    ((max * 10.0).ceil() / 10.0).clamp(0.1, 1.0)
}

/// White to dark blue (ColorBrewer "Blues" end points) for `t` in `[0, 1]`.
pub fn colour(t: f64) -> (u8, u8, u8) {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (lo, hi) = ((247.0, 251.0, 255.0), (8.0, 48.0, 107.0));
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    (mix(lo.0, hi.0), mix(lo.1, hi.1), mix(lo.2, hi.2))
}

fn text_width(text: &str) -> usize {
    text.chars().count() * CHAR_W
}

/// The heat map as an `<svg>` element with its size, a cell per value (the value written in
/// it and as a tooltip), and a legend of the colour scale.
pub fn heatmap_svg(map: &Heatmap) -> String {
    let vmax = scale_max(&map.values);
    let left = map.rows.iter().map(|r| text_width(r)).max().unwrap_or(0) + 12;
    // Column labels are turned 45 degrees: their height is about 0.71 of their length.
    let top_labels = map.cols.iter().map(|c| text_width(c)).max().unwrap_or(0) * 71 / 100;
    let top = 28 + top_labels + 12;
    let grid_w = map.cols.len() * CELL_W;
    let grid_h = map.rows.len() * CELL_H;
    let notes_w = map
        .notes
        .iter()
        .chain(std::iter::once(&map.notes_title))
        .map(|n| text_width(n))
        .max()
        .unwrap_or(0)
        + 16;
    let legend_h = 46;
    let legend = format!("{vmax:.1} (mean gate weight; grey: not reachable)");
    let width = (left + grid_w + notes_w + 16)
        .max(text_width(&map.title) + 20)
        .max(left + 10 * 16 + 4 + text_width(&legend) + 8);
    let height = top + grid_h + legend_h;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="heatmap" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        s,
        r#"<title>{}</title><rect width="{width}" height="{height}" fill="white"/><text x="4" y="18" font-size="14" font-weight="bold">{}</text>"#,
        xml_escape(&map.title),
        xml_escape(&map.title)
    );
    for (j, col) in map.cols.iter().enumerate() {
        let x = left + j * CELL_W + CELL_W / 2;
        let y = top - 6;
        let _ = write!(
            s,
            r#"<text x="{x}" y="{y}" transform="rotate(-45 {x} {y})">{}</text>"#,
            xml_escape(col)
        );
    }
    for (i, row) in map.rows.iter().enumerate() {
        let y = top + i * CELL_H;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 8,
            y + CELL_H / 2 + 4,
            xml_escape(row)
        );
        for (j, col) in map.cols.iter().enumerate() {
            let x = left + j * CELL_W;
            let value = map.values.get(i).and_then(|r| r.get(j)).copied().flatten();
            let (fill, text, ink, tip) = match value {
                Some(v) => {
                    let t = v / vmax;
                    let (r, g, b) = colour(t);
                    let ink = if t > 0.55 { "white" } else { "black" };
                    (
                        format!("rgb({r},{g},{b})"),
                        format!("{v:.2}"),
                        ink,
                        format!("{row}, {col}: {v:.4}"),
                    )
                }
                None => (
                    "#e0e0e0".to_string(),
                    "–".to_string(),
                    "#777",
                    format!("{row} cannot use {col}"),
                ),
            };
            let _ = write!(
                s,
                r#"<g><title>{}</title><rect x="{x}" y="{y}" width="{CELL_W}" height="{CELL_H}" fill="{fill}" stroke="white"/><text x="{}" y="{}" text-anchor="middle" fill="{ink}">{text}</text></g>"#,
                xml_escape(&tip),
                x + CELL_W / 2,
                y + CELL_H / 2 + 4,
            );
        }
        if let Some(note) = map.notes.get(i) {
            let _ = write!(
                s,
                r#"<text x="{}" y="{}">{}</text>"#,
                left + grid_w + 10,
                y + CELL_H / 2 + 4,
                xml_escape(note)
            );
        }
    }
    if !map.notes_title.is_empty() {
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" font-style="italic">{}</text>"#,
            left + grid_w + 10,
            top - 6,
            xml_escape(&map.notes_title)
        );
    }
    // Legend: ten steps from 0 to the scale's top.
    let ly = top + grid_h + 14;
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end">0</text>"#,
        left - 4,
        ly + 11
    );
    for k in 0..10 {
        let (r, g, b) = colour((k as f64 + 0.5) / 10.0);
        let _ = write!(
            s,
            r#"<rect x="{}" y="{ly}" width="16" height="14" fill="rgb({r},{g},{b})"/>"#,
            left + k * 16
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}">{}</text></svg>"#,
        left + 10 * 16 + 4,
        ly + 11,
        xml_escape(&legend)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> Heatmap {
        Heatmap {
            title: "level 1 <of> 1".into(),
            rows: vec!["income".into(), "marital & co".into()],
            cols: vec!["e1".into(), "e2".into(), "shared 1".into()],
            values: vec![
                vec![Some(0.7), None, Some(0.3)],
                vec![Some(0.05), Some(0.9), Some(0.05)],
            ],
            notes: vec!["1.8 of 2".into(), "1.4 of 3".into()],
            notes_title: "effective experts".into(),
        }
    }

    #[test]
    fn scale_tops_at_the_largest_value_rounded_up_to_a_tenth() {
        assert!((scale_max(&map().values) - 0.9).abs() < 1e-12);
        assert!((scale_max(&[vec![Some(0.125); 8]]) - 0.2).abs() < 1e-12);
        assert!((scale_max(&[vec![None, Some(0.0)]]) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn colours_run_from_near_white_to_dark_blue() {
        assert_eq!(colour(0.0), (247, 251, 255));
        assert_eq!(colour(1.0), (8, 48, 107));
        assert_eq!(colour(2.0), colour(1.0));
        assert_eq!(colour(f64::NAN), colour(0.0));
    }

    #[test]
    fn svg_has_a_cell_per_value_escaped_labels_and_grey_unreachable_cells() {
        let svg = heatmap_svg(&map());
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        // 6 cells and 10 legend steps, plus the background.
        assert_eq!(svg.matches("<rect").count(), 6 + 10 + 1);
        assert!(svg.contains(">0.70<") && svg.contains(">0.90<"));
        assert_eq!(svg.matches("#e0e0e0").count(), 1, "one unreachable cell");
        assert!(svg.contains("income cannot use e2"));
        assert!(svg.contains("level 1 &lt;of&gt; 1") && svg.contains("marital &amp; co"));
        assert!(!svg.contains("<of>") && !svg.contains(" & "));
        // The darkest cell (0.9 of a 0.9 scale) is the scale's end colour, in white ink.
        assert!(svg.contains(r#"fill="rgb(8,48,107)" stroke="white"/><text"#));
        assert!(svg.contains("effective experts") && svg.contains("1.4 of 3"));
    }
}
