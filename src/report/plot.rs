//! The percentile plot: one curve per stage, drawn with plotters into an RGB buffer and written
//! as PNG.
//!
//! The plot follows HdrHistogram's plotter: the x axis is the percentile on a log scale of
//! 1/(1-p), so every "nine" gets the same width. The y axis is logarithmic, unlike the
//! plotter's linear one: kmm's stages differ by two to three orders of magnitude (a parse takes
//! a fraction of a microsecond, tick-to-order several, tails reach milliseconds), and on a
//! linear axis every stage but the slowest would be a flat line on the floor.
//!
//! Text uses DejaVu Sans, embedded in the binary from the `dejavu` crate (the font under its
//! Bitstream Vera licence): the report must draw on hosts without system fonts.

use super::table::fmt_us;
use super::{Report, StageReport, PLOT_HEIGHT, PLOT_WIDTH};
use crate::metrics::Stage;
use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};
use std::ops::Range;
use std::path::Path;
use std::sync::Once;

/// Tableau's ten colours: distinct, and readable on white.
pub(super) const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// kmm's stages keep their colour from report to report; tick-to-order, the sum of the others,
/// is black and drawn thicker.
pub(super) const STAGE_COLOURS: [[u8; 3]; 7] = [PALETTE[0], PALETTE[1], PALETTE[2], PALETTE[3], PALETTE[4], PALETTE[9], [0, 0, 0]];

const TEXT: RGBColor = RGBColor(50, 50, 50);
const SUBTLE: RGBColor = RGBColor(110, 110, 110);
const FRAME: RGBColor = RGBColor(150, 150, 150);
const GRID: RGBColor = RGBColor(222, 222, 222);
const GRID_MINOR: RGBColor = RGBColor(240, 240, 240);

const FONT: &str = "DejaVu Sans";

/// plotters looks fonts up by name in a process-wide table; its own defaults ask for
/// "sans-serif", which gets the same face so that nothing falls back to a missing system font.
fn register_fonts() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        for name in [FONT, "sans-serif"] {
            if register_font(name, FontStyle::Normal, dejavu::sans::regular()).is_err() {
                unreachable!("the embedded font parses");
            }
        }
    });
}

fn font(size: u32, colour: RGBColor) -> TextStyle<'static> {
    (FONT, size).into_font().color(&colour)
}

fn rgb([r, g, b]: [u8; 3]) -> RGBColor {
    RGBColor(r, g, b)
}

/// A tick of the log y axis: a mantissa from the axis's steps times a power of ten, in µs.
#[derive(Clone, Copy)]
struct Tick {
    mantissa: u32,
    exp: i32,
}

/// Ticks per decade: 1-2-5 normally, every digit when the data spans about a decade only.
const COARSE: &[u32] = &[1, 2, 5];
const FINE: &[u32] = &[1, 2, 3, 4, 5, 6, 7, 8, 9];

impl Tick {
    fn value(self) -> f64 {
        f64::from(self.mantissa) * 10f64.powi(self.exp)
    }

    fn next(self, steps: &[u32]) -> Tick {
        match steps.iter().find(|&&m| m > self.mantissa) {
            Some(&mantissa) => Tick { mantissa, exp: self.exp },
            None => Tick {
                mantissa: 1,
                exp: self.exp + 1,
            },
        }
    }

    /// The largest tick not above `v`.
    fn floor(v: f64, steps: &[u32]) -> Tick {
        let mut exp = v.log10().floor() as i32;
        let mut m = v / 10f64.powi(exp);
        // A hair of slack so that an exact tick computed as 1.9999 still lands on itself.
        if m >= 10.0 - 1e-9 {
            exp += 1;
            m /= 10.0;
        }
        let mantissa = steps.iter().rev().copied().find(|&s| m >= f64::from(s) - 1e-9).unwrap_or(1);
        Tick { mantissa, exp }
    }

    /// The ticks from the largest not above `lo` to the smallest not below `hi`.
    fn range(lo: f64, hi: f64, steps: &[u32]) -> Vec<Tick> {
        let mut ticks = vec![Tick::floor(lo, steps)];
        loop {
            let t = ticks[ticks.len() - 1].next(steps);
            ticks.push(t);
            if t.value() >= hi * (1.0 - 1e-9) {
                return ticks;
            }
        }
    }

    fn label(self) -> String {
        if self.exp >= 0 {
            format!("{}", u64::from(self.mantissa) * 10u64.pow(self.exp as u32))
        } else {
            format!("{:.*}", (-self.exp) as usize, self.value())
        }
    }
}

/// A linear axis (of percentile nines, or of log10 µs) whose grid lines and labels are the
/// given ticks, rather than the evenly spaced round numbers plotters picks itself.
struct TickAxis {
    range: Range<f64>,
    /// Labelled ticks with a bold grid line.
    labelled: Vec<(f64, String)>,
    /// Ticks with a light grid line only.
    light: Vec<f64>,
}

impl Ranged for TickAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let f = (value - self.range.start) / (self.range.end - self.range.start);
        limit.0 + (f * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.labelled.iter().map(|&(v, _)| v).collect()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

impl ValueFormatter<f64> for TickAxis {
    fn format_ext(&self, value: &f64) -> String {
        self.labelled
            .iter()
            .min_by(|a, b| (a.0 - value).abs().total_cmp(&(b.0 - value).abs()))
            .map_or_else(String::new, |(_, label)| label.clone())
    }
}

/// "0%", "90%", "99%", "99.9%", ... for 0, 1, 2, 3 nines.
fn percentile_label(nines: u32) -> String {
    match nines {
        0 => "0%".to_string(),
        1 => "90%".to_string(),
        n => format!("99.{}%", "9".repeat(n as usize - 2)).replace(".%", "%"),
    }
}

/// Draws the report's plot and writes it to `report.png`. The PNG is encoded here rather than
/// by plotters' file backend, which picks the format from the file's extension: `--png` may
/// name any file, and it always gets a PNG.
pub(super) fn write_png(report: &Report) -> Result<()> {
    let mut rgb = vec![0u8; PLOT_WIDTH as usize * PLOT_HEIGHT as usize * 3];
    draw(report, &mut rgb)?;
    encode_png(&report.png, &rgb)
}

fn encode_png(path: &Path, rgb: &[u8]) -> Result<()> {
    let file = std::fs::File::create(path)?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), PLOT_WIDTH, PLOT_HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(())
}

fn draw(report: &Report, buf: &mut [u8]) -> Result<()> {
    register_fonts();
    let root = BitMapBackend::with_buffer(buf, (PLOT_WIDTH, PLOT_HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let us = report.unit.us_per_unit();
    let stages: Vec<&StageReport> = report.stages.iter().filter(|s| !s.histogram.is_empty()).collect();

    // x: percentiles on the scale of log10(1/(1-p)), to 99.999% or as far as the data goes.
    let max_count = stages.iter().map(|s| s.count()).max().unwrap_or(1);
    let nines = ((max_count as f64).log10().ceil() as u32).clamp(5, 7);

    // y: log10 of µs, between ticks around the smallest non-zero and the largest value.
    let lo = stages
        .iter()
        .map(|s| s.histogram.min_nz() as f64 * us)
        .fold(f64::INFINITY, f64::min);
    let hi = stages.iter().map(|s| s.histogram.max() as f64 * us).fold(0.0, f64::max);
    let mut ticks = Tick::range(lo, hi, COARSE);
    let decades = |ticks: &[Tick]| (ticks[ticks.len() - 1].value() / ticks[0].value()).log10();
    if decades(&ticks) <= 1.3 {
        ticks = Tick::range(lo, hi, FINE);
    }
    // Label every tick while that stays legible, else only the powers of ten.
    let label_all = decades(&ticks) <= 3.0;
    let (major, minor): (Vec<Tick>, Vec<Tick>) = ticks.iter().partition(|t| t.mantissa == 1 || label_all);
    let y_lo = ticks[0].value();
    let (log_lo, log_hi) = (y_lo.log10(), ticks[ticks.len() - 1].value().log10());
    let y_of = |v: f64| v.max(y_lo).log10();

    let file = report
        .input
        .file_name()
        .map_or_else(|| report.input.display().to_string(), |f| f.to_string_lossy().into_owned());
    let samples: u64 = stages.iter().map(|s| s.count()).sum();
    let subtitle = format!(
        "{file}: {} intervals over {:.1} s, {samples} values",
        report.intervals,
        report.span.seconds()
    );
    let centre = Pos::new(HPos::Center, VPos::Top);
    let mid = (PLOT_WIDTH / 2) as i32;
    root.draw(&Text::new("Latency by percentile", (mid, 14), font(26, TEXT).pos(centre)))?;
    root.draw(&Text::new(subtitle, (mid, 50), font(17, SUBTLE).pos(centre)))?;

    let mut chart = ChartBuilder::on(&root)
        .margin_top(84)
        .margin_right(40)
        .margin_bottom(24)
        .margin_left(20)
        .x_label_area_size(60)
        .y_label_area_size(100)
        .build_cartesian_2d(
            TickAxis {
                range: 0.0..f64::from(nines),
                labelled: (0..=nines).map(|n| (f64::from(n), percentile_label(n))).collect(),
                light: Vec::new(),
            },
            TickAxis {
                range: log_lo..log_hi,
                labelled: major.iter().map(|t| (t.value().log10(), t.label())).collect(),
                light: minor.iter().map(|t| t.value().log10()).collect(),
            },
        )?;
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(GRID_MINOR)
        .axis_style(FRAME)
        .set_all_tick_mark_size(6)
        .label_style(font(16, TEXT))
        .axis_desc_style(font(16, TEXT))
        .x_desc("Percentile")
        .y_desc("Latency (µs, log scale)")
        .draw()?;
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    root.draw(&Rectangle::new([(xs.start, ys.start), (xs.end, ys.end)], FRAME))?;

    // Curves: one point per pixel column, the value at that column's percentile.
    let columns = xs.end - xs.start;
    let curves: Vec<Vec<(f64, f64)>> = stages
        .iter()
        .map(|s| {
            (0..=columns)
                .map(|col| {
                    let n = f64::from(col) / f64::from(columns) * f64::from(nines);
                    let q = (1.0 - 10f64.powf(-n)).clamp(0.0, 1.0);
                    (n, y_of(s.quantile(q) as f64 * us))
                })
                .collect()
        })
        .collect();
    for (s, curve) in stages.iter().zip(&curves) {
        let width = if s.name == Stage::TickToOrder.name() { 3 } else { 2 };
        chart.draw_series(LineSeries::new(curve.iter().copied(), rgb(s.colour).stroke_width(width)))?;
    }

    // Legend: the table's key figures, so the plot stands on its own. Columns are placed by
    // measured width (the numbers right-aligned), not by padding with spaces.
    let cells: Vec<[String; 4]> = stages
        .iter()
        .map(|s| {
            let v = |q: f64| fmt_us(s.quantile(q) as f64 * us);
            [s.name.clone(), v(0.5), v(0.99), fmt_us(s.histogram.max() as f64 * us)]
        })
        .collect();
    let header = ["(µs)", "p50", "p99", "max"];
    let legend_font = font(15, TEXT);
    let mut widths = [0i32; 4];
    for row in cells.iter().map(|r| r.each_ref().map(String::as_str)).chain([header]) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(root.estimate_text_size(cell, &legend_font)?.0 as i32);
        }
    }
    let number_w = widths[1..].iter().copied().max().unwrap_or(0);
    let gap = 22;
    // Left edge of the names, then the right edges of the three number columns.
    let name_x = 50;
    let column_ends = [1, 2, 3].map(|k| name_x + widths[0] + k * (gap + number_w));
    let row_h = 20;
    let lw = column_ends[2] + 12;
    let lh = 10 + row_h * (cells.len() as i32 + 1) + 6;
    // Where the curves run depends on the data; the corner crossed by the fewest segments
    // hides the least (preferring top-left, then bottom-right, on a tie).
    let pad = 16;
    let corners = [
        (xs.start + pad, ys.start + pad),
        (xs.end - pad - lw, ys.end - pad - lh),
        (xs.end - pad - lw, ys.start + pad),
        (xs.start + pad, ys.end - pad - lh),
    ];
    let pixels: Vec<Vec<(i32, i32)>> = curves.iter().map(|c| c.iter().map(|p| chart.backend_coord(p)).collect()).collect();
    let hidden = |&(x0, y0): &(i32, i32)| {
        let (x0, y0, x1, y1) = (x0 - 2, y0 - 2, x0 + lw + 2, y0 + lh + 2);
        pixels
            .iter()
            .flat_map(|c| c.windows(2))
            .filter(|w| {
                let ((ax, ay), (bx, by)) = (w[0], w[1]);
                ax.max(bx) >= x0 && ax.min(bx) <= x1 && ay.max(by) >= y0 && ay.min(by) <= y1
            })
            .count()
    };
    let (lx, ly) = corners
        .iter()
        .copied()
        .min_by_key(|c| hidden(c))
        .ok_or_else(|| anyhow!("no legend corner"))?;
    root.draw(&Rectangle::new([(lx, ly), (lx + lw, ly + lh)], WHITE.filled()))?;
    root.draw(&Rectangle::new([(lx, ly), (lx + lw, ly + lh)], FRAME))?;
    let right = Pos::new(HPos::Right, VPos::Top);
    let draw_row = |y: i32, row: [&str; 4], style: &TextStyle| -> Result<()> {
        root.draw(&Text::new(row[0], (lx + name_x, y), style.clone()))?;
        for (cell, end) in row[1..].iter().zip(column_ends) {
            root.draw(&Text::new(*cell, (lx + end, y), style.pos(right)))?;
        }
        Ok(())
    };
    draw_row(ly + 10, header, &font(15, SUBTLE))?;
    for (i, (s, row)) in stages.iter().zip(&cells).enumerate() {
        let y = ly + 10 + row_h * (i as i32 + 1);
        root.draw(&Rectangle::new([(lx + 12, y + 6), (lx + 40, y + 11)], rgb(s.colour).filled()))?;
        draw_row(y, row.each_ref().map(String::as_str), &legend_font)?;
    }
    root.present()?;
    Ok(())
}
