#!/usr/bin/env bash
# Starts a local exchange (TLS, calm scenario) and drives a session against it with both
# generations of Kalshi's official Python client (kalshi-python-async 3.2.0 and 3.34.0).
#
#   tools/sdk/check-against-local-exchange.sh [path/to/local-exchange-binary]
#
# Exit 0: both sessions passed. Exit 3: skipped because the SDKs could not be installed
# (no PyPI). Anything else: a failure, with the exchange's log printed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-$root/target/debug/local-exchange}
if [ ! -x "$bin" ]; then
  (cd "$root" && cargo build -q -p local-exchange) || exit 1
fi
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
# Legacy order endpoints cost 50 tokens each (as on Kalshi since mid 2026); a premier-tier
# bucket lets the 3.2 client's burst through without testing rate limits here.
"$bin" --accounts 2 --seed 7 --duration 15m --quiet --tier premier \
  --state-dir "$work/state" --info-file "$work/info.json" >"$work/exchange.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  [ -s "$work/info.json" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "local exchange exited early:"; cat "$work/exchange.log"; exit 1; }
  sleep 0.1
done
[ -s "$work/info.json" ] || { echo "local exchange wrote no info file in 30 s"; cat "$work/exchange.log"; exit 1; }
# Let the simulated makers build their books before the sessions trade against them.
sleep 3
"$here/run-sdk-sessions.sh" "$work/info.json"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then
  echo "--- local exchange log ---"; tail -n 40 "$work/exchange.log"
fi
exit $rc
