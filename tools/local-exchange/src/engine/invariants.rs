//! The conservation check that the simulator, the server's closing summary and the property
//! tests run. It sits apart from the code that moves money so it can state what must hold
//! without repeating how each move keeps it.

use super::Exchange;
use kalshi_proto::market::MarketStatus;
use kalshi_proto::units::Money;

impl Exchange {
    /// Money and contracts are conserved: every account's cash plus fees collected plus the
    /// $1-per-pair collateral equals the cash that was deposited; YES and NO positions net to 0;
    /// and no keyed account's cash is below what its resting orders could consume.
    pub fn check_conservation(&self, deposited: Money) -> Result<(), String> {
        let cash: i64 = self.accounts.iter().map(|a| a.cash.0).sum();
        let total = cash + self.fees_collected.0 + self.collateral.0;
        if total != deposited.0 {
            return Err(format!(
                "cash {cash} + fees {} + collateral {} != deposited {}",
                self.fees_collected.0, self.collateral.0, deposited.0
            ));
        }
        for m in &self.markets {
            let net: i64 = self.accounts.iter().filter_map(|a| a.positions.get(&m.id)).map(|p| p.qty.0).sum();
            if net != 0 && m.status != MarketStatus::Settled {
                return Err(format!("market {}: positions net to {net}, not 0", m.spec.ticker));
            }
            m.book.check_invariants().map_err(|e| format!("market {}: {e}", m.spec.ticker))?;
        }
        for a in self.accounts.iter().filter(|a| !a.unlimited) {
            if a.cash < a.reserved || a.cash.0 < 0 {
                return Err(format!("account {}: cash {} below reserved {}", a.id, a.cash, a.reserved));
            }
        }
        Ok(())
    }
}
