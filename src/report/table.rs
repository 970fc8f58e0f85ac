//! The percentile table `kmm latency-report` prints: the [`Report`]'s `Display`.

use super::{Report, PERCENTILES};
use std::fmt;

/// Microseconds with about four significant digits, as HdrHistogram keeps three.
pub(super) fn fmt_us(us: f64) -> String {
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
