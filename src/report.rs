//! `kmm latency-report`: reads an HdrHistogram interval log, merges the intervals per tag and
//! prints a percentile table and draws a percentile plot (PNG).
//!
//! Any standard interval log is accepted: kmm's own (one tag per [`Stage`], nanoseconds) and
//! those written by HdrHistogram's Java, Rust or other writers (tags optional, `#[StartTime]`,
//! `#[BaseTime]`, legend and comment lines). Lines are handed one at a time to hdrhistogram's
//! own interval-log parser, so what it accepts we accept, and a line it rejects is reported with
//! its number and a diagnosis of which field is wrong.
//!
//! The plot follows HdrHistogram's plotter: the x axis is the percentile on a log scale of
//! 1/(1-p), so every "nine" gets the same width. The y axis is logarithmic, unlike the
//! plotter's linear one: kmm's stages differ by two to three orders of magnitude (a parse takes
//! a fraction of a microsecond, tick-to-order several, tails reach milliseconds), and on a
//! linear axis every stage but the slowest would be a flat line on the floor.

use anyhow::{anyhow, bail, Context, Result};
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::metrics::Stage;

/// What one recorded histogram value means. kmm records nanoseconds; other tools' logs may
/// use another unit, which the log itself does not say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ValueUnit {
    #[default]
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
}

impl ValueUnit {
    /// Microseconds per recorded unit.
    pub fn us_per_unit(self) -> f64 {
        match self {
            ValueUnit::Nanoseconds => 1e-3,
            ValueUnit::Microseconds => 1.0,
            ValueUnit::Milliseconds => 1e3,
            ValueUnit::Seconds => 1e6,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            ValueUnit::Nanoseconds => "ns",
            ValueUnit::Microseconds => "µs",
            ValueUnit::Milliseconds => "ms",
            ValueUnit::Seconds => "s",
        }
    }
}

impl FromStr for ValueUnit {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<ValueUnit> {
        match s {
            "ns" => Ok(ValueUnit::Nanoseconds),
            "us" | "µs" => Ok(ValueUnit::Microseconds),
            "ms" => Ok(ValueUnit::Milliseconds),
            "s" => Ok(ValueUnit::Seconds),
            _ => bail!("unknown value unit {s:?}: use ns, us, ms or s"),
        }
    }
}

/// Options of `kmm latency-report`.
#[derive(Clone, Debug, Default)]
pub struct ReportOptions {
    /// Where to write the plot; `None` writes next to the log, extension replaced by `.png`.
    pub png: Option<PathBuf>,
    /// Only these tags (stage names); empty means all. Intervals without a tag are "untagged".
    pub stages: Vec<String>,
    /// Unit of the recorded values (kmm's logs: nanoseconds).
    pub unit: ValueUnit,
}

/// Name under which intervals without a `Tag=` are reported and selected.
pub const UNTAGGED: &str = "untagged";

/// The percentiles of the table, as (column title, quantile).
pub const PERCENTILES: [(&str, f64); 5] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999), ("p99.99", 0.9999)];

/// Size of the plot in pixels.
pub const PLOT_WIDTH: u32 = 1200;
pub const PLOT_HEIGHT: u32 = 760;

/// One tag's intervals merged.
#[derive(Clone, Debug)]
pub struct StageReport {
    /// The tag, or [`UNTAGGED`].
    pub name: String,
    pub tag: Option<String>,
    /// Intervals of the log that carried this tag.
    pub intervals: usize,
    /// All intervals added together, in the recorded unit.
    pub histogram: Histogram<u64>,
    /// Colour of this stage's line in the plot.
    pub colour: [u8; 3],
}

impl StageReport {
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// Value at quantile `q` (0..=1) in the recorded unit, as hdrhistogram computes it.
    pub fn quantile(&self, q: f64) -> u64 {
        self.histogram.value_at_quantile(q)
    }
}

/// The wall-clock span the selected intervals cover, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeSpan {
    pub start: f64,
    pub end: f64,
    /// Whether `start`/`end` are seconds since the Unix epoch (else only their difference means
    /// anything: the log had relative timestamps and no base time).
    pub absolute: bool,
}

impl TimeSpan {
    pub fn seconds(&self) -> f64 {
        self.end - self.start
    }
}

/// Result of [`latency_report`]; its `Display` is the table `kmm latency-report` prints.
#[derive(Clone, Debug)]
pub struct Report {
    pub input: PathBuf,
    pub unit: ValueUnit,
    /// Interval lines merged (over the selected stages).
    pub intervals: usize,
    pub span: TimeSpan,
    /// In kmm's pipeline order for kmm's stage names, then in order of first appearance.
    pub stages: Vec<StageReport>,
    /// The PNG written.
    pub png: PathBuf,
}

/// Reads `input`, merges its intervals per tag, writes the percentile plot and returns the
/// report.
pub fn latency_report(input: &Path, opts: &ReportOptions) -> Result<Report> {
    let bytes = std::fs::read(input).with_context(|| format!("reading interval log {}", input.display()))?;
    let log = parse_log(&bytes).map_err(|e| anyhow!("{}: {e}", input.display()))?;
    let mut stages = log.stages;
    if !opts.stages.is_empty() {
        for want in &opts.stages {
            if !stages.iter().any(|s| &s.name == want) {
                let have: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
                bail!("{}: no stage {want:?} in this log; it has: {}", input.display(), have.join(", "));
            }
        }
        stages.retain(|s| opts.stages.contains(&s.name));
    }
    let selected: Vec<&ParsedInterval> = log.intervals.iter().filter(|i| stages.iter().any(|s| s.tag == i.tag)).collect();
    if stages.iter().all(|s| s.histogram.is_empty()) {
        bail!(
            "{}: the log's {} interval(s) hold no recorded values",
            input.display(),
            selected.len()
        );
    }
    let span = TimeSpan {
        start: selected.iter().map(|i| i.start).fold(f64::INFINITY, f64::min),
        end: selected.iter().map(|i| i.start + i.length).fold(f64::NEG_INFINITY, f64::max),
        absolute: log.absolute,
    };
    let png = match &opts.png {
        Some(p) => p.clone(),
        None => default_png_path(input),
    };
    let report = Report {
        input: input.to_path_buf(),
        unit: opts.unit,
        intervals: selected.len(),
        span,
        stages,
        png,
    };
    let image = plot(&report);
    write_png(&report.png, &image).with_context(|| format!("writing plot {}", report.png.display()))?;
    Ok(report)
}

/// The log's path with its extension replaced by `.png` (appended when the log is a `.png`).
pub fn default_png_path(input: &Path) -> PathBuf {
    let p = input.with_extension("png");
    if p == input {
        let mut name = input.as_os_str().to_owned();
        name.push(".png");
        PathBuf::from(name)
    } else {
        p
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the log

struct ParsedInterval {
    tag: Option<String>,
    /// Seconds: since the epoch when `ParsedLog::absolute`, else since an unknown origin.
    start: f64,
    length: f64,
}

struct ParsedLog {
    stages: Vec<StageReport>,
    intervals: Vec<ParsedInterval>,
    absolute: bool,
}

/// Seconds in a year: HdrHistogram's Java reader takes interval timestamps smaller than the
/// StartTime by more than this to be relative to it, and larger ones to be absolute.
const YEAR_S: f64 = 365.25 * 86400.0;

fn parse_log(bytes: &[u8]) -> Result<ParsedLog> {
    use base64::Engine;
    let mut start_time: Option<f64> = None;
    let mut base_time: Option<f64> = None;
    let mut stages: Vec<StageReport> = Vec::new();
    let mut intervals = Vec::new();
    let mut absolute = true;
    let mut line_buf: Vec<u8> = Vec::new();
    let mut decoded: Vec<u8> = Vec::new();
    let mut deserializer = Deserializer::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let text = std::str::from_utf8(line).map_err(|_| anyhow!("line {line_no}: not UTF-8 text"))?;
        // The parser wants each entry terminated by a newline; handing it one line at a time
        // lets a failure be pinned to its line.
        line_buf.clear();
        line_buf.extend_from_slice(line);
        line_buf.push(b'\n');
        let entry = match IntervalLogIterator::new(&line_buf).next() {
            None => continue, // a comment or the legend line
            Some(Ok(entry)) => entry,
            Some(Err(_)) => bail!("line {line_no}: {}: {}", diagnose(text), excerpt(text)),
        };
        let interval = match entry {
            LogEntry::StartTime(t) => {
                start_time = Some(t.as_secs_f64());
                continue;
            }
            LogEntry::BaseTime(t) => {
                base_time = Some(t.as_secs_f64());
                continue;
            }
            LogEntry::Interval(i) => i,
        };
        decoded.clear();
        base64::engine::general_purpose::STANDARD
            .decode_vec(interval.encoded_histogram().trim(), &mut decoded)
            .map_err(|e| anyhow!("line {line_no}: the histogram field is not valid base64 ({e}): {}", excerpt(text)))?;
        let hist: Histogram<u64> = deserializer
            .deserialize(&mut decoded.as_slice())
            .map_err(|e| anyhow!("line {line_no}: the histogram does not decode ({e}): {}", excerpt(text)))?;
        let ts = interval.start_timestamp().as_secs_f64();
        let start = match (base_time, start_time) {
            (Some(base), _) => base + ts,
            (None, Some(st)) if ts < st - YEAR_S => st + ts,
            _ => ts,
        };
        // Timestamps before 2001 cannot be wall-clock times of a latency log: the log has
        // relative timestamps and nothing to anchor them.
        absolute &= start >= 1e9;
        let tag = interval.tag().map(|t| t.as_str().to_string());
        intervals.push(ParsedInterval {
            tag: tag.clone(),
            start,
            length: interval.duration().as_secs_f64(),
        });
        match stages.iter_mut().find(|s| s.tag == tag) {
            Some(s) => {
                s.intervals += 1;
                if hist.sigfig() > s.histogram.sigfig() {
                    // Merging a finer histogram into a coarser one would throw its precision
                    // away; the sum takes the finest precision of its parts.
                    let mut finer = Histogram::new(hist.sigfig()).map_err(|e| anyhow!("line {line_no}: {e:?}"))?;
                    finer.auto(true);
                    finer.add(&s.histogram).map_err(|e| anyhow!("line {line_no}: {e:?}"))?;
                    s.histogram = finer;
                }
                s.histogram
                    .add(&hist)
                    .map_err(|e| anyhow!("line {line_no}: cannot merge this histogram into tag {:?}: {e:?}", s.name))?;
            }
            None => {
                let mut merged = hist;
                // Later intervals may hold values beyond this one's range.
                merged.auto(true);
                stages.push(StageReport {
                    name: tag.clone().unwrap_or_else(|| UNTAGGED.to_string()),
                    tag,
                    intervals: 1,
                    histogram: merged,
                    colour: [0; 3],
                });
            }
        }
    }
    if intervals.is_empty() {
        bail!("the log is empty: it has no histogram intervals, only comments and headers (if any)");
    }
    // kmm's stages in pipeline order first; the sort is stable, so other tags keep the order
    // in which they first appeared.
    stages.sort_by_key(|s| Stage::from_name(&s.name).map_or(Stage::ALL.len(), |st| st as usize));
    let mut other = 0;
    for s in &mut stages {
        s.colour = match Stage::from_name(&s.name) {
            Some(st) => STAGE_COLOURS[st as usize],
            None => {
                other += 1;
                PALETTE[(other - 1) % PALETTE.len()]
            }
        };
    }
    Ok(ParsedLog {
        stages,
        intervals,
        absolute,
    })
}

/// Says which part of a line the interval-log parser rejected.
fn diagnose(line: &str) -> String {
    let fields_help = "start timestamp, interval length, interval max, compressed histogram";
    let rest = match line.strip_prefix("Tag=") {
        Some(r) => match r.split_once(',') {
            Some((_, rest)) => rest,
            None => return format!("a Tag= must be followed by a comma and the fields {fields_help}"),
        },
        None => line,
    };
    let fields: Vec<&str> = rest.splitn(4, ',').collect();
    if fields.len() < 4 {
        return format!(
            "not a comment (#...), legend or interval line: an interval has 4 comma-separated fields ({fields_help}), this has {}",
            fields.len()
        );
    }
    for (what, f) in [("start timestamp", fields[0]), ("interval length", fields[1])] {
        let ok = f
            .split_once('.')
            .is_some_and(|(s, frac)| !s.is_empty() && !frac.is_empty() && (s.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit()));
        if !ok {
            return format!("the {what} {f:?} is not a number of seconds like 12.345");
        }
    }
    if fields[2].trim().parse::<f64>().is_err() {
        return format!("the interval max {:?} is not a number", fields[2]);
    }
    "not a comment, legend or interval line".to_string()
}

fn excerpt(line: &str) -> String {
    const MAX: usize = 80;
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}...", &line[..cut]),
        None => format!("{line:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The table

/// Microseconds with about four significant digits, as HdrHistogram keeps three.
fn fmt_us(us: f64) -> String {
    if us < 10.0 {
        format!("{us:.3}")
    } else if us < 100.0 {
        format!("{us:.2}")
    } else if us < 1000.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

/// Seconds since the epoch as UTC `YYYY-MM-DD hh:mm:ss.mmm`.
fn fmt_utc(secs: f64) -> String {
    let ms = (secs * 1000.0).round() as i64;
    let (s, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, sod) = (s.div_euclid(86400), s.rem_euclid(86400));
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{milli:03}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "latency report: {}", self.input.display())?;
        write!(f, "{} interval(s) covering {:.3} s", self.intervals, self.span.seconds())?;
        if self.span.absolute {
            write!(f, " ({} .. {} UTC)", fmt_utc(self.span.start), fmt_utc(self.span.end))?;
        }
        writeln!(f)?;
        writeln!(f, "values in µs (recorded in {})", self.unit.symbol())?;
        let name_w = self.stages.iter().map(|s| s.name.chars().count()).max().unwrap_or(0).max(5);
        write!(f, "{:<name_w$} {:>9} {:>10} {:>9}", "stage", "intervals", "count", "min")?;
        for (title, _) in PERCENTILES {
            write!(f, " {title:>9}")?;
        }
        writeln!(f, " {:>9}", "max")?;
        let us = self.unit.us_per_unit();
        for s in &self.stages {
            write!(f, "{:<name_w$} {:>9} {:>10}", s.name, s.intervals, s.count())?;
            if s.histogram.is_empty() {
                for _ in 0..PERCENTILES.len() + 2 {
                    write!(f, " {:>9}", "-")?;
                }
                writeln!(f)?;
                continue;
            }
            write!(f, " {:>9}", fmt_us(s.histogram.min() as f64 * us))?;
            for (_, q) in PERCENTILES {
                write!(f, " {:>9}", fmt_us(s.quantile(q) as f64 * us))?;
            }
            writeln!(f, " {:>9}", fmt_us(s.histogram.max() as f64 * us))?;
        }
        write!(f, "plot: {}", self.png.display())
    }
}

// ---------------------------------------------------------------------------------------------
// The plot

/// Tableau's ten colours: distinct, and readable on white.
const PALETTE: [[u8; 3]; 10] = [
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
const STAGE_COLOURS: [[u8; 3]; 7] = [PALETTE[0], PALETTE[1], PALETTE[2], PALETTE[3], PALETTE[4], PALETTE[9], [0, 0, 0]];

const WHITE: [u8; 3] = [255, 255, 255];
const TEXT: [u8; 3] = [50, 50, 50];
const SUBTLE: [u8; 3] = [110, 110, 110];
const FRAME: [u8; 3] = [150, 150, 150];
const GRID: [u8; 3] = [222, 222, 222];
const GRID_MINOR: [u8; 3] = [240, 240, 240];

/// Plot area inside the image: left, top, right, bottom (exclusive).
const AREA: (i64, i64, i64, i64) = (120, 84, PLOT_WIDTH as i64 - 40, PLOT_HEIGHT as i64 - 92);

struct Canvas {
    w: i64,
    h: i64,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: u32, h: u32) -> Canvas {
        Canvas {
            w: i64::from(w),
            h: i64::from(h),
            px: vec![255; w as usize * h as usize * 3],
        }
    }

    fn put(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if (0..self.w).contains(&x) && (0..self.h).contains(&y) {
            let i = ((y * self.w + x) * 3) as usize;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    fn blend(&mut self, x: i64, y: i64, c: [u8; 3], a: f32) {
        if (0..self.w).contains(&x) && (0..self.h).contains(&y) {
            let i = ((y * self.w + x) * 3) as usize;
            for (dst, src) in self.px[i..i + 3].iter_mut().zip(c) {
                let old = f32::from(*dst);
                *dst = (old + (f32::from(src) - old) * a).round() as u8;
            }
        }
    }

    /// Fills `x0..x1` by `y0..y1`.
    fn fill(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
        for y in y0..y1 {
            for x in x0..x1 {
                self.put(x, y, c);
            }
        }
    }

    fn rect_outline(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
        self.fill(x0, y0, x1, y0 + 1, c);
        self.fill(x0, y1 - 1, x1, y1, c);
        self.fill(x0, y0, x0 + 1, y1, c);
        self.fill(x1 - 1, y0, x1, y1, c);
    }

    /// Text with its top-left corner at (x, y), each font pixel drawn `scale` by `scale`.
    fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: [u8; 3]) {
        for (i, ch) in s.chars().enumerate() {
            let g = glyph(ch);
            for (gy, row) in g.iter().enumerate() {
                for gx in 0..GLYPH_W {
                    if row & (0x80 >> gx) != 0 {
                        let px = x + (i as i64 * GLYPH_W + gx) * scale;
                        self.fill(px, y + gy as i64 * scale, px + scale, y + (gy as i64 + 1) * scale, c);
                    }
                }
            }
        }
    }

    /// Text turned a quarter left (reading upwards), its baseline start at the bottom-left
    /// corner (x, y): the glyphs' tops face left.
    fn text_up(&mut self, x: i64, y: i64, s: &str, scale: i64, c: [u8; 3]) {
        for (i, ch) in s.chars().enumerate() {
            let g = glyph(ch);
            for (gy, row) in g.iter().enumerate() {
                for gx in 0..GLYPH_W {
                    if row & (0x80 >> gx) != 0 {
                        let px = x + gy as i64 * scale;
                        let py = y - (i as i64 * GLYPH_W + gx + 1) * scale;
                        self.fill(px, py, px + scale, py + scale, c);
                    }
                }
            }
        }
    }
}

fn text_width(s: &str, scale: i64) -> i64 {
    s.chars().count() as i64 * GLYPH_W * scale
}

/// Anti-aliased wide lines: each pixel's coverage is its centre's distance to the nearest
/// segment, kept as a maximum over the segments of one curve so that joints are not painted
/// twice, then composited once in the curve's colour.
struct Coverage {
    w: i64,
    h: i64,
    a: Vec<f32>,
}

impl Coverage {
    fn new(w: i64, h: i64) -> Coverage {
        Coverage {
            w,
            h,
            a: vec![0.0; (w * h) as usize],
        }
    }

    fn clear(&mut self) {
        self.a.iter_mut().for_each(|a| *a = 0.0);
    }

    fn segment(&mut self, (x0, y0): (f32, f32), (x1, y1): (f32, f32), half_width: f32) {
        let reach = half_width + 1.0;
        let (bx0, bx1) = ((x0.min(x1) - reach).floor() as i64, (x0.max(x1) + reach).ceil() as i64);
        let (by0, by1) = ((y0.min(y1) - reach).floor() as i64, (y0.max(y1) + reach).ceil() as i64);
        let (dx, dy) = (x1 - x0, y1 - y0);
        let len2 = dx * dx + dy * dy;
        for y in by0.max(0)..by1.min(self.h) {
            for x in bx0.max(0)..bx1.min(self.w) {
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                let t = if len2 > 0.0 {
                    (((px - x0) * dx + (py - y0) * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (ex, ey) = (px - (x0 + t * dx), py - (y0 + t * dy));
                let cov = (half_width + 0.5 - (ex * ex + ey * ey).sqrt()).clamp(0.0, 1.0);
                let a = &mut self.a[(y * self.w + x) as usize];
                *a = a.max(cov);
            }
        }
    }

    fn composite(&self, canvas: &mut Canvas, c: [u8; 3]) {
        for y in 0..self.h {
            for x in 0..self.w {
                let a = self.a[(y * self.w + x) as usize];
                if a > 0.0 {
                    canvas.blend(x, y, c, a);
                }
            }
        }
    }
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

/// "0%", "90%", "99%", "99.9%", ... for 0, 1, 2, 3 nines.
fn percentile_label(nines: u32) -> String {
    match nines {
        0 => "0%".to_string(),
        1 => "90%".to_string(),
        n => format!("99.{}%", "9".repeat(n as usize - 2)).replace(".%", "%"),
    }
}

fn plot(report: &Report) -> Canvas {
    let mut canvas = Canvas::new(PLOT_WIDTH, PLOT_HEIGHT);
    let (left, top, right, bottom) = AREA;
    let us = report.unit.us_per_unit();
    let stages: Vec<&StageReport> = report.stages.iter().filter(|s| !s.histogram.is_empty()).collect();

    // x: percentiles on the scale of log10(1/(1-p)), to 99.999% or as far as the data goes.
    let max_count = stages.iter().map(|s| s.count()).max().unwrap_or(1);
    let nines = ((max_count as f64).log10().ceil() as u32).clamp(5, 7);
    let x_of = |n: f64| left as f64 + n / f64::from(nines) * (right - left) as f64;

    // y: log scale between ticks around the smallest non-zero and the largest value.
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
    let (y_lo, y_hi) = (ticks[0].value(), ticks[ticks.len() - 1].value());
    let (ln_lo, ln_hi) = (y_lo.ln(), y_hi.ln());
    let y_of = |v: f64| {
        let f = (v.max(y_lo).ln() - ln_lo) / (ln_hi - ln_lo);
        bottom as f64 - f * (bottom - top) as f64
    };

    // Grid and tick labels.
    for t in &ticks {
        let y = y_of(t.value()).round() as i64;
        let major = t.mantissa == 1 || label_all;
        canvas.fill(left, y, right, y + 1, if major { GRID } else { GRID_MINOR });
        if major {
            let label = t.label();
            canvas.text(left - 12 - text_width(&label, 2), y - 7, &label, 2, TEXT);
            canvas.fill(left - 6, y, left, y + 1, FRAME);
        }
    }
    for n in 0..=nines {
        let x = x_of(f64::from(n)).round() as i64;
        canvas.fill(x, top, x + 1, bottom, GRID);
        canvas.fill(x, bottom, x + 1, bottom + 6, FRAME);
        let label = percentile_label(n);
        let lx = (x - text_width(&label, 2) / 2).clamp(0, i64::from(PLOT_WIDTH) - text_width(&label, 2));
        canvas.text(lx, bottom + 12, &label, 2, TEXT);
    }
    canvas.rect_outline(left, top, right + 1, bottom + 1, FRAME);

    // Curves: one point per pixel column, the value at that column's percentile.
    let columns = right - left;
    let curves: Vec<Vec<(f32, f32)>> = stages
        .iter()
        .map(|s| {
            (0..=columns)
                .map(|col| {
                    let n = col as f64 / columns as f64 * f64::from(nines);
                    let q = (1.0 - 10f64.powf(-n)).clamp(0.0, 1.0);
                    ((left + col) as f32, y_of(s.quantile(q) as f64 * us) as f32)
                })
                .collect()
        })
        .collect();

    // Legend: the table's key figures, so the plot stands on its own.
    let name_w = stages.iter().map(|s| s.name.chars().count()).max().unwrap_or(0).max(5);
    let header = format!("{:<name_w$} {:>8} {:>8} {:>8}", "(µs)", "p50", "p99", "max");
    let rows: Vec<String> = stages
        .iter()
        .map(|s| {
            let v = |q: f64| fmt_us(s.quantile(q) as f64 * us);
            format!(
                "{:<name_w$} {:>8} {:>8} {:>8}",
                s.name,
                v(0.5),
                v(0.99),
                fmt_us(s.histogram.max() as f64 * us)
            )
        })
        .collect();
    let row_h = 20;
    let lw = 12 + 28 + 10 + text_width(&header, 2) + 12;
    let lh = 10 + row_h * (rows.len() as i64 + 1) + 6;
    // Where the curves run depends on the data; the corner crossed by the fewest segments
    // hides the least (preferring top-left, then bottom-right, on a tie).
    let pad = 16;
    let corners = [
        (left + pad, top + pad),
        (right - pad - lw, bottom - pad - lh),
        (right - pad - lw, top + pad),
        (left + pad, bottom - pad - lh),
    ];
    let hidden = |&(x0, y0): &(i64, i64)| {
        let (x0, y0, x1, y1) = (x0 as f32 - 2.0, y0 as f32 - 2.0, (x0 + lw) as f32 + 2.0, (y0 + lh) as f32 + 2.0);
        curves
            .iter()
            .flat_map(|c| c.windows(2))
            .filter(|w| {
                let ((ax, ay), (bx, by)) = (w[0], w[1]);
                ax.max(bx) >= x0 && ax.min(bx) <= x1 && ay.max(by) >= y0 && ay.min(by) <= y1
            })
            .count()
    };
    let (lx, ly) = corners.iter().copied().min_by_key(|c| hidden(c)).expect("four corners");

    let mut cover = Coverage::new(canvas.w, canvas.h);
    for (s, curve) in stages.iter().zip(&curves) {
        cover.clear();
        let half_width = if s.name == Stage::TickToOrder.name() { 1.7 } else { 1.2 };
        for w in curve.windows(2) {
            cover.segment(w[0], w[1], half_width);
        }
        cover.composite(&mut canvas, s.colour);
    }

    canvas.fill(lx, ly, lx + lw, ly + lh, WHITE);
    canvas.rect_outline(lx, ly, lx + lw, ly + lh, FRAME);
    canvas.text(lx + 50, ly + 10, &header, 2, SUBTLE);
    for (i, (s, row)) in stages.iter().zip(&rows).enumerate() {
        let y = ly + 10 + row_h * (i as i64 + 1);
        canvas.fill(lx + 12, y + 5, lx + 40, y + 10, s.colour);
        canvas.text(lx + 50, y, row, 2, TEXT);
    }

    // Titles.
    let title = "Latency by percentile";
    canvas.text((i64::from(PLOT_WIDTH) - text_width(title, 3)) / 2, 14, title, 3, TEXT);
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
    canvas.text((i64::from(PLOT_WIDTH) - text_width(&subtitle, 2)) / 2, 48, &subtitle, 2, SUBTLE);
    let x_title = "Percentile";
    canvas.text(left + (right - left - text_width(x_title, 2)) / 2, bottom + 44, x_title, 2, TEXT);
    let y_title = "Latency (µs, log scale)";
    canvas.text_up(22, top + (bottom - top + text_width(y_title, 2)) / 2, y_title, 2, TEXT);
    canvas
}

fn write_png(path: &Path, canvas: &Canvas) -> Result<()> {
    let file = std::fs::File::create(path)?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), canvas.w as u32, canvas.h as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&canvas.px)?;
    writer.finish()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The font

/// Advance of one glyph in font pixels (4 drawn columns and a gap).
const GLYPH_W: i64 = 5;

fn glyph(c: char) -> &'static [u8; 7] {
    match c {
        ' '..='~' => &FONT[c as usize - 32],
        'µ' => &MICRO,
        _ => &FONT['?' as usize - 32],
    }
}

const MICRO: [u8; 7] = [0x00, 0x00, 0x90, 0x90, 0x90, 0xE0, 0x80];

/// Printable ASCII from the public-domain X11 "misc-fixed" 5x7 font (Markus Kuhn's
/// ucs-fonts 5x7.bdf): seven rows per glyph, leftmost pixel in the top bit.
#[rustfmt::skip]
const FONT: [[u8; 7]; 95] = [
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // ' '
    [0x20, 0x20, 0x20, 0x20, 0x00, 0x20, 0x00], // '!'
    [0x50, 0x50, 0x50, 0x00, 0x00, 0x00, 0x00], // '"'
    [0x00, 0x50, 0xF8, 0x50, 0xF8, 0x50, 0x00], // '#'
    [0x00, 0x70, 0xA0, 0x70, 0x28, 0x70, 0x00], // '$'
    [0x80, 0x90, 0x20, 0x40, 0x90, 0x10, 0x00], // '%'
    [0x00, 0x40, 0xA0, 0x40, 0xA0, 0x50, 0x00], // '&'
    [0x20, 0x20, 0x20, 0x00, 0x00, 0x00, 0x00], // "'"
    [0x20, 0x40, 0x40, 0x40, 0x40, 0x20, 0x00], // '('
    [0x40, 0x20, 0x20, 0x20, 0x20, 0x40, 0x00], // ')'
    [0x00, 0x50, 0x20, 0x70, 0x20, 0x50, 0x00], // '*'
    [0x00, 0x20, 0x20, 0xF8, 0x20, 0x20, 0x00], // '+'
    [0x00, 0x00, 0x00, 0x00, 0x30, 0x20, 0x40], // ','
    [0x00, 0x00, 0x00, 0xF0, 0x00, 0x00, 0x00], // '-'
    [0x00, 0x00, 0x00, 0x00, 0x60, 0x60, 0x00], // '.'
    [0x00, 0x10, 0x20, 0x40, 0x80, 0x00, 0x00], // '/'
    [0x20, 0x50, 0x50, 0x50, 0x50, 0x20, 0x00], // '0'
    [0x20, 0x60, 0x20, 0x20, 0x20, 0x70, 0x00], // '1'
    [0x60, 0x90, 0x10, 0x20, 0x40, 0xF0, 0x00], // '2'
    [0xF0, 0x10, 0x60, 0x10, 0x90, 0x60, 0x00], // '3'
    [0x20, 0x60, 0xA0, 0xF0, 0x20, 0x20, 0x00], // '4'
    [0xF0, 0x80, 0xE0, 0x10, 0x90, 0x60, 0x00], // '5'
    [0x60, 0x80, 0xE0, 0x90, 0x90, 0x60, 0x00], // '6'
    [0xF0, 0x10, 0x20, 0x20, 0x40, 0x40, 0x00], // '7'
    [0x60, 0x90, 0x60, 0x90, 0x90, 0x60, 0x00], // '8'
    [0x60, 0x90, 0x90, 0x70, 0x10, 0x60, 0x00], // '9'
    [0x00, 0x60, 0x60, 0x00, 0x60, 0x60, 0x00], // ':'
    [0x00, 0x60, 0x60, 0x00, 0x60, 0x40, 0x80], // ';'
    [0x00, 0x10, 0x20, 0x40, 0x20, 0x10, 0x00], // '<'
    [0x00, 0x00, 0xF0, 0x00, 0xF0, 0x00, 0x00], // '='
    [0x00, 0x40, 0x20, 0x10, 0x20, 0x40, 0x00], // '>'
    [0x20, 0x50, 0x10, 0x20, 0x00, 0x20, 0x00], // '?'
    [0x60, 0x90, 0xB0, 0xB0, 0x80, 0x60, 0x00], // '@'
    [0x60, 0x90, 0x90, 0xF0, 0x90, 0x90, 0x00], // 'A'
    [0xE0, 0x90, 0xE0, 0x90, 0x90, 0xE0, 0x00], // 'B'
    [0x60, 0x90, 0x80, 0x80, 0x90, 0x60, 0x00], // 'C'
    [0xE0, 0x90, 0x90, 0x90, 0x90, 0xE0, 0x00], // 'D'
    [0xF0, 0x80, 0xE0, 0x80, 0x80, 0xF0, 0x00], // 'E'
    [0xF0, 0x80, 0xE0, 0x80, 0x80, 0x80, 0x00], // 'F'
    [0x60, 0x90, 0x80, 0xB0, 0x90, 0x70, 0x00], // 'G'
    [0x90, 0x90, 0xF0, 0x90, 0x90, 0x90, 0x00], // 'H'
    [0x70, 0x20, 0x20, 0x20, 0x20, 0x70, 0x00], // 'I'
    [0x10, 0x10, 0x10, 0x10, 0x90, 0x60, 0x00], // 'J'
    [0x90, 0xA0, 0xC0, 0xC0, 0xA0, 0x90, 0x00], // 'K'
    [0x80, 0x80, 0x80, 0x80, 0x80, 0xF0, 0x00], // 'L'
    [0x90, 0xF0, 0xF0, 0x90, 0x90, 0x90, 0x00], // 'M'
    [0x90, 0xD0, 0xD0, 0xB0, 0xB0, 0x90, 0x00], // 'N'
    [0x60, 0x90, 0x90, 0x90, 0x90, 0x60, 0x00], // 'O'
    [0xE0, 0x90, 0x90, 0xE0, 0x80, 0x80, 0x00], // 'P'
    [0x60, 0x90, 0x90, 0x90, 0xD0, 0x60, 0x10], // 'Q'
    [0xE0, 0x90, 0x90, 0xE0, 0xA0, 0x90, 0x00], // 'R'
    [0x60, 0x90, 0x40, 0x20, 0x90, 0x60, 0x00], // 'S'
    [0x70, 0x20, 0x20, 0x20, 0x20, 0x20, 0x00], // 'T'
    [0x90, 0x90, 0x90, 0x90, 0x90, 0x60, 0x00], // 'U'
    [0x90, 0x90, 0x90, 0x90, 0x60, 0x60, 0x00], // 'V'
    [0x90, 0x90, 0x90, 0xF0, 0xF0, 0x90, 0x00], // 'W'
    [0x90, 0x90, 0x60, 0x60, 0x90, 0x90, 0x00], // 'X'
    [0x50, 0x50, 0x50, 0x20, 0x20, 0x20, 0x00], // 'Y'
    [0xF0, 0x10, 0x20, 0x40, 0x80, 0xF0, 0x00], // 'Z'
    [0x70, 0x40, 0x40, 0x40, 0x40, 0x70, 0x00], // '['
    [0x00, 0x80, 0x40, 0x20, 0x10, 0x00, 0x00], // '\\'
    [0x70, 0x10, 0x10, 0x10, 0x10, 0x70, 0x00], // ']'
    [0x20, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00], // '^'
    [0x00, 0x00, 0x00, 0x00, 0x00, 0xF0, 0x00], // '_'
    [0x40, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00], // '`'
    [0x00, 0x00, 0x70, 0x90, 0xB0, 0x50, 0x00], // 'a'
    [0x80, 0x80, 0xE0, 0x90, 0x90, 0xE0, 0x00], // 'b'
    [0x00, 0x00, 0x60, 0x80, 0x80, 0x60, 0x00], // 'c'
    [0x10, 0x10, 0x70, 0x90, 0x90, 0x70, 0x00], // 'd'
    [0x00, 0x00, 0x60, 0xB0, 0xC0, 0x60, 0x00], // 'e'
    [0x20, 0x50, 0x40, 0xE0, 0x40, 0x40, 0x00], // 'f'
    [0x00, 0x00, 0x70, 0x90, 0x60, 0x80, 0x70], // 'g'
    [0x80, 0x80, 0xE0, 0x90, 0x90, 0x90, 0x00], // 'h'
    [0x20, 0x00, 0x60, 0x20, 0x20, 0x70, 0x00], // 'i'
    [0x10, 0x00, 0x10, 0x10, 0x10, 0x50, 0x20], // 'j'
    [0x80, 0x80, 0xA0, 0xC0, 0xA0, 0x90, 0x00], // 'k'
    [0x60, 0x20, 0x20, 0x20, 0x20, 0x70, 0x00], // 'l'
    [0x00, 0x00, 0xA0, 0xF0, 0x90, 0x90, 0x00], // 'm'
    [0x00, 0x00, 0xE0, 0x90, 0x90, 0x90, 0x00], // 'n'
    [0x00, 0x00, 0x60, 0x90, 0x90, 0x60, 0x00], // 'o'
    [0x00, 0x00, 0xE0, 0x90, 0x90, 0xE0, 0x80], // 'p'
    [0x00, 0x00, 0x70, 0x90, 0x90, 0x70, 0x10], // 'q'
    [0x00, 0x00, 0xE0, 0x90, 0x80, 0x80, 0x00], // 'r'
    [0x00, 0x00, 0x70, 0xC0, 0x30, 0xE0, 0x00], // 's'
    [0x40, 0x40, 0xE0, 0x40, 0x40, 0x30, 0x00], // 't'
    [0x00, 0x00, 0x90, 0x90, 0x90, 0x70, 0x00], // 'u'
    [0x00, 0x00, 0x50, 0x50, 0x50, 0x20, 0x00], // 'v'
    [0x00, 0x00, 0x90, 0x90, 0xF0, 0xF0, 0x00], // 'w'
    [0x00, 0x00, 0x90, 0x60, 0x60, 0x90, 0x00], // 'x'
    [0x00, 0x00, 0x90, 0x90, 0x50, 0x20, 0x40], // 'y'
    [0x00, 0x00, 0xF0, 0x20, 0x40, 0xF0, 0x00], // 'z'
    [0x10, 0x20, 0x60, 0x20, 0x20, 0x10, 0x00], // '{'
    [0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x00], // '|'
    [0x40, 0x20, 0x30, 0x20, 0x20, 0x40, 0x00], // '}'
    [0x50, 0xA0, 0x00, 0x00, 0x00, 0x00, 0x00], // '~'
];
