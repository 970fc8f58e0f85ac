#!/usr/bin/env bash
# Install Kalshi's official async Python SDK, two generations, each into its own venv:
#
#   $KMM_SDK_DIR/v320   kalshi-python-async 3.2.0   ("Era A": legacy /portfolio/orders, integer cents)
#   $KMM_SDK_DIR/v3new  kalshi-python-async 3.34.0  ("Era B": /portfolio/events/orders V2, *_dollars/*_fp)
#
# KMM_SDK_DIR defaults to target/sdk in the repository. KMM_SDK_PYTHON picks the interpreter (default python3).
#
# Every version is pinned: the SDK wheels by version and sha256, their dependencies by exact version.
# 3.34.0 declares Requires-Python >=3.13 but its code runs on 3.9+, so its wheel is fetched with
# `pip download --python-version 3.13` and installed with --ignore-requires-python.
# 3.2.0 imports urllib3 without declaring it; the pinned dependency set below supplies it.
#
# Idempotent: a venv whose stamp file matches the pinned set (and the interpreter) is left alone.
# A venv is rebuilt from scratch when its stamp is missing (e.g. an interrupted earlier run).
#
# Exit codes: 0 installed / already installed (silent);
#             3 "skipped: <reason>" (PyPI unreachable, venv or install failure; the SDK session can be skipped);
#             1 a downloaded wheel does not match its pinned sha256 (never skip silently on that).
set -u

SDK_DIR=${KMM_SDK_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/target/sdk}
PY=${KMM_SDK_PYTHON:-python3}

V320_VERSION=3.2.0
V320_SHA256=cb46c17bd2ec19554b68cadbab282a40dfab9fadf6f27e83059bdc1ef0addff1
VNEW_VERSION=3.34.0
VNEW_SHA256=41574846e0e367b1b2929e7e094bf6c6407d09246e39cb31161bd7ced2825b33

# Union of both SDKs' Requires-Dist plus urllib3, resolved once and pinned (the closure on CPython 3.11).
DEPS=(
  aiohappyeyeballs==2.7.1
  aiohttp==3.14.5
  aiohttp-retry==2.9.1
  aiosignal==1.4.0
  annotated-types==0.8.0
  attrs==26.1.0
  cffi==2.1.1
  cryptography==50.0.2
  frozenlist==1.8.0
  idna==3.20
  lazy-imports==1.2.0
  multidict==7.2.1
  propcache==0.5.4
  pycparser==3.12
  pydantic==2.14.3
  pydantic-core==2.50.4
  python-dateutil==4.0.0
  typing-inspection==0.4.5
  typing-extensions==4.16.0
  tzdata==2026.6
  urllib3==2.8.0
  yarl==1.25.1
)

PIP_NET_OPTS=(--disable-pip-version-check --no-input --timeout 20 --retries 2)

skip() {
  echo "skipped: $*"
  exit 3
}

mkdir -p "$SDK_DIR" 2>/dev/null || skip "cannot create $SDK_DIR"
LOG="$SDK_DIR/install.log"
: >"$LOG" 2>/dev/null || skip "cannot write $LOG"

command -v "$PY" >/dev/null 2>&1 || skip "interpreter '$PY' not found"
PYVER=$("$PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>>"$LOG") || skip "interpreter '$PY' does not run"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' || skip "need Python >= 3.9, have $PYVER"

show_log() {
  echo "--- last lines of $LOG:" >&2
  tail -n 25 "$LOG" >&2
}

# install_one NAME VERSION SHA256
install_one() {
  local name=$1 version=$2 sha=$3
  local dest="$SDK_DIR/$name"
  local stamp_want
  stamp_want="kalshi-python-async==$version sha256=$sha python=$PYVER deps=${DEPS[*]}"

  if [ -f "$dest/kmm-sdk.stamp" ] && [ "$(cat "$dest/kmm-sdk.stamp")" = "$stamp_want" ] &&
    "$dest/bin/python" -c 'import kalshi_python_async' >/dev/null 2>&1; then
    return 0
  fi

  # Build in place; the stamp is written last, so an interrupted build is redone next time.
  local wheels="$SDK_DIR/.wheels"
  rm -rf "$dest"
  mkdir -p "$wheels"
  echo "== $name: kalshi-python-async $version on Python $PYVER" >>"$LOG"

  "$PY" -m venv "$dest" >>"$LOG" 2>&1 || { show_log; skip "cannot create venv $dest (python -m venv failed)"; }
  local pip="$dest/bin/pip"

  local whl="$wheels/kalshi_python_async-$version-py3-none-any.whl"
  if [ ! -f "$whl" ] || ! echo "$sha  $whl" | sha256sum -c --status; then
    rm -f "$whl"
    # --python-version 3.13: newer releases declare Requires-Python >=3.13 (their code runs on 3.9+).
    "$pip" download "${PIP_NET_OPTS[@]}" --no-deps --only-binary=:all: --python-version 3.13 \
      "kalshi-python-async==$version" -d "$wheels" >>"$LOG" 2>&1 ||
      { show_log; skip "cannot download kalshi-python-async==$version from the package index (PyPI unreachable?)"; }
    [ -f "$whl" ] || skip "pip download did not produce $(basename "$whl")"
    if ! echo "$sha  $whl" | sha256sum -c --status; then
      echo "error: $(basename "$whl") sha256 $(sha256sum "$whl" | cut -d' ' -f1) != pinned $sha" >&2
      rm -f "$whl"
      exit 1
    fi
  fi

  "$pip" install "${PIP_NET_OPTS[@]}" "${DEPS[@]}" >>"$LOG" 2>&1 ||
    { show_log; skip "cannot install the SDK dependencies for $name (PyPI unreachable?)"; }
  "$pip" install "${PIP_NET_OPTS[@]}" --no-deps --ignore-requires-python "$whl" >>"$LOG" 2>&1 ||
    { show_log; skip "cannot install $(basename "$whl")"; }

  local got
  got=$("$dest/bin/python" -c 'import kalshi_python_async as k; print(k.__version__)' 2>>"$LOG") ||
    { show_log; skip "kalshi-python-async $version does not import on Python $PYVER"; }
  [ "$got" = "$version" ] || skip "installed SDK reports version $got, expected $version"

  echo "$stamp_want" >"$dest/kmm-sdk.stamp"
}

install_one v320 "$V320_VERSION" "$V320_SHA256"
install_one v3new "$VNEW_VERSION" "$VNEW_SHA256"
exit 0
