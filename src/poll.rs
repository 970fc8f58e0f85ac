//! How a thread waits when it has nothing to do: the one knob shared by the io and strategy
//! threads.
//!
//! `Spin` never gives the core away (pinned, colocated host); `Yield` spins a little and then
//! yields, so two busy threads and the log thread share a 2-core machine without millisecond
//! stalls; `Park` sleeps for short intervals and is for laptops and CI boxes.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollMode {
    Spin,
    Yield,
    Park,
}

impl PollMode {
    pub fn name(self) -> &'static str {
        match self {
            PollMode::Spin => "spin",
            PollMode::Yield => "yield",
            PollMode::Park => "park",
        }
    }

    /// How long a blocking wait (mio's poll, a park) may last in this mode. `None`: never block.
    pub fn block_for(self) -> Option<Duration> {
        match self {
            PollMode::Spin | PollMode::Yield => None,
            PollMode::Park => Some(PARK_INTERVAL),
        }
    }
}

impl fmt::Display for PollMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PollMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "spin" => Ok(PollMode::Spin),
            "yield" => Ok(PollMode::Yield),
            "park" => Ok(PollMode::Park),
            other => Err(format!("poll mode {other:?} is not one of spin, yield, park")),
        }
    }
}

/// Short enough that a parked thread adds well under a millisecond to a quiet market's first
/// tick, long enough that a parked engine costs almost no CPU.
pub const PARK_INTERVAL: Duration = Duration::from_micros(200);

/// Spins before a `Yield` thread gives the core away: about a microsecond and a half of polling,
/// which covers the gap between back-to-back frames of a burst.
const SPINS_BEFORE_YIELD: u32 = 64;

/// The idle policy of one thread's loop: call [`Idle::worked`] after useful work and
/// [`Idle::idle`] after a pass that found none.
#[derive(Debug)]
pub struct Idle {
    mode: PollMode,
    empty_passes: u32,
}

impl Idle {
    pub fn new(mode: PollMode) -> Idle {
        Idle { mode, empty_passes: 0 }
    }

    pub fn mode(&self) -> PollMode {
        self.mode
    }

    #[inline]
    pub fn worked(&mut self) {
        self.empty_passes = 0;
    }

    #[inline]
    pub fn idle(&mut self) {
        self.empty_passes = self.empty_passes.saturating_add(1);
        match self.mode {
            PollMode::Spin => std::hint::spin_loop(),
            PollMode::Yield => {
                if self.empty_passes > SPINS_BEFORE_YIELD {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
            PollMode::Park => std::thread::park_timeout(PARK_INTERVAL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_modes_and_names_the_choices_on_error() {
        for m in [PollMode::Spin, PollMode::Yield, PollMode::Park] {
            assert_eq!(m.name().parse::<PollMode>(), Ok(m));
        }
        let err = "busy".parse::<PollMode>().unwrap_err();
        assert!(err.contains("spin, yield, park"), "{err}");
    }

    #[test]
    fn only_park_blocks() {
        assert_eq!(PollMode::Spin.block_for(), None);
        assert_eq!(PollMode::Yield.block_for(), None);
        assert_eq!(PollMode::Park.block_for(), Some(PARK_INTERVAL));
    }
}
