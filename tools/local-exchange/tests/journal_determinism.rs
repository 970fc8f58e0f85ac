//! The journal depends on the scenario and seed only, not on how time is fed to the
//! simulation: the live server advances it in irregular wall-clock steps, headless runs in
//! one sweep, and both must write the same bytes.

use local_exchange::engine::Exchange;
use local_exchange::flow::Flow;
use local_exchange::scenario::Scenario;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn journal(scenario: &Scenario, seed: u64, steps: &[u64]) -> Vec<u8> {
    let sink = Shared::default();
    let mut ex = Exchange::new(scenario.exchange_config());
    ex.set_journal(Box::new(sink.clone()));
    let mut flow = Flow::new(scenario, seed, &mut ex);
    for &t in steps {
        flow.advance(&mut ex, t);
        ex.take_events();
    }
    ex.flush_journal().unwrap();
    let bytes = sink.0.lock().unwrap().clone();
    bytes
}

#[test]
fn irregular_steps_write_the_same_journal() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/");
    for name in ["calm.toml", "toxic.toml", "news-jump.toml"] {
        let scenario = Scenario::load(format!("{root}{name}")).unwrap();
        let end = 20_000u64;
        let fine: Vec<u64> = (1..=end).collect();
        // Irregular steps from a fixed LCG: 1 to 250 ms, like a loaded server loop.
        let mut irregular = Vec::new();
        let (mut t, mut x) = (0u64, 12345u64);
        while t < end {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            t = (t + 1 + (x >> 33) % 250).min(end);
            irregular.push(t);
        }
        let a = journal(&scenario, 11, &fine);
        let b = journal(&scenario, 11, &irregular);
        let c = journal(&scenario, 11, &[end]);
        assert!(a.len() > 10_000, "{name}: journal too small to mean anything ({} bytes)", a.len());
        assert!(a == b, "{name}: fine and irregular steps differ");
        assert!(a == c, "{name}: fine and single-sweep runs differ");
    }
}
