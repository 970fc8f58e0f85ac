#!/usr/bin/env python3
"""Drive one trading session against the local exchange with Kalshi's official Python SDK.

    python sdk_session.py --info-file PATH [--account N] [--step-timeout SECONDS]

Runs under either generation of `kalshi-python-async` (see install.sh):

* 3.2.0 ("Era A"): legacy order endpoints /portfolio/orders*, integer cents and counts.
* 3.34.0 ("Era B"): V2 order endpoints /portfolio/events/orders*, `*_dollars` / `*_fp` strings.

The generation is detected from what the installed SDK exposes (OrdersApi.create_order_v2) and
reported together with its version. Only the SDK's own classes are used: Configuration (host,
ssl_ca_cert, api_key_id, private_key_pem), KalshiClient (request signing), the *Api classes and their request
models. The `*_with_http_info` form of each call is used so HTTP status codes can be checked too.

Every step prints `ok <step>: <fact>` or `FAIL <step>: <reason>`; the last line is
`N passed, M failed`; the exit status is 1 if anything failed (2 for a bad command line or info
file). SDK exceptions are reported with the HTTP status and body; responses the SDK's pydantic
models reject are reported with the validation errors and the raw body.
"""

import argparse
import asyncio
import importlib.metadata
import json
import os
import sys
import uuid
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from urllib.parse import urlparse

try:
    import aiohttp
    import pydantic

    import kalshi_python_async as K
    from kalshi_python_async import KalshiClient
    from kalshi_python_async import models as M
    from kalshi_python_async.api.exchange_api import ExchangeApi
    from kalshi_python_async.api.market_api import MarketApi
    from kalshi_python_async.api.orders_api import OrdersApi
    from kalshi_python_async.api.portfolio_api import PortfolioApi
    from kalshi_python_async.configuration import Configuration
    from kalshi_python_async.exceptions import ApiException
except ImportError as _e:  # not running inside an SDK venv (see install.sh)
    print("FAIL setup: cannot import the Kalshi SDK (%s); run with %s/{v320,v3new}/bin/python"
          % (_e, os.environ.get("KMM_SDK_DIR", "target/sdk")))
    print("0 passed, 1 failed")
    sys.exit(2)

D0 = Decimal(0)
CENT = Decimal("0.01")

RESTING_COUNT = 10
DECREASE_BY = 3
BATCH_COUNT = 2


def sdk_version():
    v = getattr(K, "__version__", None)
    if v:
        return v
    try:
        return importlib.metadata.version("kalshi_python_async")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class CheckFailed(Exception):
    """A response arrived but does not show the expected behaviour."""


class NotRun(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def dec(x):
    return x if isinstance(x, Decimal) else Decimal(str(x))


def fmt(x):
    """Compact decimal for messages: 10.00 -> 10, 0.0500 -> 0.05."""
    x = dec(x)
    s = format(x.normalize(), "f")
    return s


def one_line(s, limit=700):
    s = " ".join(str(s).split())
    return s if len(s) <= limit else s[:limit] + "..."


def enum_value(v):
    return getattr(v, "value", v)


class RecordingKalshiClient(KalshiClient):
    """The SDK's KalshiClient, remembering the last request and raw response for diagnostics."""

    last_request = None
    last_response = None

    async def call_api(self, method, url, header_params=None, body=None, post_params=None, _request_timeout=None):
        self.last_request = (method, urlparse(url).path + (("?" + urlparse(url).query) if urlparse(url).query else ""))
        self.last_response = None
        return await super().call_api(method, url, header_params, body, post_params, _request_timeout)

    def response_deserialize(self, response_data, response_types_map=None):
        self.last_response = (response_data.status, response_data.data, response_data.getheader("content-type"))
        return super().response_deserialize(response_data, response_types_map)

    def describe_last(self):
        req = "%s %s" % self.last_request if self.last_request else "no request"
        if not self.last_response:
            return req
        status, data, ctype = self.last_response
        body = data.decode("utf-8", "replace") if isinstance(data, (bytes, bytearray)) else str(data)
        return "%s -> HTTP %s (content-type %s) body: %s" % (req, status, ctype, one_line(body, 900))


# --------------------------------------------------------------------------------------------
# Generation adapters: the same operations, expressed with each SDK generation's own API.
# Prices are Decimal dollars (YES leg), counts Decimal contracts.
# --------------------------------------------------------------------------------------------


class Adapter:
    era = "?"

    def __init__(self, client):
        self.client = client
        self.exchange = ExchangeApi(client)
        self.market = MarketApi(client)
        self.orders = OrdersApi(client)
        self.portfolio = PortfolioApi(client)

    @staticmethod
    def expect_status(resp, want, what):
        check(resp.status_code == want, "%s: HTTP %s, the SDK expects %s%s" % (
            what, resp.status_code, want,
            " (SDK returns None for an unlisted 2xx status)" if resp.data is None else ""))
        check(resp.data is not None, "%s: HTTP %s but the SDK produced no object" % (what, resp.status_code))
        return resp.data

    async def exchange_status(self):
        r = await self.exchange.get_exchange_status_with_http_info()
        d = self.expect_status(r, 200, "GET /exchange/status")
        return d.exchange_active, d.trading_active

    async def list_markets(self, limit=200, max_pages=50):
        out, cursor = [], None
        for _ in range(max_pages):
            r = await self.market.get_markets_with_http_info(limit=limit, cursor=cursor)
            d = self.expect_status(r, 200, "GET /markets")
            out.extend(d.markets)
            cursor = d.cursor
            if not cursor:
                break
        return out

    async def get_market(self, ticker):
        r = await self.market.get_market_with_http_info(ticker)
        return self.expect_status(r, 200, "GET /markets/{ticker}").market

    async def all_fills(self, ticker, max_pages=20):
        out, cursor = [], None
        for _ in range(max_pages):
            r = await self.portfolio.get_fills_with_http_info(ticker=ticker, limit=200, cursor=cursor)
            d = self.expect_status(r, 200, "GET /portfolio/fills")
            out.extend(self.norm_fill(f) for f in d.fills)
            cursor = d.cursor
            if not cursor:
                break
        return out

    async def position(self, ticker):
        r = await self.portfolio.get_positions_with_http_info(ticker=ticker, limit=1000)
        d = self.expect_status(r, 200, "GET /portfolio/positions")
        mine = [p for p in d.market_positions if p.ticker == ticker]
        check(len(mine) <= 1, "%d market_positions entries for %s" % (len(mine), ticker))
        return (self.pos_value(mine[0]) if mine else D0), (mine[0] if mine else None)

    async def list_orders(self, ticker, status):
        r = await self.orders.get_orders_with_http_info(ticker=ticker, status=status, limit=200)
        d = self.expect_status(r, 200, "GET /portfolio/orders")
        return [self.norm_order(o) for o in d.orders]

    async def get_order(self, order_id):
        r = await self.orders.get_order_with_http_info(order_id)
        return self.norm_order(self.expect_status(r, 200, "GET /portfolio/orders/{id}").order)

    @staticmethod
    def book_from_levels(yes_levels, no_levels):
        """Levels [[price_dollars_str, count_str], ...] -> sorted (price, size) lists, best first."""
        yes = sorted(((dec(p), dec(c)) for p, c in (yes_levels or [])), reverse=True)
        no = sorted(((dec(p), dec(c)) for p, c in (no_levels or [])), reverse=True)
        return yes, no


class EraA(Adapter):
    """kalshi-python-async 3.2.0: /portfolio/orders*, integer cents and counts."""

    era = "A"
    describe = "legacy /portfolio/orders, integer cents"

    @staticmethod
    def price_fields(price):
        cents = price * 100
        if cents == cents.to_integral_value():
            return {"yes_price": int(cents)}
        return {"yes_price_dollars": "%.4f" % price}

    def norm_order(self, o):
        check(o.side == "yes" and o.action == "buy",
              "order %s is side=%s action=%s, expected yes/buy" % (o.order_id, o.side, o.action))
        check(dec(o.yes_price_dollars) == Decimal(o.yes_price) / 100,
              "order %s yes_price %s vs yes_price_dollars %s disagree" % (o.order_id, o.yes_price, o.yes_price_dollars))
        check(o.yes_price + o.no_price == 100, "order %s yes_price %s + no_price %s != 100" % (o.order_id, o.yes_price, o.no_price))
        return {
            "order_id": o.order_id, "client_order_id": o.client_order_id, "ticker": o.ticker,
            "status": enum_value(o.status), "price": dec(o.yes_price_dollars),
            "fill": Decimal(o.fill_count), "remaining": Decimal(o.remaining_count), "initial": Decimal(o.initial_count),
            "taker_fees": Decimal(o.taker_fees) / 100, "taker_cost": Decimal(o.taker_fill_cost) / 100,
            "maker_fees": Decimal(o.maker_fees) / 100, "raw": o,
        }

    def norm_fill(self, f):
        return {"fill_id": f.fill_id, "order_id": f.order_id, "ticker": f.ticker, "count": Decimal(f.count),
                "price": Decimal(f.yes_price) / 100, "is_taker": f.is_taker,
                "direction": "%s/%s" % (f.side, f.action), "buy_yes": f.side == "yes" and f.action == "buy",
                "fee": None, "raw": f}

    @staticmethod
    def pos_value(p):
        return Decimal(p.position)

    async def orderbook(self, ticker):
        r = await self.market.get_market_orderbook_with_http_info(ticker)
        ob = self.expect_status(r, 200, "GET /markets/{ticker}/orderbook").orderbook
        return self.book_from_levels(ob.yes_dollars, ob.no_dollars)

    def create_request(self, ticker, price, count, tif, coid, post_only=None):
        kw = dict(ticker=ticker, client_order_id=coid, side="yes", action="buy", count=int(count), type="limit")
        kw.update(self.price_fields(price))
        if tif:
            kw["time_in_force"] = tif
        if post_only is not None:
            kw["post_only"] = post_only
        return M.CreateOrderRequest(**kw)

    async def create(self, ticker, price, count, tif, coid, post_only=None):
        r = await self.orders.create_order_with_http_info(self.create_request(ticker, price, count, tif, coid, post_only))
        o = self.norm_order(self.expect_status(r, 201, "POST /portfolio/orders").order)
        return o

    async def amend(self, order, ticker, new_price, count, new_coid):
        req = M.AmendOrderRequest(ticker=ticker, side="yes", action="buy", client_order_id=order["client_order_id"],
                                  updated_client_order_id=new_coid, count=int(count), **self.price_fields(new_price))
        r = await self.orders.amend_order_with_http_info(order["order_id"], req)
        d = self.expect_status(r, 200, "POST /portfolio/orders/{id}/amend")
        old, new = self.norm_order(d.old_order), self.norm_order(d.order)
        check(old["price"] == order["price"], "old_order price %s, expected the pre-amend %s" % (fmt(old["price"]), fmt(order["price"])))
        check(new["price"] == new_price, "amended order price %s, asked %s" % (fmt(new["price"]), fmt(new_price)))
        check(new["remaining"] == count, "amended order remaining %s, expected %s" % (fmt(new["remaining"]), count))
        return new["order_id"], new

    async def decrease(self, order_id, reduce_by):
        r = await self.orders.decrease_order_with_http_info(order_id, M.DecreaseOrderRequest(reduce_by=int(reduce_by)))
        o = self.norm_order(self.expect_status(r, 200, "POST /portfolio/orders/{id}/decrease").order)
        return o["remaining"], o

    async def cancel(self, order_id):
        r = await self.orders.cancel_order_with_http_info(order_id)
        d = self.expect_status(r, 200, "DELETE /portfolio/orders/{id}")
        o = self.norm_order(d.order)
        return Decimal(d.reduced_by), o

    async def batch_create(self, reqs):
        body = M.BatchCreateOrdersRequest(orders=[self.create_request(*a) for a in reqs])
        r = await self.orders.batch_create_orders_with_http_info(body)
        d = self.expect_status(r, 201, "POST /portfolio/orders/batched")
        out = []
        for it in d.orders:
            out.append({"order_id": it.order.order_id if it.order else None, "client_order_id": it.client_order_id,
                        "error": it.error, "remaining": Decimal(it.order.remaining_count) if it.order else None,
                        "status": enum_value(it.order.status) if it.order else None})
        return out

    async def batch_cancel(self, ids):
        r = await self.orders.batch_cancel_orders_with_http_info(M.BatchCancelOrdersRequest(ids=list(ids)))
        d = self.expect_status(r, 200, "DELETE /portfolio/orders/batched")
        return [{"order_id": it.order_id, "reduced_by": Decimal(it.reduced_by), "error": it.error,
                 "status": enum_value(it.order.status) if it.order else None} for it in d.orders]

    async def queue_position(self, order_id):
        r = await self.orders.get_order_queue_position_with_http_info(order_id)
        return Decimal(self.expect_status(r, 200, "GET /portfolio/orders/{id}/queue_position").queue_position)

    async def queue_positions(self, ticker):
        r = await self.orders.get_order_queue_positions_with_http_info(market_tickers=ticker)
        d = self.expect_status(r, 200, "GET /portfolio/orders/queue_positions")
        return {q.order_id: Decimal(q.queue_position) for q in d.queue_positions}

    async def balance(self):
        r = await self.portfolio.get_balance_with_http_info()
        d = self.expect_status(r, 200, "GET /portfolio/balance")
        return Decimal(d.balance) / 100, "balance %d cents, portfolio_value %d cents" % (d.balance, d.portfolio_value)

    @staticmethod
    def market_facts(m):
        return "status=%s yes_bid=%s yes_ask=%s (cents)" % (m.status, m.yes_bid, m.yes_ask)


class EraB(Adapter):
    """kalshi-python-async 3.34.0: /portfolio/events/orders* (V2), fixed-point strings."""

    era = "B"
    describe = "V2 /portfolio/events/orders, fixed-point strings"

    @staticmethod
    def p(price):
        return "%.4f" % price

    @staticmethod
    def c(count):
        return "%.2f" % Decimal(count)

    def norm_order(self, o):
        check(o.outcome_side == "yes" and enum_value(o.book_side) == "bid",
              "order %s is outcome_side=%s book_side=%s, expected yes/bid" % (o.order_id, o.outcome_side, enum_value(o.book_side)))
        check(dec(o.yes_price_dollars) + dec(o.no_price_dollars) == 1,
              "order %s yes_price_dollars %s + no_price_dollars %s != 1" % (o.order_id, o.yes_price_dollars, o.no_price_dollars))
        return {
            "order_id": o.order_id, "client_order_id": o.client_order_id, "ticker": o.ticker,
            "status": enum_value(o.status), "price": dec(o.yes_price_dollars),
            "fill": dec(o.fill_count_fp), "remaining": dec(o.remaining_count_fp), "initial": dec(o.initial_count_fp),
            "taker_fees": dec(o.taker_fees_dollars), "taker_cost": dec(o.taker_fill_cost_dollars),
            "maker_fees": dec(o.maker_fees_dollars), "raw": o,
        }

    def norm_fill(self, f):
        return {"fill_id": f.fill_id, "order_id": f.order_id, "ticker": f.ticker, "count": dec(f.count_fp),
                "price": dec(f.yes_price_dollars), "is_taker": f.is_taker,
                "direction": "%s/%s" % (enum_value(f.outcome_side), enum_value(f.book_side)),
                "buy_yes": enum_value(f.outcome_side) == "yes" and enum_value(f.book_side) == "bid",
                "fee": dec(f.fee_cost), "raw": f}

    @staticmethod
    def pos_value(p):
        return dec(p.position_fp)

    async def orderbook(self, ticker):
        r = await self.market.get_market_orderbook_with_http_info(ticker)
        ob = self.expect_status(r, 200, "GET /markets/{ticker}/orderbook").orderbook_fp
        return self.book_from_levels(ob.yes_dollars, ob.no_dollars)

    def create_request(self, ticker, price, count, tif, coid, post_only=None):
        kw = dict(ticker=ticker, client_order_id=coid, side=M.BookSide.BID, count=self.c(count), price=self.p(price),
                  time_in_force=tif or "good_till_canceled",
                  self_trade_prevention_type=M.SelfTradePreventionType.TAKER_AT_CROSS)
        if post_only is not None:
            kw["post_only"] = post_only
        return M.CreateOrderV2Request(**kw)

    async def create(self, ticker, price, count, tif, coid, post_only=None):
        r = await self.orders.create_order_v2_with_http_info(self.create_request(ticker, price, count, tif, coid, post_only))
        d = self.expect_status(r, 201, "POST /portfolio/events/orders")
        check(d.client_order_id in (None, coid), "client_order_id echoed as %r, sent %r" % (d.client_order_id, coid))
        return {"order_id": d.order_id, "client_order_id": coid, "fill": dec(d.fill_count), "remaining": dec(d.remaining_count),
                "avg_price": dec(d.average_fill_price) if d.average_fill_price else None,
                "avg_fee": dec(d.average_fee_paid) if d.average_fee_paid else None, "price": price, "status": None}

    async def amend(self, order, ticker, new_price, count, new_coid):
        req = M.AmendOrderV2Request(ticker=ticker, side=M.BookSide.BID, price=self.p(new_price), count=self.c(count),
                                    client_order_id=order["client_order_id"], updated_client_order_id=new_coid)
        r = await self.orders.amend_order_v2_with_http_info(order["order_id"], req)
        d = self.expect_status(r, 200, "POST /portfolio/events/orders/{id}/amend")
        if d.remaining_count is not None:
            check(dec(d.remaining_count) == count, "amend response remaining_count %s, expected %s" % (d.remaining_count, count))
        return d.order_id, None

    async def decrease(self, order_id, reduce_by):
        r = await self.orders.decrease_order_v2_with_http_info(order_id, M.DecreaseOrderV2Request(reduce_by=self.c(reduce_by)))
        d = self.expect_status(r, 200, "POST /portfolio/events/orders/{id}/decrease")
        check(d.order_id == order_id, "decrease response order_id %s, expected %s" % (d.order_id, order_id))
        return dec(d.remaining_count), None

    async def cancel(self, order_id):
        r = await self.orders.cancel_order_v2_with_http_info(order_id)
        d = self.expect_status(r, 200, "DELETE /portfolio/events/orders/{id}")
        check(d.order_id == order_id, "cancel response order_id %s, expected %s" % (d.order_id, order_id))
        return dec(d.reduced_by), None

    async def batch_create(self, reqs):
        body = M.BatchCreateOrdersV2Request(orders=[self.create_request(*a) for a in reqs])
        r = await self.orders.batch_create_orders_v2_with_http_info(body)
        d = self.expect_status(r, 201, "POST /portfolio/events/orders/batched")
        return [{"order_id": it.order_id, "client_order_id": it.client_order_id, "error": it.error,
                 "remaining": dec(it.remaining_count) if it.remaining_count is not None else None, "status": None}
                for it in d.orders]

    async def batch_cancel(self, ids):
        body = M.BatchCancelOrdersV2Request(orders=[M.BatchCancelOrdersV2RequestOrdersInner(order_id=i) for i in ids])
        r = await self.orders.batch_cancel_orders_v2_with_http_info(body)
        d = self.expect_status(r, 200, "DELETE /portfolio/events/orders/batched")
        return [{"order_id": it.order_id, "reduced_by": dec(it.reduced_by), "error": it.error, "status": None}
                for it in d.orders]

    async def queue_position(self, order_id):
        r = await self.orders.get_order_queue_position_with_http_info(order_id)
        return dec(self.expect_status(r, 200, "GET /portfolio/orders/{id}/queue_position").queue_position_fp)

    async def queue_positions(self, ticker):
        r = await self.orders.get_order_queue_positions_with_http_info(market_tickers=ticker)
        d = self.expect_status(r, 200, "GET /portfolio/orders/queue_positions")
        return {q.order_id: dec(q.queue_position_fp) for q in d.queue_positions}

    async def balance(self):
        r = await self.portfolio.get_balance_with_http_info()
        d = self.expect_status(r, 200, "GET /portfolio/balance")
        bd = dec(d.balance_dollars)
        check(int((bd * 100).to_integral_value(rounding=ROUND_FLOOR)) == d.balance,
              "balance %d cents disagrees with balance_dollars %s" % (d.balance, d.balance_dollars))
        return bd, "balance_dollars %s, portfolio_value %d cents" % (d.balance_dollars, d.portfolio_value)

    @staticmethod
    def market_facts(m):
        return "status=%s yes_bid=%s yes_ask=%s" % (m.status, m.yes_bid_dollars, m.yes_ask_dollars)


# --------------------------------------------------------------------------------------------
# Session
# --------------------------------------------------------------------------------------------


class Session:
    def __init__(self, args):
        self.args = args
        self.passed = 0
        self.failed = 0
        self.done = set()
        self.client = None
        self.ad = None
        self.created = []      # order ids that may still rest (cleanup)
        self.st = {}           # state shared between steps
        self.unreachable = None  # set on a connection failure: later steps are not run

    def ok(self, step, fact):
        self.passed += 1
        print("ok %s: %s" % (step, one_line(fact)), flush=True)

    def fail(self, step, reason):
        self.failed += 1
        print("FAIL %s: %s" % (step, one_line(reason, 1500)), flush=True)

    async def step(self, name, fn, needs=()):
        if self.unreachable:
            self.fail(name, "not run: exchange unreachable (%s)" % self.unreachable)
            return None
        missing = [d for d in needs if d not in self.done]
        if missing:
            self.fail(name, "not run: needs %s" % ", ".join(missing))
            return None
        try:
            fact = await asyncio.wait_for(fn(), timeout=self.args.step_timeout)
        except CheckFailed as e:
            self.fail(name, str(e))
        except NotRun as e:
            self.fail(name, "not run: %s" % e)
        except ApiException as e:
            where = "%s %s" % self.client.last_request if self.client and self.client.last_request else "request"
            body = e.body if e.body is not None else ""
            self.fail(name, "%s -> HTTP %s %s; body: %s" % (where, e.status, e.reason or "", one_line(body, 900)))
        except pydantic.ValidationError as e:
            errs = "; ".join("%s: %s (got %r)" % (".".join(str(x) for x in er.get("loc", ())), er.get("msg"),
                                                  er.get("input") if not isinstance(er.get("input"), dict) else "{...}")
                             for er in e.errors()[:8])
            more = " (+%d more)" % (len(e.errors()) - 8) if len(e.errors()) > 8 else ""
            last = self.client.describe_last() if self.client else ""
            self.fail(name, "SDK model %s rejected data: %s%s; %s" % (e.title, errs, more, last))
        except asyncio.TimeoutError:
            last = self.client.describe_last() if self.client else ""
            self.fail(name, "timed out after %ss; last: %s" % (self.args.step_timeout, last))
        except Exception as e:  # noqa: BLE001 - report anything the SDK throws
            last = self.client.describe_last() if self.client else ""
            self.fail(name, "%s: %s; last: %s" % (type(e).__name__, e, last))
            if isinstance(e, aiohttp.ClientConnectorError):
                self.unreachable = "%s: %s" % (type(e).__name__, one_line(e, 160))
        else:
            self.done.add(name)
            self.ok(name, fact)
            return fact
        return None

    # ---- steps ---------------------------------------------------------------------------

    async def s_setup(self):
        a = self.args
        with open(a.info_file) as f:
            info = json.load(f)
        self.info = info
        accounts = info.get("accounts") or []
        check(accounts, "info file lists no accounts")
        has_v2 = hasattr(OrdersApi, "create_order_v2")
        adapter_cls = EraB if has_v2 else EraA
        if a.account is None:
            # Era A signs with RSA only; default to the first RSA account there.
            pick = [x for x in accounts if adapter_cls is EraB or str(x.get("key_type", "")).startswith("rsa")]
            check(pick, "no RSA account in the info file (kalshi-python-async %s signs with RSA only)" % sdk_version())
            acct = pick[0]
        else:
            acct = next((x for x in accounts if x.get("index") == a.account), None)
            check(acct is not None, "account %s not in info file (have %s)" % (a.account, [x.get("index") for x in accounts]))
        self.markets = list(info.get("markets") or [])
        check(self.markets, "info file lists no markets")

        rest_url = info["rest_url"].rstrip("/")
        host = urlparse(rest_url).hostname or ""
        # The SDK's aiohttp session honours *_proxy variables; never send loopback traffic to a proxy.
        for var in ("NO_PROXY", "no_proxy"):
            cur = os.environ.get(var, "")
            extra = ",".join(h for h in ("127.0.0.1", "localhost", "::1", host) if h and h not in cur.split(","))
            os.environ[var] = ",".join(x for x in (cur, extra) if x)

        cfg = Configuration(host=rest_url, ssl_ca_cert=info.get("ca_file") or None)
        with open(acct["private_key_path"]) as f:
            pem = f.read()
        # The SDK's documented way to authenticate: KalshiClient reads these two attributes.
        # (ApiClient.set_kalshi_auth is unusable in both generations: NameError on KalshiAuth.)
        cfg.api_key_id = acct["key_id"]
        cfg.private_key_pem = pem
        try:
            self.client = RecordingKalshiClient(cfg)
        except ValueError as e:
            raise CheckFailed("kalshi-python-async %s cannot load account %s key (%s): %s"
                              % (sdk_version(), acct.get("index"), acct.get("key_type"), e))
        check(self.client.kalshi_auth is not None, "KalshiClient did not set up request signing")
        self.ad = adapter_cls(self.client)
        return "kalshi-python-async %s, era %s (%s), account %s key %s, host %s%s" % (
            sdk_version(), self.ad.era, self.ad.describe, acct.get("index"), acct.get("key_type"), rest_url,
            ", CA %s" % info.get("ca_file") if info.get("ca_file") else "")

    async def s_exchange_status(self):
        ea, ta = await self.ad.exchange_status()
        check(ea is True and ta is True, "exchange_active=%s trading_active=%s" % (ea, ta))
        return "exchange_active and trading_active"

    async def s_list_markets(self):
        ms = await self.ad.list_markets()
        tickers = {m.ticker for m in ms}
        missing = [t for t in self.markets if t not in tickers]
        check(not missing, "GET /markets (all pages) lacks %s; got %d markets" % (missing, len(ms)))
        st = sorted({m.status for m in ms if m.ticker in self.markets})
        return "%d markets listed, all %d info-file markets present, status %s" % (len(ms), len(self.markets), "/".join(st))

    async def s_get_market(self):
        t = self.markets[0]
        m = await self.ad.get_market(t)
        check(m.ticker == t, "asked %s, got %s" % (t, m.ticker))
        check(m.status == "active", "market %s status %r, expected 'active'" % (t, m.status))
        self.st["market_obj"] = m
        return "%s %s" % (t, self.ad.market_facts(m))

    async def s_orderbook(self):
        notes = []
        for t in self.markets:
            yes, no = await self.ad.orderbook(t)
            if not no:
                notes.append("%s: no asks" % t)
                continue
            best_bid = yes[0][0] if yes else None
            ask_price, ask_size = 1 - no[0][0], no[0][1]
            if best_bid is not None:
                check(best_bid < ask_price, "%s book crossed: best YES bid %s >= best YES ask %s" % (t, fmt(best_bid), fmt(ask_price)))
            if ask_price < Decimal("0.08"):
                notes.append("%s: ask %s too close to 0 to rest far below it" % (t, fmt(ask_price)))
                continue
            self.st.update(ticker=t, best_bid=best_bid, ask=ask_price, ask_size=ask_size)
            return "%s: %d YES bid / %d NO bid levels, best YES bid %s, best YES ask %s x %s (1 - best NO bid)" % (
                t, len(yes), len(no), fmt(best_bid) if best_bid is not None else "none", fmt(ask_price), fmt(ask_size))
        raise CheckFailed("no info-file market has usable ask liquidity: %s" % "; ".join(notes))

    def resting_prices(self):
        ask = self.st["ask"]
        p1 = Decimal("0.05") if ask > Decimal("0.07") else Decimal("0.01")
        p2 = p1 + CENT
        return p1, p2

    async def s_create_resting(self):
        t = self.st["ticker"]
        p1, _ = self.resting_prices()
        coid = str(uuid.uuid4())
        o = await self.ad.create(t, p1, RESTING_COUNT, None if self.ad.era == "A" else "good_till_canceled", coid, post_only=True)
        self.created.append(o["order_id"])
        check(o["fill"] == 0, "resting buy at %s filled %s" % (fmt(p1), fmt(o["fill"])))
        check(o["remaining"] == RESTING_COUNT, "remaining %s, expected %d" % (fmt(o["remaining"]), RESTING_COUNT))
        if o.get("status") is not None:
            check(o["status"] == "resting", "status %r, expected resting" % o["status"])
            check(o["price"] == p1, "order price %s, sent %s" % (fmt(o["price"]), fmt(p1)))
            check(o["client_order_id"] == coid, "client_order_id %r, sent %r" % (o["client_order_id"], coid))
        self.st["order"] = {"order_id": o["order_id"], "client_order_id": coid, "price": p1}
        return "order %s buy YES %d @ %s post_only rests (remaining %s)" % (o["order_id"], RESTING_COUNT, fmt(p1), fmt(o["remaining"]))

    async def s_get_order(self):
        want = self.st["order"]
        o = await self.ad.get_order(want["order_id"])
        check(o["order_id"] == want["order_id"], "asked %s, got %s" % (want["order_id"], o["order_id"]))
        check(o["status"] == "resting", "status %r, expected resting" % o["status"])
        check(o["price"] == want["price"], "price %s, expected %s" % (fmt(o["price"]), fmt(want["price"])))
        check(o["remaining"] == RESTING_COUNT and o["fill"] == 0 and o["initial"] == RESTING_COUNT,
              "remaining/fill/initial %s/%s/%s, expected %d/0/%d" % (fmt(o["remaining"]), fmt(o["fill"]), fmt(o["initial"]), RESTING_COUNT, RESTING_COUNT))
        check(o["client_order_id"] == want["client_order_id"], "client_order_id %r, expected %r" % (o["client_order_id"], want["client_order_id"]))
        check(o["ticker"] == self.st["ticker"], "ticker %s" % o["ticker"])
        return "resting, price %s, remaining %s" % (fmt(o["price"]), fmt(o["remaining"]))

    async def s_list_orders(self):
        want = self.st["order"]["order_id"]
        orders = await self.ad.list_orders(self.st["ticker"], "resting")
        check(any(o["order_id"] == want for o in orders), "order %s not among %d resting orders" % (want, len(orders)))
        bad = [o["order_id"] for o in orders if o["status"] != "resting"]
        check(not bad, "status=resting filter returned non-resting orders %s" % bad)
        return "order listed among %d resting order(s) on %s" % (len(orders), self.st["ticker"])

    async def s_amend(self):
        order = self.st["order"]
        _, p2 = self.resting_prices()
        check(p2 < self.st["ask"], "cannot amend below the ask %s" % fmt(self.st["ask"]))
        new_coid = str(uuid.uuid4())
        new_id, _ = await self.ad.amend(order, self.st["ticker"], p2, RESTING_COUNT, new_coid)
        if new_id != order["order_id"]:
            self.created.append(new_id)
        o = await self.ad.get_order(new_id)
        check(o["price"] == p2, "after amend GET order shows price %s, asked %s" % (fmt(o["price"]), fmt(p2)))
        check(o["remaining"] == RESTING_COUNT, "after amend remaining %s, expected %d" % (fmt(o["remaining"]), RESTING_COUNT))
        check(o["status"] == "resting", "after amend status %r" % o["status"])
        check(o["client_order_id"] == new_coid, "after amend client_order_id %r, expected updated %r" % (o["client_order_id"], new_coid))
        self.st["order"] = {"order_id": new_id, "client_order_id": new_coid, "price": p2}
        return "price %s -> %s, remaining %s%s" % (fmt(order["price"]), fmt(p2), fmt(o["remaining"]),
                                                   "" if new_id == order["order_id"] else ", new order id %s" % new_id)

    async def s_decrease(self):
        oid = self.st["order"]["order_id"]
        remaining, _ = await self.ad.decrease(oid, DECREASE_BY)
        want = RESTING_COUNT - DECREASE_BY
        check(remaining == want, "decrease response remaining %s, expected %d" % (fmt(remaining), want))
        o = await self.ad.get_order(oid)
        check(o["remaining"] == want, "GET order after decrease: remaining %s, expected %d" % (fmt(o["remaining"]), want))
        check(o["status"] == "resting", "status after decrease %r" % o["status"])
        return "reduce_by %d: remaining %d -> %s" % (DECREASE_BY, RESTING_COUNT, fmt(o["remaining"]))

    async def s_queue_position(self):
        oid = self.st["order"]["order_id"]
        if not hasattr(self.ad.orders, "get_order_queue_position"):
            return "SDK has no queue_position endpoint"
        q = await self.ad.queue_position(oid)
        check(q >= 0, "queue position %s < 0" % fmt(q))
        qs = await self.ad.queue_positions(self.st["ticker"])
        check(oid in qs, "GET /portfolio/orders/queue_positions?market_tickers=%s lacks order %s (has %d)" % (self.st["ticker"], oid, len(qs)))
        check(qs[oid] == q, "queue_positions says %s, queue_position says %s" % (fmt(qs[oid]), fmt(q)))
        return "%s contracts ahead at %s (single and batch endpoints agree)" % (fmt(q), fmt(self.st["order"]["price"]))

    async def s_cancel(self):
        oid = self.st["order"]["order_id"]
        reduced, o = await self.ad.cancel(oid)
        want = RESTING_COUNT - DECREASE_BY
        check(reduced == want, "reduced_by %s, expected %d" % (fmt(reduced), want))
        if o is not None:
            check(o["status"] == "canceled" and o["remaining"] == 0,
                  "cancel response order status %r remaining %s" % (o["status"], fmt(o["remaining"])))
        g = await self.ad.get_order(oid)
        check(g["status"] == "canceled", "GET order after cancel: status %r, expected canceled" % g["status"])
        check(g["remaining"] == 0, "GET order after cancel: remaining %s, expected 0" % fmt(g["remaining"]))
        self.created.remove(oid) if oid in self.created else None
        return "reduced_by %s, status canceled, remaining 0" % fmt(reduced)

    async def s_batch_create(self):
        t = self.st["ticker"]
        p1, p2 = self.resting_prices()
        tif = None if self.ad.era == "A" else "good_till_canceled"
        reqs = [(t, p1, BATCH_COUNT, tif, str(uuid.uuid4())), (t, p2, BATCH_COUNT, tif, str(uuid.uuid4()))]
        res = await self.ad.batch_create(reqs)
        check(len(res) == 2, "%d results for 2 orders" % len(res))
        for r in res:
            if r["order_id"]:
                self.created.append(r["order_id"])
        errs = [r["error"] for r in res if r["error"] is not None]
        check(not errs, "batch create item errors: %s" % errs)
        check(all(r["order_id"] for r in res), "a batch result has no order id")
        for r in res:
            if r["remaining"] is not None:
                check(r["remaining"] == BATCH_COUNT, "batch order %s remaining %s" % (r["order_id"], fmt(r["remaining"])))
            if r["status"] is not None:
                check(r["status"] == "resting", "batch order %s status %r" % (r["order_id"], r["status"]))
        sent = {q[4] for q in reqs}
        echoed = {r["client_order_id"] for r in res if r["client_order_id"]}
        check(echoed <= sent, "batch results carry unknown client_order_ids %s" % (echoed - sent))
        self.st["batch_ids"] = [r["order_id"] for r in res]
        return "2 orders resting: %s" % ", ".join(self.st["batch_ids"])

    async def s_batch_cancel(self):
        ids = self.st["batch_ids"]
        res = await self.ad.batch_cancel(ids)
        check(len(res) == len(ids), "%d results for %d ids" % (len(res), len(ids)))
        errs = [r["error"] for r in res if r["error"] is not None]
        check(not errs, "batch cancel item errors: %s" % errs)
        check({r["order_id"] for r in res} == set(ids), "result ids %s, sent %s" % ([r["order_id"] for r in res], ids))
        for r in res:
            check(r["reduced_by"] == BATCH_COUNT, "order %s reduced_by %s, expected %d" % (r["order_id"], fmt(r["reduced_by"]), BATCH_COUNT))
            if r["status"] is not None:
                check(r["status"] == "canceled", "order %s status %r after batch cancel" % (r["order_id"], r["status"]))
        for i in ids:
            g = await self.ad.get_order(i)
            check(g["status"] == "canceled" and g["remaining"] == 0, "GET %s after batch cancel: status %r remaining %s" % (i, g["status"], fmt(g["remaining"])))
            self.created.remove(i) if i in self.created else None
        return "2 orders canceled, reduced_by %d each" % BATCH_COUNT

    async def s_snapshot_before(self):
        t = self.st["ticker"]
        fills = await self.ad.all_fills(t)
        pos, _ = await self.ad.position(t)
        bal, bal_txt = await self.ad.balance()
        self.st.update(fills_before={f["fill_id"] for f in fills}, pos_before=pos, bal_before=bal)
        return "%d fills on %s, position %s, %s" % (len(fills), t, fmt(pos), bal_txt)

    async def s_marketable(self):
        t = self.st["ticker"]
        tif = "immediate_or_cancel"
        missed = []
        for _attempt in range(2):  # the makers may move the touch between reading the book and ordering
            _, no = await self.ad.orderbook(t)
            check(no, "no asks on %s any more" % t)
            ask, size = 1 - no[0][0], no[0][1]
            count = 2 if size >= 2 else 1
            o = await self.ad.create(t, ask, count, tif, str(uuid.uuid4()))
            self.st["mkt"] = {"order_id": o["order_id"], "limit": ask, "count": count}
            check(o["remaining"] == 0, "IOC order %s still has remaining %s" % (o["order_id"], fmt(o["remaining"])))
            if o["fill"] > 0:
                break
            missed.append("IOC buy YES %d @ %s (ask size %s) filled nothing (status %s)" % (count, fmt(ask), fmt(size), o.get("status")))
        check(o["fill"] > 0, "; ".join(missed))
        if o.get("status") is not None:
            want = "executed" if o["fill"] == count else "canceled"
            check(o["status"] == want, "IOC order status %r, expected %r (filled %s of %d)" % (o["status"], want, fmt(o["fill"]), count))
        if o.get("avg_price") is not None:
            check(o["avg_price"] <= ask, "average_fill_price %s above limit %s" % (fmt(o["avg_price"]), fmt(ask)))
        g = await self.ad.get_order(o["order_id"])
        check(g["fill"] == o["fill"], "GET order fill %s vs create response %s" % (fmt(g["fill"]), fmt(o["fill"])))
        check(g["remaining"] == 0, "GET order remaining %s" % fmt(g["remaining"]))
        check(g["taker_cost"] > 0, "taker fill cost %s" % fmt(g["taker_cost"]))
        check(g["taker_fees"] >= 0, "taker fees %s" % fmt(g["taker_fees"]))
        self.st["mkt"].update(fill=g["fill"], taker_fees=g["taker_fees"], taker_cost=g["taker_cost"], status=g["status"])
        return "IOC buy YES %d @ %s filled %s, status %s, taker cost %s fee %s%s" % (
            count, fmt(ask), fmt(g["fill"]), g["status"], fmt(g["taker_cost"]), fmt(g["taker_fees"]),
            " (after a retry: %s)" % missed[0] if missed else "")

    async def s_fills(self):
        t, mkt = self.st["ticker"], self.st["mkt"]
        fills = await self.ad.all_fills(t)
        new = [f for f in fills if f["fill_id"] not in self.st["fills_before"]]
        check(new, "no new fill on %s after the marketable order (%d fills total)" % (t, len(fills)))
        foreign = [f["fill_id"] for f in new if f["order_id"] != mkt["order_id"]]
        check(not foreign, "new fills %s belong to other orders" % foreign)
        total = sum((f["count"] for f in new), D0)
        check(total == mkt["fill"], "new fills total %s contracts, order fill_count %s" % (fmt(total), fmt(mkt["fill"])))
        for f in new:
            check(f["is_taker"] is True, "fill %s is_taker=%s" % (f["fill_id"], f["is_taker"]))
            check(f["buy_yes"], "fill %s direction %s, expected buy YES" % (f["fill_id"], f["direction"]))
            check(f["price"] <= mkt["limit"], "fill %s price %s above limit %s" % (f["fill_id"], fmt(f["price"]), fmt(mkt["limit"])))
            check(f["ticker"] == t, "fill %s ticker %s" % (f["fill_id"], f["ticker"]))
        cost = sum((f["count"] * f["price"] for f in new), D0)
        check(cost == mkt["taker_cost"], "fills cost %s != order taker fill cost %s" % (fmt(cost), fmt(mkt["taker_cost"])))
        fee_note = ""
        fees = [f["fee"] for f in new if f["fee"] is not None]
        if fees:
            check(sum(fees, D0) == mkt["taker_fees"], "fills fee_cost sum %s != order taker fees %s" % (fmt(sum(fees, D0)), fmt(mkt["taker_fees"])))
            fee_note = ", fee_cost sum %s" % fmt(sum(fees, D0))
        # Informational: Kalshi's general taker fee, ceil_to_cent(0.07 * C * P * (1 - P)) per order.
        quad = sum((Decimal("0.07") * f["count"] * f["price"] * (1 - f["price"]) for f in new), D0)
        quad = (quad / CENT).to_integral_value(rounding=ROUND_CEILING) * CENT
        self.st["mkt"]["cost"] = cost
        return "fill count %d -> %d: %d new fill(s) for %s contracts, cost %s%s (quadratic fee formula gives %s, order fee %s)" % (
            len(self.st["fills_before"]), len(fills), len(new), fmt(total), fmt(cost), fee_note, fmt(quad), fmt(mkt["taker_fees"]))

    async def s_positions(self):
        t, mkt = self.st["ticker"], self.st["mkt"]
        pos, raw = await self.ad.position(t)
        check(raw is not None, "no market_positions entry for %s after buying %s" % (t, fmt(mkt["fill"])))
        check(pos - self.st["pos_before"] == mkt["fill"], "position %s -> %s, expected +%s" % (fmt(self.st["pos_before"]), fmt(pos), fmt(mkt["fill"])))
        return "%s position %s -> %s (YES)" % (t, fmt(self.st["pos_before"]), fmt(pos))

    async def s_balance(self):
        mkt = self.st["mkt"]
        bal, txt = await self.ad.balance()
        spent = self.st["bal_before"] - bal
        want = mkt["cost"] + mkt["taker_fees"]
        check(spent == want, "balance %s -> %s: decreased %s, expected cost %s + fee %s = %s" % (
            fmt(self.st["bal_before"]), fmt(bal), fmt(spent), fmt(mkt["cost"]), fmt(mkt["taker_fees"]), fmt(want)))
        return "decreased by %s = cost %s + fee %s (%s)" % (fmt(spent), fmt(mkt["cost"]), fmt(mkt["taker_fees"]), txt)

    async def cleanup(self):
        left = list(dict.fromkeys(self.created))
        for oid in left:
            try:
                await asyncio.wait_for(self.ad.cancel(oid), timeout=self.args.step_timeout)
                print("cleanup: canceled leftover order %s" % oid, file=sys.stderr)
            except Exception as e:  # noqa: BLE001
                print("cleanup: cancel %s: %s" % (oid, one_line(e, 200)), file=sys.stderr)

    async def run(self):
        S = self.step
        try:
            await S("setup", self.s_setup)
            await S("exchange_status", self.s_exchange_status, ["setup"])
            await S("list_markets", self.s_list_markets, ["setup"])
            await S("get_market", self.s_get_market, ["setup"])
            await S("orderbook", self.s_orderbook, ["setup"])
            await S("create_resting", self.s_create_resting, ["orderbook"])
            await S("get_order", self.s_get_order, ["create_resting"])
            await S("list_orders", self.s_list_orders, ["create_resting"])
            await S("amend", self.s_amend, ["create_resting"])
            await S("decrease", self.s_decrease, ["amend"])
            await S("queue_position", self.s_queue_position, ["create_resting"])
            await S("cancel", self.s_cancel, ["create_resting"])
            await S("batch_create", self.s_batch_create, ["orderbook"])
            await S("batch_cancel", self.s_batch_cancel, ["batch_create"])
            await S("before_trade", self.s_snapshot_before, ["orderbook"])
            await S("marketable_order", self.s_marketable, ["before_trade"])
            await S("fills", self.s_fills, ["marketable_order"])
            await S("positions", self.s_positions, ["marketable_order"])
            await S("balance", self.s_balance, ["fills"])
        finally:
            if self.ad is not None and self.created:
                await self.cleanup()
            if self.client is not None:
                await self.client.close()
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        return 1 if self.failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--info-file", required=True, help="JSON written by the local exchange")
    ap.add_argument("--account", type=int, default=None, help="account index from the info file")
    ap.add_argument("--step-timeout", type=float, default=30.0, help="seconds per step (default 30)")
    args = ap.parse_args()
    try:
        with open(args.info_file) as f:
            json.load(f)
    except (OSError, ValueError) as e:
        print("FAIL setup: cannot read info file %s: %s" % (args.info_file, e))
        print("0 passed, 1 failed")
        return 2
    return asyncio.run(Session(args).run())


if __name__ == "__main__":
    sys.exit(main())
