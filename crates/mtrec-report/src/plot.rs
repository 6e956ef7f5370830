//! Charts as SVG and PNG: line charts (training curves), lines with a shaded band (a mean over
//! runs and its spread), and histograms; several panels make one figure.
//!
//! SVG reads at any size and diffs as text; PNG is what markdown viewers, issue trackers and
//! slides show without fuss. Both come from one drawing routine over plotters' backends. PNG
//! uses plotters' own rasteriser (`bitmap_backend`), text drawn with `ab_glyph` from a bundled
//! DejaVu Sans (`assets/`, licence beside it), and the `png` crate as encoder: four small
//! pure-Rust crates, chosen over rendering the SVG with resvg, whose text support alone brings
//! a font database and a shaping engine (a dozen crates), and over plotters' `image` encoder,
//! which brings the `image` crate. The font is registered as `sans-serif`, so SVG text is
//! measured with the same metrics as PNG text and the two lay out alike. Files are written to a
//! temporary sibling and renamed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// One named line: `(x, y)` points in drawing order.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One panel of line charts.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// A point of a line with a band around it: `y` drawn as the line, `[lo, hi]` shaded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandPoint {
    pub x: f64,
    pub y: f64,
    pub lo: f64,
    pub hi: f64,
}

/// A named line with a band (a mean over runs with ± one std, or a confidence interval).
#[derive(Debug, Clone)]
pub struct BandSeries {
    pub name: String,
    pub points: Vec<BandPoint>,
}

/// One panel of lines with bands.
#[derive(Debug, Clone)]
pub struct BandPanel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<BandSeries>,
    /// A logarithmic y axis (losses that fall by orders of magnitude), where every value is
    /// positive; a linear one otherwise.
    pub log_y: bool,
}

/// One named sample of a histogram panel.
#[derive(Debug, Clone)]
pub struct HistogramGroup {
    pub name: String,
    pub values: Vec<f64>,
}

/// Overlaid histograms of several samples over common bins.
#[derive(Debug, Clone)]
pub struct HistogramPanel {
    pub title: String,
    pub x_label: String,
    pub groups: Vec<HistogramGroup>,
    pub bins: usize,
    /// The binned range; `None` spans the values of every group.
    pub range: Option<(f64, f64)>,
}

/// One panel of a figure.
#[derive(Debug, Clone)]
pub enum Chart {
    Lines(Panel),
    Bands(BandPanel),
    Histogram(HistogramPanel),
}

impl Chart {
    /// The names of the panel's series or groups, in drawing order.
    fn names(&self) -> Vec<&str> {
        match self {
            Chart::Lines(p) => p.series.iter().map(|s| s.name.as_str()).collect(),
            Chart::Bands(p) => p.series.iter().map(|s| s.name.as_str()).collect(),
            Chart::Histogram(p) => p.groups.iter().map(|g| g.name.as_str()).collect(),
        }
    }
}

/// Panels laid out row by row, `columns` to a row.
#[derive(Debug, Clone)]
pub struct Figure {
    pub charts: Vec<Chart>,
    pub columns: usize,
}

impl Figure {
    /// The figure's size in pixels: 520 x 380 per panel.
    pub fn size(&self) -> (u32, u32) {
        let (rows, cols) = self.grid();
        (520 * cols as u32, 380 * rows as u32)
    }

    fn grid(&self) -> (usize, usize) {
        let cols = self.columns.clamp(1, self.charts.len().max(1));
        (self.charts.len().max(1).div_ceil(cols), cols)
    }
}

/// How a figure file is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Svg,
    Png,
}

impl ImageFormat {
    /// From a file name: `.png` is PNG, anything else SVG.
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("png") => ImageFormat::Png,
            _ => ImageFormat::Svg,
        }
    }
}

/// Draws line-chart panels side by side into one SVG file.
pub fn write_svg(path: &Path, panels: &[Panel]) -> Result<(), String> {
    write_figure(path, &row_of(panels), ImageFormat::Svg)
}

/// Draws line-chart panels side by side into one PNG file.
pub fn write_png(path: &Path, panels: &[Panel]) -> Result<(), String> {
    write_figure(path, &row_of(panels), ImageFormat::Png)
}

fn row_of(panels: &[Panel]) -> Figure {
    Figure {
        charts: panels.iter().cloned().map(Chart::Lines).collect(),
        columns: panels.len().max(1),
    }
}

/// Writes `figure` to `path` as `format` (atomically).
pub fn write_figure(path: &Path, figure: &Figure, format: ImageFormat) -> Result<(), String> {
    let bytes = match format {
        ImageFormat::Svg => render_svg(figure).map(String::into_bytes),
        ImageFormat::Png => render_png(figure),
    }
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("{}: {e}", path.display())
        })
}

/// The figure as SVG text (for pages that embed it).
pub fn render_svg(figure: &Figure) -> Result<String, String> {
    register_bundled_font()?;
    let mut text = String::new();
    draw(
        SVGBackend::with_string(&mut text, figure.size()).into_drawing_area(),
        figure,
    )?;
    Ok(text)
}

/// The figure as a PNG file's bytes.
pub fn render_png(figure: &Figure) -> Result<Vec<u8>, String> {
    register_bundled_font()?;
    let size = figure.size();
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    draw(
        BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area(),
        figure,
    )?;
    encode_png(&rgb, size)
}

/// Tableau 10 (matplotlib's default colours), reordered so that any three consecutive ones
/// differ in hue: distinct and readable on white (plotters' `Palette99` puts a pale yellow
/// third).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),  // blue
    RGBColor(255, 127, 14),  // orange
    RGBColor(44, 160, 44),   // green
    RGBColor(148, 103, 189), // purple
    RGBColor(214, 39, 40),   // red
    RGBColor(23, 190, 207),  // cyan
    RGBColor(140, 86, 75),   // brown
    RGBColor(227, 119, 194), // pink
    RGBColor(127, 127, 127), // grey
    RGBColor(188, 189, 34),  // olive
];

/// DejaVu Sans, registered once per process as the `sans-serif` family plotters asks for.
fn register_bundled_font() -> Result<(), String> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
    // Other styles (bold captions) fall back to the normal face.
    let ok = *REGISTERED
        .get_or_init(|| register_font("sans-serif", FontStyle::Normal, DEJAVU_SANS).is_ok());
    ok.then_some(())
        .ok_or_else(|| "the bundled font DejaVuSans.ttf cannot be read".to_string())
}

fn encode_png(rgb: &[u8], (width, height): (u32, u32)) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(rgb).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    Ok(out)
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, figure: &Figure) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let areas = root.split_evenly(figure.grid());
    // One colour per series name across the panels, so a model keeps its colour.
    let mut names: Vec<&str> = Vec::new();
    for name in figure.charts.iter().flat_map(Chart::names) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let colour = |name: &str| {
        let i = names.iter().position(|n| *n == name).unwrap_or(0);
        PALETTE[i % PALETTE.len()].to_rgba()
    };
    for (chart, area) in figure.charts.iter().zip(areas.iter()) {
        match chart {
            Chart::Lines(p) => draw_lines(area, p, &colour),
            Chart::Bands(p) => draw_bands(area, p, &colour),
            Chart::Histogram(p) => draw_histogram(area, p, &colour),
        }
        .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw_lines<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    colour: &dyn Fn(&str) -> RGBAColor,
) -> DrawResult<DB> {
    let points = || panel.series.iter().flat_map(|s| s.points.iter());
    let xs = range(points().map(|p| p.0));
    let ys = range(points().map(|p| p.1));
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(xs.0..xs.1, ys.0..ys.1)?;
    let whole = integral(points().map(|p| p.0));
    chart
        .configure_mesh()
        .x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        .x_labels(x_label_count(xs, whole))
        .x_label_formatter(&|x| tick(*x, whole))
        .draw()?;
    for s in &panel.series {
        let c = colour(&s.name);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))?
            .label(&s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c));
        if s.points.len() == 1 {
            chart.draw_series(s.points.iter().map(|&p| marker(p, c)))?;
        }
    }
    legend(&mut chart)
}

/// A dot for a series of one point (a run of one epoch, a tuning of one trial), which a line
/// cannot show.
fn marker(point: (f64, f64), colour: RGBAColor) -> Circle<(f64, f64), u32> {
    Circle::new(point, 4, colour.filled())
}

/// How many x labels to ask plotters for: at most one per whole number in the range where
/// the data are whole (epochs, trials, steps). Plotters' steps are 1, 2 or 5 times a power of
/// ten, the finest that fit the count, so no step then falls below 1 and no tick between two
/// epochs (`1.5`); else its default.
fn x_label_count((lo, hi): (f64, f64), whole: bool) -> usize {
    const DEFAULT: usize = 10;
    if !whole || !lo.is_finite() || !hi.is_finite() {
        return DEFAULT;
    }
    let wholes = (hi.floor() - lo.ceil() + 1.0).max(1.0);
    (wholes as usize).min(DEFAULT)
}

fn draw_bands<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &BandPanel,
    colour: &dyn Fn(&str) -> RGBAColor,
) -> DrawResult<DB> {
    let points = || panel.series.iter().flat_map(|s| s.points.iter());
    let xs = range(points().map(|p| p.x));
    let whole = integral(points().map(|p| p.x));
    let ys = || points().flat_map(|p| [p.y, p.lo, p.hi]);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(&panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56);
    let (lo, hi) = span(ys());
    if panel.log_y && lo > 0.0 && hi.is_finite() {
        // 5 % of the span on each side, in log space.
        let pad = ((hi / lo).ln() * 0.05).exp().max(1.05);
        let (lo, hi) = (lo / pad, hi * pad);
        // Ticks at 1-2-5 (or finer) of each decade: plotters' own log ticks can leave a range
        // within one decade with a single label.
        let y = (lo..hi).log_scale().with_key_points(log_ticks(lo, hi));
        let mut chart = builder.build_cartesian_2d(xs.0..xs.1, y)?;
        fill_bands(&mut chart, panel, colour, (xs, whole), Some(&|y| short(*y)))
    } else {
        let ys = range(ys());
        let mut chart = builder.build_cartesian_2d(xs.0..xs.1, ys.0..ys.1)?;
        fill_bands(&mut chart, panel, colour, (xs, whole), None)
    }
}

/// The mesh, bands, lines and legend of a band panel, on a linear or logarithmic y axis.
fn fill_bands<'a, DB, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    panel: &BandPanel,
    colour: &dyn Fn(&str) -> RGBAColor,
    (xs, whole): ((f64, f64), bool),
    y_format: Option<&dyn Fn(&f64) -> String>,
) -> DrawResult<DB>
where
    DB: DrawingBackend + 'a,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let x_format = |x: &f64| tick(*x, whole);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        .x_labels(x_label_count(xs, whole))
        .x_label_formatter(&x_format);
    if let Some(f) = y_format {
        mesh.y_label_formatter(f);
    }
    mesh.draw()?;
    for s in &panel.series {
        let c = colour(&s.name);
        let outline: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|p| (p.x, p.hi))
            .chain(s.points.iter().rev().map(|p| (p.x, p.lo)))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        if outline.len() >= 3 {
            chart.draw_series(std::iter::once(Polygon::new(outline, c.mix(0.18).filled())))?;
        }
        chart
            .draw_series(LineSeries::new(
                s.points.iter().map(|p| (p.x, p.y)),
                c.stroke_width(2),
            ))?
            .label(&s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c));
        if let [p] = s.points.as_slice() {
            chart.draw_series(std::iter::once(Circle::new((p.x, p.y), 4, c.filled())))?;
        }
    }
    legend(chart)
}

fn draw_histogram<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &HistogramPanel,
    colour: &dyn Fn(&str) -> RGBAColor,
) -> DrawResult<DB> {
    let bins = panel.bins.max(1);
    let (lo, hi) = panel.range.unwrap_or_else(|| {
        let (lo, hi) = span(panel.groups.iter().flat_map(|g| g.values.iter().copied()));
        // Flat data (one value): one unit-wide range around it, so the bins have a width.
        if hi > lo {
            (lo, hi)
        } else {
            (lo - 0.5, lo + 0.5)
        }
    });
    let counts: Vec<Vec<usize>> = panel
        .groups
        .iter()
        .map(|g| histogram_counts(&g.values, lo, hi, bins))
        .collect();
    let top = counts.iter().flatten().copied().max().unwrap_or(0).max(1);
    let width = (hi - lo) / bins as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(lo - width / 2.0..hi + width / 2.0, 0.0..top as f64 * 1.08)?;
    chart
        .configure_mesh()
        .x_desc(&panel.x_label)
        .y_desc("runs")
        // Counts are whole: no 0.5 ticks on small samples.
        .y_labels((top + 1).min(11))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    // The groups' bars side by side within each bin, so none hides another.
    let k = panel.groups.len().max(1) as f64;
    for (gi, (g, counts)) in panel.groups.iter().zip(&counts).enumerate() {
        let c = colour(&g.name);
        let bar = |i: usize, n: usize| {
            let x0 = lo + i as f64 * width + gi as f64 * width / k;
            [(x0, 0.0), (x0 + width / k, n as f64)]
        };
        let bars = || counts.iter().enumerate().filter(|(_, n)| **n > 0);
        chart.draw_series(bars().map(|(i, &n)| Rectangle::new(bar(i, n), c.mix(0.6).filled())))?;
        chart
            .draw_series(bars().map(|(i, &n)| Rectangle::new(bar(i, n), c.stroke_width(1))))?
            .label(&g.name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
    }
    legend(&mut chart)
}

/// Ticks for a log axis over `[lo, hi]` (`0 < lo < hi`): 1, 2 and 5 times the powers of ten
/// within it, or 1, 1.5, 2, 3, 5 and 7 times them where that gives fewer than four.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let within = |mantissas: &[f64]| -> Vec<f64> {
        let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        (first..=last)
            .flat_map(|e| mantissas.iter().map(move |m| m * 10f64.powi(e)))
            .filter(|v| *v >= lo && *v <= hi)
            .collect()
    };
    let coarse = within(&[1.0, 2.0, 5.0]);
    if coarse.len() >= 4 {
        coarse
    } else {
        within(&[1.0, 1.5, 2.0, 3.0, 5.0, 7.0])
    }
}

/// A tick value in its shortest form, rounded to 6 significant figures first (so that
/// 3 x 0.1 prints as 0.3).
fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return v.to_string();
    }
    let scale = 10f64.powi(5 - v.abs().log10().floor() as i32);
    ((v * scale).round() / scale).to_string()
}

/// Whether every finite value is a whole number (steps, epochs), so ticks need no decimals.
fn integral(mut values: impl Iterator<Item = f64>) -> bool {
    values.all(|v| !v.is_finite() || v.fract() == 0.0)
}

/// An axis tick: whole numbers without decimals where the data are whole, else three
/// significant figures.
fn tick(x: f64, whole: bool) -> String {
    if whole && (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        let digits = (2 - x.abs().max(1e-12).log10().floor() as i32).clamp(0, 6) as usize;
        format!("{x:.digits$}")
    }
}

fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> DrawResult<DB> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
}

/// Counts of `values` in `bins` equal bins over `[lo, hi]`: bin `i` holds `[lo + i w,
/// lo + (i+1) w)`, the last one also `hi`; values outside the range or not finite are left out.
pub fn histogram_counts(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<usize> {
    let bins = bins.max(1);
    let mut counts = vec![0; bins];
    if !(hi > lo) {
        return counts;
    }
    for &v in values {
        if v.is_finite() && v >= lo && v <= hi {
            let i = (((v - lo) / (hi - lo)) * bins as f64) as usize;
            counts[i.min(bins - 1)] += 1;
        }
    }
    counts
}

/// The smallest and largest finite value (`(inf, -inf)` when there is none).
fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = span(values);
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
    fn histogram_bins_are_half_open_but_the_last_takes_the_maximum() {
        // Bins of width 0.5 over [0, 2]: [0, .5) [.5, 1) [1, 1.5) [1.5, 2].
        let values = [0.0, 0.49, 0.5, 1.0, 1.2, 1.99, 2.0, 2.01, -0.1, f64::NAN];
        assert_eq!(histogram_counts(&values, 0.0, 2.0, 4), vec![2, 1, 2, 2]);
        assert_eq!(histogram_counts(&values, 1.0, 1.0, 4), vec![0; 4]);
        assert_eq!(histogram_counts(&[3.0], 0.0, 3.0, 0), vec![1]);
    }

    fn panel() -> Panel {
        Panel {
            title: "loss".into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            series: vec![Series {
                name: "train".into(),
                points: vec![(1.0, 0.5), (2.0, 0.3), (3.0, 0.25)],
            }],
        }
    }

    #[test]
    fn writes_an_svg_with_titles_and_legend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.svg");
        write_svg(&path, &[panel(), panel()]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("<svg") && text.contains("train") && text.contains("epoch"));
        assert!(!dir.path().join("curves.svg.tmp").exists());
    }

    /// Decodes the file and looks at pixels: the size is the layout's, the background white,
    /// and something not white (lines, text) was drawn.
    #[test]
    fn writes_a_png_that_decodes_to_the_figure_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixed.png");
        let figure = Figure {
            charts: vec![
                Chart::Lines(panel()),
                Chart::Bands(BandPanel {
                    title: "mean ± std".into(),
                    x_label: "step".into(),
                    y_label: "loss".into(),
                    series: vec![BandSeries {
                        name: "mmoe".into(),
                        points: (0..5)
                            .map(|i| {
                                let y = 1.0 / (1.0 + i as f64);
                                BandPoint {
                                    x: i as f64,
                                    y,
                                    lo: y - 0.1,
                                    hi: y + 0.1,
                                }
                            })
                            .collect(),
                    }],
                    log_y: true,
                }),
                Chart::Histogram(HistogramPanel {
                    title: "final loss".into(),
                    x_label: "loss".into(),
                    groups: vec![
                        HistogramGroup {
                            name: "a".into(),
                            values: vec![1.0, 1.1, 1.2, 2.0],
                        },
                        HistogramGroup {
                            name: "b".into(),
                            values: vec![1.5],
                        },
                    ],
                    bins: 5,
                    range: None,
                }),
            ],
            columns: 2,
        };
        assert_eq!(figure.size(), (1040, 760));
        write_figure(&path, &figure, ImageFormat::of(&path)).unwrap();
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!((info.width, info.height), (1040, 760));
        assert_eq!(&pixels[..3], &[255, 255, 255]);
        let inked = pixels.chunks(3).filter(|p| p != &[255, 255, 255]).count();
        assert!(inked > 5_000, "{inked} non-white pixels");
        // The empty fourth cell of the 2 x 2 grid stays white.
        let row = 3 * 1040;
        let corner = (400..760)
            .flat_map(|y| (520..1040).map(move |x| y * row + 3 * x))
            .all(|i| pixels[i..i + 3] == [255, 255, 255]);
        assert!(corner);
    }

    #[test]
    fn ticks_of_whole_data_have_no_decimals() {
        assert!(integral([0.0, 250.0, 10_000.0, f64::NAN].into_iter()));
        assert!(!integral([0.0, 0.5].into_iter()));
        assert_eq!(tick(2500.0, true), "2500");
        // A tick between whole data points keeps its digits.
        assert_eq!(tick(2.5, true), "2.50");
        assert_eq!(tick(0.01234, false), "0.0123");
        assert_eq!(tick(123.4, false), "123");
    }

    /// The text of every `<text>` element of an SVG document.
    fn svg_texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..];
                Some(body[..body.find("</text>")?].trim().to_string())
            })
            .collect()
    }

    /// Tick labels that are numbers within `[lo, hi]` but not whole.
    fn fractional_ticks(svg: &str, lo: f64, hi: f64) -> Vec<String> {
        svg_texts(svg)
            .into_iter()
            .filter(|t| {
                t.parse::<f64>()
                    .is_ok_and(|v| (lo..=hi).contains(&v) && v.fract() != 0.0)
            })
            .collect()
    }

    fn svg_of(points: Vec<(f64, f64)>) -> String {
        let mut p = panel();
        p.series[0].points = points;
        render_svg(&row_of(&[p])).unwrap()
    }

    /// Epochs 1-3 (y values far from the x range, so no y tick is mistaken for an x one):
    /// ticks 1, 2 and 3 only, no 1.5.
    #[test]
    fn whole_x_data_get_whole_ticks() {
        let svg = svg_of(vec![(1.0, 0.5), (2.0, 0.3), (3.0, 0.25)]);
        assert!(
            fractional_ticks(&svg, 0.8, 3.2).is_empty(),
            "{:?}",
            svg_texts(&svg)
        );
        let texts = svg_texts(&svg);
        for t in ["1", "2", "3"] {
            assert!(texts.iter().any(|x| x == t), "{texts:?}");
        }
        // Two trials: 1 and 2.
        let svg = svg_of(vec![(1.0, 10.0), (2.0, 10.5)]);
        assert!(
            fractional_ticks(&svg, 0.8, 2.2).is_empty(),
            "{:?}",
            svg_texts(&svg)
        );
        // Many epochs: whole steps, at most the default count.
        let svg = svg_of((1..=40).map(|e| (e as f64, 100.0 + e as f64)).collect());
        assert!(
            fractional_ticks(&svg, 0.0, 42.0).is_empty(),
            "{:?}",
            svg_texts(&svg)
        );
        assert_eq!(x_label_count((0.95, 2.05), true), 2);
        assert_eq!(x_label_count((-1.0, 100.0), true), 10);
        assert_eq!(x_label_count((0.1, 0.9), true), 1);
        assert_eq!(x_label_count((0.0, 1.0), false), 10);
    }

    /// A run of one epoch: the point is drawn as a dot, the axis ticks it as 1.
    #[test]
    fn a_series_of_one_point_is_drawn_as_a_dot() {
        let svg = svg_of(vec![(1.0, 10.0)]);
        assert!(svg.contains("<circle"), "no marker");
        assert!(
            fractional_ticks(&svg, 0.4, 1.6).is_empty(),
            "{:?}",
            svg_texts(&svg)
        );
        assert!(svg_texts(&svg).iter().any(|t| t == "1"));
        assert!(!svg_of(vec![(1.0, 10.0), (2.0, 9.0)]).contains("<circle"));
    }

    #[test]
    fn log_ticks_are_1_2_5_or_finer_within_a_decade() {
        assert_eq!(log_ticks(0.3, 8.0), vec![0.5, 1.0, 2.0, 5.0]);
        assert_eq!(
            log_ticks(0.7, 3.5)
                .iter()
                .map(|v| short(*v))
                .collect::<Vec<_>>(),
            ["0.7", "1", "1.5", "2", "3"]
        );
        assert_eq!(short(3.0 * 0.1), "0.3");
        assert_eq!(short(20.0), "20");
    }

    #[test]
    fn the_format_follows_the_extension() {
        assert_eq!(ImageFormat::of(Path::new("a/b.PNG")), ImageFormat::Png);
        assert_eq!(ImageFormat::of(Path::new("a/b.svg")), ImageFormat::Svg);
        assert_eq!(ImageFormat::of(Path::new("b")), ImageFormat::Svg);
    }
}
