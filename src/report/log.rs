//! Reading an interval log: each line goes to hdrhistogram's own interval-log parser, the
//! intervals are merged per tag, and a line it rejects is reported with its number and which
//! field is wrong.

use super::plot::{PALETTE, STAGE_COLOURS};
use super::{StageReport, UNTAGGED};
use crate::metrics::Stage;
use anyhow::{anyhow, bail, Result};
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

pub(super) struct ParsedInterval {
    pub(super) tag: Option<String>,
    /// Seconds: since the epoch when `ParsedLog::absolute`, else since an unknown origin.
    pub(super) start: f64,
    pub(super) length: f64,
}

pub(super) struct ParsedLog {
    pub(super) stages: Vec<StageReport>,
    pub(super) intervals: Vec<ParsedInterval>,
    pub(super) absolute: bool,
}

/// Seconds in a year: HdrHistogram's Java reader takes interval timestamps smaller than the
/// StartTime by more than this to be relative to it, and larger ones to be absolute.
const YEAR_S: f64 = 365.25 * 86400.0;

pub(super) fn parse_log(bytes: &[u8]) -> Result<ParsedLog> {
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
