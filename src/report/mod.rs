//! `kmm latency-report`: reads an HdrHistogram interval log, merges the intervals per tag and
//! prints a percentile table and draws a percentile plot (PNG).
//!
//! Any standard interval log is accepted: kmm's own (one tag per
//! [`Stage`](crate::metrics::Stage), nanoseconds) and those written by HdrHistogram's Java,
//! Rust or other writers (tags optional, `#[StartTime]`, `#[BaseTime]`, legend and comment
//! lines). Reading is in `log`, the printed table in `table`, the plot in `plot`.

use anyhow::{anyhow, bail, Context, Result};
use hdrhistogram::Histogram;
use std::path::{Path, PathBuf};
use std::str::FromStr;

mod log;
mod plot;
mod table;

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
    let log = log::parse_log(&bytes).map_err(|e| anyhow!("{}: {e}", input.display()))?;
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
    let selected: Vec<&log::ParsedInterval> = log.intervals.iter().filter(|i| stages.iter().any(|s| s.tag == i.tag)).collect();
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
    plot::write_png(&report).with_context(|| format!("writing plot {}", report.png.display()))?;
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
