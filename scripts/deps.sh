#!/usr/bin/env bash
# Installs what brokerless needs to build, test and run its demo on Debian 12.
# Run as root. Skips apt when everything is already there (fast re-runs).
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang libclang-rt-14-dev llvm
  libglib2.0-dev libnice-dev libssl-dev libusrsctp-dev libmosquitto-dev
  libsqlite3-dev libcjson-dev libcmocka-dev libnetfilter-queue-dev
  mosquitto mosquitto-clients coturn
  iproute2 iptables iputils-ping procps psmisc xxd
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
# The packaged mosquitto and coturn services are not used: tests start their own.
for svc in mosquitto coturn; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
true
