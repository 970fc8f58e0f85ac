#!/usr/bin/env bash
# Run the official-SDK session against a running local exchange with both SDK generations.
#
#   tools/sdk/run-sdk-sessions.sh INFO_FILE
#
# INFO_FILE is the JSON the exchange writes (rest_url, ca_file, markets, accounts).
# 1. tools/sdk/install.sh builds the venvs (KMM_SDK_DIR, default target/sdk in the repository).
#    If it reports "skipped" (exit 3: no PyPI / install failure) this script prints
#    "skipped: ..." and exits 3 too, so CI can treat the SDK sessions as skipped.
# 2. sdk_session.py runs under kalshi-python-async 3.2.0 with account 0 (RSA) and under
#    3.34.0 with account 1 (override: KMM_SDK_ACCOUNT_V320 / KMM_SDK_ACCOUNT_V3NEW).
# Exit status: 0 both sessions passed, 1 either failed, 2 usage error, 3 skipped.
set -u

if [ $# -ne 1 ]; then
  echo "usage: $0 INFO_FILE" >&2
  exit 2
fi
INFO=$1
[ -r "$INFO" ] || { echo "error: cannot read info file $INFO" >&2; exit 2; }

HERE=$(cd "$(dirname "$0")" && pwd)
SDK_DIR=${KMM_SDK_DIR:-$(cd "$HERE/../.." && pwd)/target/sdk}
export KMM_SDK_DIR=$SDK_DIR

"$HERE/install.sh"
rc=$?
if [ $rc -eq 3 ]; then
  echo "skipped: SDK sessions not run (install.sh skipped)"
  exit 3
elif [ $rc -ne 0 ]; then
  echo "error: install.sh failed with exit code $rc" >&2
  exit 1
fi

SESSION_TIMEOUT=${KMM_SDK_SESSION_TIMEOUT:-600}
failed=0
run_one() { # VENV ACCOUNT
  local venv=$1 account=$2
  echo "== SDK session: $venv ($("$SDK_DIR/$venv/bin/python" -c 'import kalshi_python_async as k; print("kalshi-python-async", k.__version__)' 2>/dev/null)), account $account"
  timeout --kill-after=10 "$SESSION_TIMEOUT" \
    "$SDK_DIR/$venv/bin/python" "$HERE/sdk_session.py" --info-file "$INFO" --account "$account"
  local r=$?
  if [ $r -ne 0 ]; then
    [ $r -eq 124 ] && echo "FAIL session: $venv session exceeded ${SESSION_TIMEOUT}s"
    echo "== $venv session failed (exit $r)"
    failed=1
  fi
}

run_one v320 "${KMM_SDK_ACCOUNT_V320:-0}"
run_one v3new "${KMM_SDK_ACCOUNT_V3NEW:-1}"
exit $failed
