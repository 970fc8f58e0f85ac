//! `kmm latency-report`: interval logs written by kmm and by hdrhistogram's own writer are read,
//! merged per tag, summarised exactly as hdrhistogram computes it, and plotted.

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::{V2DeflateSerializer, V2Serializer};
use hdrhistogram::Histogram;
use kmm::metrics::{IntervalLog, Stage, StageHistograms};
use kmm::report::{latency_report, ReportOptions, ValueUnit, PERCENTILES, PLOT_HEIGHT, PLOT_WIDTH, UNTAGGED};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// A fresh directory per test under the system temp dir.
fn scratch_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kmm-report-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Deterministic pseudo-random values (xorshift), so the data has tails without a rand crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Roughly log-uniform between `lo` and `lo * 2^spread`: a latency-like long tail.
    fn latency(&mut self, lo: u64, spread: u32) -> u64 {
        let bits = (self.next() % u64::from(spread * 16)) as f64 / 16.0;
        (lo as f64 * 2f64.powf(bits * bits / f64::from(spread))) as u64
    }
}

/// Typical ns per stage: the stages span three orders of magnitude, as kmm's do.
fn stage_base(stage: Stage) -> (u64, u32) {
    match stage {
        Stage::Decode => (300, 6),
        Stage::Parse => (120, 5),
        Stage::RingToStrategy => (80, 8),
        Stage::Decide => (60, 4),
        Stage::RingToIo => (90, 8),
        Stage::Encode => (250, 5),
        Stage::TickToOrder => (1800, 9),
    }
}

/// Writes `intervals` intervals with kmm's IntervalLog; returns the per-stage merged histograms.
fn write_kmm_log(path: &std::path::Path, intervals: usize, stages: &[Stage]) -> Vec<(Stage, Histogram<u64>)> {
    let mut log = IntervalLog::new(std::fs::File::create(path).unwrap()).unwrap();
    let mut merged: Vec<(Stage, Histogram<u64>)> = stages
        .iter()
        .map(|&s| (s, Histogram::new_with_bounds(1, 10_000_000_000, 3).unwrap()))
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut h = StageHistograms::new();
    for i in 0..intervals {
        let start = Instant::now();
        h.reset();
        for (stage, m) in &mut merged {
            let (lo, spread) = stage_base(*stage);
            // Each interval differs (more values, shifted), so merging is really exercised.
            for _ in 0..(2000 + 500 * i) {
                let v = rng.latency(lo + 10 * i as u64, spread);
                h.record(*stage, v);
                m.record(v.clamp(1, 10_000_000_000)).unwrap();
            }
        }
        log.write_interval(&h, start).unwrap();
    }
    merged
}

fn decode_png(path: &std::path::Path) -> (png::OutputInfo, Vec<u8>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info, buf)
}

fn count_colour(rgb: &[u8], c: [u8; 3]) -> usize {
    rgb.chunks_exact(3).filter(|p| *p == c).count()
}

#[test]
fn kmm_log_is_merged_per_stage_and_plotted() {
    let dir = scratch_dir("kmm");
    let log = dir.join("latency.hlog");
    let merged = write_kmm_log(&log, 4, &Stage::ALL);

    let report = latency_report(&log, &ReportOptions::default()).unwrap();
    assert_eq!(report.png, dir.join("latency.png"), "default plot path: the log's, extension .png");
    assert_eq!(report.intervals, 4 * Stage::ALL.len());
    assert_eq!(report.unit, ValueUnit::Nanoseconds);
    assert!(report.span.absolute, "kmm writes a BaseTime, so times are wall-clock");
    assert!(report.span.seconds() >= 0.0 && report.span.seconds() < 60.0, "{:?}", report.span);

    let names: Vec<&str> = report.stages.iter().map(|s| s.name.as_str()).collect();
    let expected: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(names, expected, "kmm stages come in pipeline order");
    for (stage, reference) in &merged {
        let s = report.stages.iter().find(|s| s.name == stage.name()).unwrap();
        assert_eq!(s.intervals, 4);
        assert_eq!(s.count(), reference.len(), "{}", s.name);
        assert_eq!(s.histogram.min(), reference.min(), "{}", s.name);
        assert_eq!(s.histogram.max(), reference.max(), "{}", s.name);
        for (title, q) in PERCENTILES {
            assert_eq!(s.quantile(q), reference.value_at_quantile(q), "{} {title}", s.name);
        }
    }

    let table = report.to_string();
    for name in expected {
        assert!(table.contains(name), "{table}");
    }
    for column in ["count", "min", "p50", "p90", "p99", "p99.9", "p99.99", "max", "µs"] {
        assert!(table.contains(column), "{column} missing from\n{table}");
    }
    // The p99 of tick_to_order, in µs, is printed in its row.
    let t2o = &merged.iter().find(|(s, _)| *s == Stage::TickToOrder).unwrap().1;
    let p99_us = t2o.value_at_quantile(0.99) as f64 / 1000.0;
    let row = table.lines().find(|l| l.starts_with("tick_to_order")).unwrap();
    let shown: Vec<f64> = row.split_whitespace().skip(3).map(|v| v.parse().unwrap()).collect();
    assert!((shown[3] - p99_us).abs() <= p99_us * 1e-3 + 1e-3, "{row} vs p99 {p99_us}");

    let (info, rgb) = decode_png(&report.png);
    assert_eq!((info.width, info.height), (PLOT_WIDTH, PLOT_HEIGHT));
    assert_eq!(info.color_type, png::ColorType::Rgb);
    for s in &report.stages {
        // Far more than the legend's swatch (28x5): the line is drawn too.
        let n = count_colour(&rgb, s.colour);
        assert!(n > 400, "{} colour {:?} appears on {n} pixels", s.name, s.colour);
    }
    let colours: std::collections::HashSet<[u8; 3]> = report.stages.iter().map(|s| s.colour).collect();
    assert_eq!(colours.len(), report.stages.len(), "each stage has its own colour");

    // --png overrides the path; an explicit unit rescales the table but not the data.
    let other = dir.join("other.png");
    let opts = ReportOptions {
        png: Some(other.clone()),
        unit: ValueUnit::Microseconds,
        ..ReportOptions::default()
    };
    let report_us = latency_report(&log, &opts).unwrap();
    assert_eq!(report_us.png, other);
    assert!(other.exists());
    assert!(report_us.to_string().contains("recorded in µs"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stage_filter_selects_and_names_what_exists() {
    let dir = scratch_dir("filter");
    let log = dir.join("lat.hlog");
    write_kmm_log(&log, 3, &[Stage::Parse, Stage::Decide, Stage::TickToOrder]);
    let opts = ReportOptions {
        stages: vec!["tick_to_order".into(), "parse".into()],
        ..ReportOptions::default()
    };
    let report = latency_report(&log, &opts).unwrap();
    let names: Vec<&str> = report.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["parse", "tick_to_order"]);
    assert_eq!(report.intervals, 6, "only the selected stages' intervals are counted");
    let (_, rgb) = decode_png(&report.png);
    let full = ReportOptions {
        png: Some(dir.join("full.png")),
        ..ReportOptions::default()
    };
    let all = latency_report(&log, &full).unwrap();
    let colour = |r: &kmm::report::Report, name: &str| r.stages.iter().find(|s| s.name == name).unwrap().colour;
    let decide = colour(&all, Stage::Decide.name());
    let (_, rgb_all) = decode_png(&all.png);
    assert!(count_colour(&rgb_all, decide) > 400, "decide is drawn in the full plot");
    assert_eq!(count_colour(&rgb, decide), 0, "a filtered-out stage is not drawn");
    assert_eq!(colour(&report, "parse"), colour(&all, "parse"), "kmm stages keep their colour");

    let opts = ReportOptions {
        stages: vec!["encode".into()],
        ..ReportOptions::default()
    };
    let err = latency_report(&log, &opts).unwrap_err().to_string();
    assert!(err.contains("no stage \"encode\""), "{err}");
    assert!(err.contains("parse, decide, tick_to_order"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A log as HdrHistogram's writers produce it elsewhere: no tags, StartTime only, deflated and
/// plain V2 histograms, the Java legend line and a format-version comment.
#[test]
fn untagged_log_from_hdrhistogram_writer_is_read() {
    let dir = scratch_dir("untagged");
    let log = dir.join("foreign.hlog");
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut buf = Vec::new();
    let mut reference = Histogram::<u64>::new(3).unwrap();
    let mut rng = Rng(42);
    {
        let mut deflate = V2DeflateSerializer::new();
        let mut builder = IntervalLogWriterBuilder::new();
        builder.add_comment("[Logged with jHiccup version 2.0.10]");
        builder.add_comment("[Histogram log format version 1.3]");
        builder.with_start_time(start);
        let mut w = builder.begin_log_with(&mut buf, &mut deflate).unwrap();
        w.write_comment("\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"")
            .unwrap();
        for i in 0..5u64 {
            let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 2).unwrap();
            for _ in 0..1000 {
                h.record(rng.latency(20 + i, 10)).unwrap();
            }
            reference.add(&h).unwrap();
            // Relative to StartTime, as jHiccup writes them.
            w.write_histogram(&h, Duration::from_secs(i), Duration::from_secs(1), None).unwrap();
        }
    }
    // Plus one interval with a plain (not deflated) V2 histogram and a legend line proper.
    buf.extend_from_slice(b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n");
    {
        let mut plain = V2Serializer::new();
        let mut w = IntervalLogWriterBuilder::new().begin_log_with(&mut buf, &mut plain).unwrap();
        let mut h = Histogram::<u64>::new(3).unwrap();
        h.record_n(5000, 3).unwrap();
        reference.add(&h).unwrap();
        w.write_histogram(&h, Duration::from_secs(5), Duration::from_millis(1500), None)
            .unwrap();
    }
    std::fs::write(&log, &buf).unwrap();

    let opts = ReportOptions {
        unit: ValueUnit::Microseconds,
        ..ReportOptions::default()
    };
    let report = latency_report(&log, &opts).unwrap();
    assert_eq!(report.intervals, 6);
    assert_eq!(report.stages.len(), 1);
    let s = &report.stages[0];
    assert_eq!((s.name.as_str(), s.tag.as_deref(), s.intervals), (UNTAGGED, None, 6));
    assert_eq!(s.count(), reference.len());
    assert_eq!(s.histogram.max(), reference.max());
    for (title, q) in PERCENTILES {
        assert_eq!(s.quantile(q), reference.value_at_quantile(q), "{title}");
    }
    // Timestamps are offsets from StartTime: 1_700_000_000 + 0 .. 5 + 1.5.
    assert!(report.span.absolute);
    assert!((report.span.start - 1_700_000_000.0).abs() < 1e-3, "{:?}", report.span);
    assert!((report.span.seconds() - 6.5).abs() < 1e-3, "{:?}", report.span);
    let table = report.to_string();
    assert!(table.contains("2023-11-14 22:13:20.000"), "{table}");
    assert!(table.contains("untagged"), "{table}");

    let opts = ReportOptions {
        stages: vec![UNTAGGED.into()],
        unit: ValueUnit::Microseconds,
        ..ReportOptions::default()
    };
    assert_eq!(latency_report(&log, &opts).unwrap().stages.len(), 1);
    let (info, _) = decode_png(&report.png);
    assert_eq!((info.width, info.height), (PLOT_WIDTH, PLOT_HEIGHT));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// CRLF line ends, a last line without a newline and blank lines are tolerated.
#[test]
fn crlf_and_missing_final_newline_are_accepted() {
    let dir = scratch_dir("crlf");
    let log = dir.join("a.hlog");
    write_kmm_log(&log, 2, &[Stage::Parse]);
    let text = std::fs::read_to_string(&log).unwrap();
    let crlf = text.trim_end().replace('\n', "\r\n\r\n");
    let other = dir.join("b.hlog");
    std::fs::write(&other, crlf).unwrap();
    let a = latency_report(&log, &ReportOptions::default()).unwrap();
    let b = latency_report(&other, &ReportOptions::default()).unwrap();
    assert_eq!(a.stages[0].histogram, b.stages[0].histogram);
    assert_eq!(b.intervals, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn report_error(dir: &std::path::Path, name: &str, text: &str) -> String {
    let log = dir.join(name);
    std::fs::write(&log, text).unwrap();
    let err = latency_report(&log, &ReportOptions::default()).unwrap_err();
    format!("{err:#}")
}

#[test]
fn malformed_logs_name_the_line_and_the_fault() {
    let dir = scratch_dir("bad");
    let good = dir.join("good.hlog");
    write_kmm_log(&good, 1, &[Stage::Parse]);
    let text = std::fs::read_to_string(&good).unwrap();
    let header_lines = text.lines().filter(|l| l.starts_with('#')).count();
    let interval = text.lines().find(|l| l.starts_with("Tag=")).unwrap().to_string();
    let bad_line = header_lines + 2; // after the headers and one good interval
    let with = |line: &str| {
        format!(
            "{}\n{interval}\n{line}\n{interval}\n",
            text.lines().take(header_lines).collect::<Vec<_>>().join("\n")
        )
    };

    let cases = [
        ("garbage.hlog", "hello world".to_string(), "not a comment"),
        ("fields.hlog", "Tag=parse,0.000,1.000".to_string(), "4 comma-separated fields"),
        (
            "start.hlog",
            "Tag=parse,abc,1.000,5.0,HISTFAAAAA".to_string(),
            "start timestamp \"abc\"",
        ),
        (
            "length.hlog",
            "Tag=parse,0.000,1,5.0,HISTFAAAAA".to_string(),
            "interval length \"1\"",
        ),
        (
            "max.hlog",
            "Tag=parse,0.000,1.000,big,HISTFAAAAA".to_string(),
            "interval max \"big\"",
        ),
        ("b64.hlog", "Tag=parse,0.000,1.000,5.0,not*base64!".to_string(), "not valid base64"),
        ("hist.hlog", "Tag=parse,0.000,1.000,5.0,AAAAAAAAAAAA".to_string(), "does not decode"),
        ("untag.hlog", "0.000,1.000,5.0,!!".to_string(), "not valid base64"),
    ];
    for (name, line, what) in cases {
        let err = report_error(&dir, name, &with(&line));
        assert!(err.contains(&format!("line {bad_line}: ")), "{name}: {err}");
        assert!(err.contains(what), "{name}: expected {what:?} in {err}");
        assert!(err.contains(name), "{name}: the file is named: {err}");
    }

    for (name, text) in [
        ("empty.hlog", ""),
        (
            "headers.hlog",
            "#[StartTime: 1700000000.000 (seconds since epoch)]\n#just a comment\n\n",
        ),
    ] {
        let err = report_error(&dir, name, text);
        assert!(err.contains("the log is empty"), "{name}: {err}");
    }
    let missing = dir.join("missing.hlog");
    let err = format!("{:#}", latency_report(&missing, &ReportOptions::default()).unwrap_err());
    assert!(err.contains("missing.hlog"), "{err}");

    // Intervals that hold nothing are reported as such rather than plotted as an empty chart.
    let mut buf = Vec::new();
    {
        let mut ser = V2DeflateSerializer::new();
        let mut w = IntervalLogWriterBuilder::new().begin_log_with(&mut buf, &mut ser).unwrap();
        let h = Histogram::<u64>::new(3).unwrap();
        w.write_histogram(&h, Duration::from_secs(1), Duration::from_secs(1), Tag::new("x"))
            .unwrap();
    }
    let err = report_error(&dir, "zero.hlog", std::str::from_utf8(&buf).unwrap());
    assert!(err.contains("hold no recorded values"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes a sample log and plot to a fixed place for a look by eye (ignored by default).
#[test]
#[ignore]
fn sample_plot() {
    let dir = PathBuf::from(std::env::var("KMM_REPORT_SAMPLE_DIR").unwrap_or_else(|_| "/tmp/kmm-report-sample".into()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("latency.hlog");
    write_kmm_log(&log, 6, &Stage::ALL);
    let report = latency_report(&log, &ReportOptions::default()).unwrap();
    println!("{report}");
}
