//! Keeps the io thread's order path in cache while it waits for the market.
//!
//! Between bursts the io thread spins on `epoll_wait` for milliseconds; the kernel's code and
//! whatever else runs on the core push the parse and encode code out of L1i and the branch
//! predictors forget it. The first frame of a burst then costs several microseconds more than
//! the next one, and a trade, fill or order update (a few a second at most) costs ten times its
//! warm time (3.7-6.6 us against 0.3-0.6 us in the codec bench). While idle, the io thread runs
//! the same code on canned frames and a canned amend through scratch state, so nothing it does
//! reaches the books, the wire or the real decoder's sequence tracking.

use crate::connector::kalshi::interner::Interner;
use crate::connector::kalshi::rest::encode::SelfTradePrevention;
use crate::connector::kalshi::rest::head::SignedHeaders;
use crate::connector::kalshi::rest::order_wire::{OrderSpec, OrderWire};
use crate::connector::kalshi::ws::decode::Decoder;
use crate::event::{Channel, ClientRef, OrderId, Price, Qty, Side, Stamp, TimeInForce};
use rustls::{ClientConnection, ServerConnection};
use std::hint::black_box;
use std::io::{Read, Write};

/// Width of the canned frame's seq (starting at 10^(width-1): JSON allows no leading zeros),
/// bumped in place so every decode is in sequence.
const SEQ_DIGITS: usize = 12;

/// Plaintext of the canned burst: about what a read of the real feed brings (1.5 to 3 KB).
const BURST_BYTES: usize = 2048;

pub struct Warmer {
    decoder: Decoder,
    frame: Vec<u8>,
    seq_at: usize,
    out: Vec<u8>,
    auth: SignedHeaders,
    /// Scratch amend and create wires: the single-request paths' code, not their bytes (their
    /// host and key are placeholders of the real lengths).
    amend: OrderWire,
    create: OrderWire,
    ticker: Vec<u8>,
    /// Events the canned frame produced, so a test can see the parse really ran.
    parsed: u64,
    /// A trade, one of our fills and one of our order updates, in the local exchange's shape:
    /// each has its own fields and code, and each arrives a few times a second at most, so
    /// without a rehearsal every one of them is parsed from DRAM. One per pass, in turn.
    others: [Vec<u8>; 3],
    trade_seq_at: usize,
    others_parsed: u64,
    /// The record layer's rehearsal needs a certificate for its in-memory server; only builds
    /// with the local exchange (feature `embedded-venue`) can make one, so others go without.
    tls: Option<TlsPair>,
}

/// A client and a server TLS connection joined in memory. The real connection's records cannot
/// be faked (its sequence numbers are the peer's), but the record layer, AES-GCM and the
/// allocator it calls are the same code: a burst's decryption and an order's encryption then
/// find them in cache.
#[cfg_attr(not(feature = "embedded-venue"), allow(dead_code))]
struct TlsPair {
    client: ClientConnection,
    server: ServerConnection,
    wire: Vec<u8>,
    plain: Vec<u8>,
    /// Application bytes the client decrypted, so a test can see the record really went through.
    decrypted: u64,
}

#[cfg_attr(not(feature = "embedded-venue"), allow(dead_code))]
impl TlsPair {
    #[cfg(feature = "embedded-venue")]
    fn new() -> anyhow::Result<TlsPair> {
        let material = local_exchange::tls::generate(&[])?;
        let client_config = kalshi_proto::tls::client_config(&material.ca_pem)?;
        let name = rustls::pki_types::ServerName::try_from("localhost")?;
        let mut pair = TlsPair {
            client: ClientConnection::new(client_config, name)?,
            server: ServerConnection::new(std::sync::Arc::clone(&material.server_config))?,
            wire: Vec::with_capacity(1 << 14),
            plain: vec![0; 1 << 14],
            decrypted: 0,
        };
        for _ in 0..16 {
            if !pair.client.is_handshaking() && !pair.server.is_handshaking() {
                return Ok(pair);
            }
            pair.wire.clear();
            pair.client.write_tls(&mut pair.wire)?;
            pair.server.read_tls(&mut pair.wire.as_slice())?;
            pair.server.process_new_packets()?;
            pair.wire.clear();
            pair.server.write_tls(&mut pair.wire)?;
            pair.client.read_tls(&mut pair.wire.as_slice())?;
            pair.client.process_new_packets()?;
        }
        anyhow::bail!("the in-memory TLS handshake of the warm-up did not finish")
    }

    /// One burst in (`burst` as a server record, read and decrypted by the client) and one
    /// request out (`request` encrypted by the client; the server never reads it).
    fn run(&mut self, burst: &[u8], request: &[u8]) {
        self.wire.clear();
        let _ = self.server.writer().write_all(burst);
        let _ = self.server.write_tls(&mut self.wire);
        let _ = self.client.read_tls(&mut self.wire.as_slice());
        if self.client.process_new_packets().is_ok() {
            while let Ok(n) = self.client.reader().read(&mut self.plain) {
                if n == 0 {
                    break;
                }
                self.decrypted += n as u64;
            }
        }
        self.wire.clear();
        let _ = self.client.writer().write_all(request);
        let _ = self.client.write_tls(&mut self.wire);
        black_box(&self.wire);
    }
}

impl Warmer {
    /// `ticker` is a market the engine trades, so the canned frame has the real length.
    pub fn new(ticker: &[u8]) -> anyhow::Result<Warmer> {
        let mut interner = Interner::with_capacity(4);
        let market = interner
            .intern(ticker)
            .map_err(|e| anyhow::anyhow!("warm-up decoder cannot intern the ticker: {e:?}"))?;
        let mut decoder = Decoder::new(interner);
        decoder
            .register_subscribe(1, &[Channel::OrderbookDelta], &[market], false)
            .map_err(|e| anyhow::anyhow!("warm-up decoder: {e:?}"))?;
        decoder
            .decode(
                br#"{"id":1,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":1}}"#,
                Stamp::default(),
                &mut |_| {},
            )
            .map_err(|e| anyhow::anyhow!("warm-up decoder: {e:?}"))?;
        for (sid, channel, name) in [
            (2, Channel::Trade, "trade"),
            (3, Channel::Fill, "fill"),
            (4, Channel::UserOrders, "user_orders"),
        ] {
            let markets: &[_] = if channel == Channel::Trade { &[market] } else { &[] };
            decoder
                .register_subscribe(sid, &[channel], markets, false)
                .map_err(|e| anyhow::anyhow!("warm-up decoder: {e:?}"))?;
            let ack = format!(r#"{{"id":{sid},"type":"subscribed","msg":{{"channel":"{name}","sid":{sid}}}}}"#);
            decoder
                .decode(ack.as_bytes(), Stamp::default(), &mut |_| {})
                .map_err(|e| anyhow::anyhow!("warm-up decoder: {e:?}"))?;
        }
        let ticker = std::str::from_utf8(ticker)?;
        let trade = format!(
            r#"{{"type":"trade","sid":2,"seq":{},"msg":{{"count":6,"count_fp":"6.00","is_block_trade":false,"market_id":"116f338b-3a7c-4aed-de94-338baed89116","market_ticker":"{ticker}","no_price":72,"no_price_dollars":"0.7200","taker_book_side":"bid","taker_outcome_side":"yes","taker_side":"yes","trade_id":"116f338b-7ade-4aed-de94-338baed89116","ts":1795531786,"ts_ms":1795531786769,"yes_price":28,"yes_price_dollars":"0.2800"}}}}"#,
            10u64.pow(SEQ_DIGITS as u32 - 1)
        );
        let fill = format!(
            r#"{{"type":"fill","sid":3,"msg":{{"action":"sell","book_side":"ask","client_order_id":"kmm-83b29c4800000002","count":5,"count_fp":"5.00","exchange_index":0,"fee_cost":"0.000000","is_taker":false,"market_ticker":"{ticker}","no_price":48,"no_price_dollars":"0.4800","order_id":"6250b03a-0a11-478c-6737-b03a78cc5b8a","outcome_side":"no","post_position":-5,"post_position_fp":"-5.00","purchased_side":"no","side":"yes","subaccount":0,"trade_id":"6c2fd1a5-7ade-4253-1e91-d1a525352c53","ts":1795531788,"ts_ms":1795531788873,"yes_price":52,"yes_price_dollars":"0.5200"}}}}"#
        );
        let user_order = format!(
            r#"{{"type":"user_order","sid":4,"msg":{{"action":"buy","book_side":"bid","client_order_id":"kmm-83b29c4800000001","created_time":"2026-11-24T14:49:46.694Z","created_ts_ms":1795531786694,"exchange_index":0,"fill_count":0,"fill_count_fp":"0.00","initial_count":5,"initial_count_fp":"5.00","is_yes":true,"last_update_reason":"","last_update_time":"2026-11-24T14:49:46.694Z","last_updated_ts_ms":1795531786694,"maker_fees_dollars":"0.000000","maker_fill_cost_dollars":"0.000000","no_price":49,"no_price_dollars":"0.4900","order_id":"c189ca7d-0a11-4fb8-4813-ca7dfb86d777","outcome_side":"yes","post_only":true,"reduce_only":false,"remaining_count":5,"remaining_count_fp":"5.00","self_trade_prevention_type":"taker_at_cross","side":"yes","status":"resting","subaccount_number":0,"taker_fees_dollars":"0.000000","taker_fill_cost_dollars":"0.000000","ticker":"{ticker}","time_in_force":"good_till_canceled","type":"limit","user_id":"user-0000-6b1dc959","yes_price":51,"yes_price_dollars":"0.5100"}}}}"#
        );
        let trade_seq_at = trade.find("\"seq\":").map(|i| i + 6).unwrap_or(0);
        let text = format!(
            r#"{{"type":"orderbook_delta","sid":1,"seq":{},"msg":{{"market_ticker":"{ticker}","price_dollars":"0.5800","delta_fp":"-7.00","side":"no","ts":"2026-06-24T15:49:55.033836Z","ts_ms":1782316195033}}}}"#,
            10u64.pow(SEQ_DIGITS as u32 - 1)
        );
        let seq_at = text.find("\"seq\":").map(|i| i + 6).unwrap_or(0);
        let mut w = Warmer {
            decoder,
            frame: text.into_bytes(),
            seq_at,
            out: Vec::with_capacity(2048),
            auth: SignedHeaders::new(0, &[b'A'; 344]).ok_or_else(|| anyhow::anyhow!("warm-up signature too long"))?,
            amend: OrderWire::amend(b"api.elections.kalshi.com", &[b'0'; 36]),
            create: OrderWire::create(b"api.elections.kalshi.com", &[b'0'; 36]),
            ticker: ticker.as_bytes().to_vec(),
            parsed: 0,
            others: [trade.into_bytes(), fill.into_bytes(), user_order.into_bytes()],
            trade_seq_at,
            others_parsed: 0,
            #[cfg(feature = "embedded-venue")]
            tls: Some(TlsPair::new()?),
            #[cfg(not(feature = "embedded-venue"))]
            tls: None,
        };
        // Check once that the canned frame really takes the whole parse path.
        let mut events = 0;
        w.bump();
        w.decoder
            .decode(&w.frame, Stamp::default(), &mut |_| events += 1)
            .map_err(|e| anyhow::anyhow!("warm-up frame does not parse: {e:?}"))?;
        anyhow::ensure!(events == 1, "warm-up frame gave {events} events, not 1");
        w.parsed = 1;
        for i in 0..w.others.len() {
            events = 0;
            if i == 0 {
                bump(&mut w.others[0], trade_seq_at);
            }
            w.decoder
                .decode(&w.others[i], Stamp::default(), &mut |_| events += 1)
                .map_err(|e| anyhow::anyhow!("warm-up frame {i} does not parse: {e:?}"))?;
            anyhow::ensure!(events == 1, "warm-up frame {i} gave {events} events, not 1");
        }
        Ok(w)
    }

    /// One pass: [`run_codec`](Self::run_codec), then [`run_tls`](Self::run_tls).
    pub fn run(&mut self) {
        self.run_codec();
        self.run_tls();
    }

    /// The parse and encode code, allocation-free. Costs about what one frame and one order
    /// cost warm (~0.5 us).
    pub fn run_codec(&mut self) {
        self.bump();
        let mut n = 0u64;
        let r = self.decoder.decode(black_box(&self.frame), Stamp::default(), &mut |e| {
            black_box(e);
            n += 1;
        });
        let _ = black_box(r);
        self.parsed += n;
        let turn = (self.parsed % self.others.len() as u64) as usize;
        if turn == 0 {
            bump(&mut self.others[0], self.trade_seq_at);
        }
        let mut n = 0u64;
        let r = self.decoder.decode(black_box(&self.others[turn]), Stamp::default(), &mut |e| {
            black_box(e);
            n += 1;
        });
        let _ = black_box(r);
        self.others_parsed += n;
        let create = OrderSpec {
            ticker: &self.ticker,
            client: ClientRef(self.parsed),
            side: Side::Bid,
            price: Price(5800),
            qty: Qty(500),
            tif: TimeInForce::GoodTillCanceled,
            post_only: true,
            stp: SelfTradePrevention::default(),
        };
        self.create.write(&mut self.out, black_box(&create), self.auth.auth_lines());
        black_box(&self.out);
        let amend = OrderSpec {
            price: Price(5700),
            ..create
        };
        let id = OrderId(0x1234_5678_9abc_def0_1234_5678_9abc_def0 ^ u128::from(self.parsed));
        self.amend
            .write_amend(&mut self.out, black_box(id), black_box(&amend), self.auth.auth_lines());
        black_box(&self.out);
    }

    /// A 2 KB burst in and the last encoded request out through the in-memory TLS pair. It
    /// allocates what rustls allocates per record written, as the real order path does.
    pub fn run_tls(&mut self) {
        // A burst is several frames in one record; the canned frame stands in for each.
        let mut burst = [0u8; BURST_BYTES];
        for chunk in burst.chunks_mut(self.frame.len()) {
            chunk.copy_from_slice(&self.frame[..chunk.len()]);
        }
        if let Some(tls) = &mut self.tls {
            tls.run(&burst, &self.out);
        }
    }

    /// Events the canned frame has produced so far (one per pass when the parse path ran).
    pub fn frames_parsed(&self) -> u64 {
        self.parsed
    }

    /// The trade, fill and user_order frames parsed so far (one per pass).
    pub fn others_parsed(&self) -> u64 {
        self.others_parsed
    }

    fn bump(&mut self) {
        bump(&mut self.frame, self.seq_at);
    }
}

/// Decimal increment of a frame's fixed-width seq in place.
fn bump(frame: &mut [u8], seq_at: usize) {
    for d in frame[seq_at..seq_at + SEQ_DIGITS].iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pass_parses_the_canned_frame_in_sequence() {
        let mut w = Warmer::new(b"KXHIGHNY-26JUN24-T82").unwrap();
        for _ in 0..1000 {
            w.run();
        }
        assert_eq!(w.frames_parsed(), 1001);
        assert_eq!(w.others_parsed(), 1000, "a trade, a fill or a user_order every pass");
        let c = w.decoder.counters();
        assert_eq!((c.malformed, c.duplicates, c.seq_gaps), (0, 0, 0), "{c:?}");
        // The canned create went through its wire, then the canned amend through its own.
        assert!(
            w.out.starts_with(b"POST /trade-api/v2/portfolio/events/orders/1234"),
            "{}",
            String::from_utf8_lossy(&w.out)
        );
        assert!(
            w.out.windows(13).any(|x| x == b"/amend HTTP/1"),
            "{}",
            String::from_utf8_lossy(&w.out)
        );
        assert!(
            w.out.ends_with(b"\"price\":\"0.5700\",\"count\":\"5.00\"}"),
            "{}",
            String::from_utf8_lossy(&w.out)
        );
        // Every pass's burst was encrypted by the server and decrypted by the client.
        #[cfg(feature = "embedded-venue")]
        assert_eq!(w.tls.as_ref().map(|t| t.decrypted), Some(1000 * BURST_BYTES as u64));
    }

    #[test]
    fn a_ticker_that_cannot_be_a_frame_is_refused_at_start() {
        assert!(Warmer::new(b"").is_err());
        assert!(Warmer::new(&[0xff, 0xfe]).is_err());
    }
}
