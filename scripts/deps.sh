#!/usr/bin/env bash
# Installs what brokerless needs to build, test, package and run its demo on Debian 12.
# Run as root. Skips apt when everything is already there (fast re-runs).
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang clang-format libclang-rt-14-dev llvm
  libglib2.0-dev libnice-dev libssl-dev libusrsctp-dev libmosquitto-dev
  libsqlite3-dev libcjson-dev libcmocka-dev libnetfilter-queue-dev
  libsoup-3.0-dev libsystemd-dev
  mosquitto mosquitto-clients coturn
  iproute2 iptables iputils-ping procps psmisc xxd
  debhelper dpkg-dev fakeroot lintian man-db systemd python3-prometheus-client
  chromium chromium-driver curl
)

missing=()
for p in "${PKGS[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $st == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The lab's ESP32 (tests/lab/esppeer: werift-ice and mqtt.js) runs on Node.js; any
# Node >= 16 with npm will do, Debian's included.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "deps: installing nodejs npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends nodejs npm
fi
# Its packages, exactly as package-lock.json pins them (again only when the lock changed).
ESPPEER=$(cd "$(dirname "$0")/../tests/lab/esppeer" && pwd)
if [[ ! -f $ESPPEER/node_modules/.package-lock.json ||
  $ESPPEER/package-lock.json -nt $ESPPEER/node_modules/.package-lock.json ]]; then
  echo "deps: npm ci in tests/lab/esppeer"
  (cd "$ESPPEER" && npm ci --no-audit --no-fund --loglevel=error)
fi
# The browser peer's page (web/: mqtt.js's browser bundle, served by `brokerless web`) and
# the lab's browser driver (tests/lab/webdriver: puppeteer-core for t18), the same way.
for dir in web tests/lab/webdriver; do
  D=$(cd "$(dirname "$0")/../$dir" && pwd)
  if [[ ! -f $D/node_modules/.package-lock.json || $D/package-lock.json -nt $D/node_modules/.package-lock.json ]]; then
    echo "deps: npm ci in $dir"
    (cd "$D" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
# Services the user runs (a mosquitto or coturn of the machine) are left alone: the tests
# start their own brokers and TURN server inside network namespaces they create, on
# those namespaces' addresses, and unit tests take free loopback ports.
true
