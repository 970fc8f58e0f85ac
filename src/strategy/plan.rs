//! The decision for one market, as a pure function: [`plan`] reads the book, the model, the
//! account, the lifecycle and the risk band, and says what the market should have: an
//! [`Intent`] (the quotes to rest and, optionally, one aggressive take). It changes nothing;
//! [`super::Strategy`] commits the intent through risk and execution, and its idle rehearsal
//! runs this same function and throws the result away.
//!
//! The modules are consulted in the seed's order, each behind its switch: V2's bailout (the
//! taker) and queue optimisation will come ahead of Stoikov and may decide the market on their
//! own; V1 has Stoikov only, and never takes.

use crate::event::{Price, Qty, Side};
use crate::execution::Desired;
use crate::ladder::MarketLadder;
use crate::orderbook::Book;
use crate::risk::Risk;
use crate::stoikov::{self, Quote, QuoteInput};
use crate::strategy::market::MarketState;
use crate::strategy::StrategyConfig;

/// An aggressive order: cross the spread now, up to `limit` (the worst YES price paid or
/// received), for at most `qty`, immediate-or-cancel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Take {
    pub side: Side,
    pub limit: Price,
    pub qty: Qty,
}

/// What one market should have after this decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Intent {
    /// The quotes to rest (at most one order a side); none pulls them.
    pub quotes: Desired,
    pub take: Option<Take>,
}

/// Whether [`plan`] may answer from the model's last quote when nothing it reads changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Memo {
    Use,
    /// Compute the quote whatever the cache says: the rehearsal runs the model's code so it
    /// stays in cache, which a cache hit would skip.
    Bypass,
}

/// A plan, and the quote the model computed for it when it was not the cached one: the
/// caller keeps that for the next decision (the plan itself changes nothing).
pub(crate) struct Plan {
    pub intent: Intent,
    pub fresh_quote: Option<(Quote, (QuoteInput, u64))>,
}

/// One market's decision. The model's risk table must have been built (see
/// `RiskTable::is_unset`).
#[inline]
pub(crate) fn plan(cfg: &StrategyConfig, risk: &Risk, book: &Book, m: &MarketState, memo: Memo) -> Plan {
    let mut out = Plan {
        intent: Intent::default(),
        fresh_quote: None,
    };
    if !(cfg.modules.stoikov && m.life.active() && book.is_live()) {
        return out;
    }
    let Some(fair) = m.mid else { return out };
    let input = QuoteInput {
        fair,
        position: m.account.position,
        best_bid: book.best_bid(),
        best_ask: book.best_ask(),
    };
    // The model is a pure function of the input, the tables and the fixed parameters and
    // ladder, so an unchanged input and table generation give the cached quote.
    let from = (input, m.model.table.generation());
    let quote = if memo == Memo::Use && m.model.quoted_from == Some(from) {
        m.model.quote
    } else {
        let q = stoikov::quote(book.ladder().ticks(), &m.model.table, &cfg.stoikov, &input);
        out.fresh_quote = Some((q, from));
        q
    };
    out.intent.quotes = in_band(risk, &quote, fair, book.ladder(), cfg.quote_size);
    out
}

/// The model's quote as sizes to rest, each side kept only inside the risk band: a side the
/// model pushes outside it is pulled, not left resting at its old price behind a refused amend.
#[inline]
fn in_band(risk: &Risk, q: &Quote, fair: Price, ladder: &MarketLadder, size: Qty) -> Desired {
    let inside = |p: &Price| risk.within_band(*p, fair, ladder);
    Desired {
        bid: q.bid.filter(inside).map(|p| (p, size)),
        ask: q.ask.filter(inside).map(|p| (p, size)),
    }
}
