//! The output of one strategy call: commands for the io thread and notes for the log, in
//! fixed arrays reused across calls, so a decision allocates nothing.

use crate::event::CommandBody;
use crate::logger::LogBody;

/// Most commands one event can produce: a cancel of every open order plus a resync.
pub const MAX_COMMANDS: usize = 160;
const MAX_NOTES: usize = 16;

pub struct Commands {
    items: [CommandBody; MAX_COMMANDS],
    len: usize,
    notes: [LogBody; MAX_NOTES],
    notes_len: usize,
    /// Commands that did not fit (a wiring bug; counted, never silent).
    pub overflow: u64,
}

impl Default for Commands {
    fn default() -> Self {
        Commands {
            items: [CommandBody::CancelAll; MAX_COMMANDS],
            len: 0,
            notes: [LogBody::Note { code: 0, a: 0, b: 0 }; MAX_NOTES],
            notes_len: 0,
            overflow: 0,
        }
    }
}

impl Commands {
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
        self.notes_len = 0;
    }

    /// Adds a command; false (and counted) when the buffer is full, so execution leaves
    /// its order table as if the command had never been tried.
    #[inline]
    pub fn push(&mut self, cmd: CommandBody) -> bool {
        if self.len < MAX_COMMANDS {
            self.items[self.len] = cmd;
            self.len += 1;
            true
        } else {
            self.overflow += 1;
            false
        }
    }

    #[inline]
    pub(crate) fn note(&mut self, body: LogBody) {
        if self.notes_len < MAX_NOTES {
            self.notes[self.notes_len] = body;
            self.notes_len += 1;
        }
    }

    #[inline]
    pub fn as_slice(&self) -> &[CommandBody] {
        &self.items[..self.len]
    }

    #[inline]
    pub fn notes(&self) -> &[LogBody] {
        &self.notes[..self.notes_len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
