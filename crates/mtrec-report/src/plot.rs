//! Line charts as SVG (training curves, loss against steps).
//!
//! SVG rather than PNG keeps the build free of font and image libraries and the figures
//! readable at any size; the file is written to a temporary sibling and renamed.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

/// One named line: `(x, y)` points in drawing order.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One panel of a figure.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    // A flat line (a constant weight) gets a readable band around it, not a 1e-9 one.
    let span = hi - lo;
    let pad = if span > 1e-12 {
        span * 0.05
    } else {
        (hi.abs() * 0.1).max(0.5)
    };
    (lo - pad, hi + pad)
}

/// Draws the panels side by side into one SVG file.
pub fn write_svg(path: &Path, panels: &[Panel]) -> Result<(), String> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let width = 520 * panels.len().max(1) as u32;
    {
        let root = SVGBackend::new(&tmp, (width, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        // One colour per series name across the panels, so a task keeps its colour.
        let mut names: Vec<&str> = Vec::new();
        for s in panels.iter().flat_map(|p| &p.series) {
            if !names.contains(&s.name.as_str()) {
                names.push(&s.name);
            }
        }
        for (panel, area) in panels.iter().zip(areas.iter()) {
            let xs = range(
                panel
                    .series
                    .iter()
                    .flat_map(|s| s.points.iter().map(|p| p.0)),
            );
            let ys = range(
                panel
                    .series
                    .iter()
                    .flat_map(|s| s.points.iter().map(|p| p.1)),
            );
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(xs.0..xs.1, ys.0..ys.1)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc(&panel.x_label)
                .y_desc(&panel.y_label)
                .draw()
                .map_err(|e| e.to_string())?;
            for s in &panel.series {
                let i = names.iter().position(|n| *n == s.name).unwrap_or(0);
                let color = Palette99::pick(i).to_rgba();
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| e.to_string())?
                    .label(&s.name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_pad_spans_and_widen_flat_lines() {
        // 5 % of the span on each side.
        let (lo, hi) = range([1.0, 3.0].into_iter());
        assert!(
            (lo - 0.9).abs() < 1e-12 && (hi - 3.1).abs() < 1e-12,
            "{lo} {hi}"
        );
        // A constant 1.0: 0.5 either side, so the axis labels differ.
        assert_eq!(range([1.0, 1.0].into_iter()), (0.5, 1.5));
        assert_eq!(range([f64::NAN].into_iter()), (0.0, 1.0));
    }

    #[test]
    fn writes_an_svg_with_titles_and_legend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.svg");
        let panel = Panel {
            title: "loss".into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            series: vec![Series {
                name: "train".into(),
                points: vec![(1.0, 0.5), (2.0, 0.3), (3.0, 0.25)],
            }],
        };
        write_svg(&path, &[panel.clone(), panel]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("<svg") && text.contains("train") && text.contains("epoch"));
        assert!(!dir.path().join("curves.svg.tmp").exists());
    }
}
