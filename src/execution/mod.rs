//! Order tracking and quote reconciliation: desired quotes in, the fewest order requests out.
//!
//! [`Orders`] mirrors our orders at the exchange from every order-related event (acks,
//! rejects, `user_orders` updates, fills, resync results) and [`Orders::reconcile`] diffs one
//! market's [`Desired`] quote against it. One concept per file, all on the one [`Orders`]:
//! - `order`: one order's state, and how a report or fill changes its sizes;
//! - `table`: the fixed slot array, lookups, and which slots are open or settling;
//! - `side_index`: the open slots of each market and side, so a decision reads only its own;
//! - `events`: what each order event does to the table;
//! - `change`: what an event changed about one of our orders, as the queue estimator needs it;
//! - `resync`: closing what a reconnect no longer lists, adopting what it lists that we lost;
//! - `quoting`: `reconcile` and its rule table (quotes only: a take is never reused);
//! - `requests`: the requests themselves, direct ones included, and client ids;
//! - `exposure`: what could still trade, for risk;
//! - `params`: the tuning knobs.
//!
//! Everything is allocation-free after [`Orders::new`]: orders live in a fixed slot array and
//! finished orders stay there (to absorb late fills and acks) until their slot is reused.

mod change;
mod events;
mod exposure;
mod order;
mod params;
mod quoting;
mod requests;
mod resync;
mod side_index;
mod table;
#[cfg(test)]
mod tests;

pub use change::{ChangeCounts, ChangeKind, OrderChange};
pub use exposure::{Exposure, QuoteOrder, SideExposure};
pub use order::{Order, OrderState, Role};
pub use params::{ExecParamError, ExecParams};
pub use quoting::{Desired, Level};
pub use requests::{ClientIds, Refusal};
pub use table::{ExecStats, Orders};
