#!/usr/bin/env bash
# The main job: install, build, and run a live demo of two sites syncing.
#
# Builds a small simulated internet in network namespaces (tests/lab/lab.sh): a public
# host running the signalling broker and coturn, and two sites, "alpha" and "bravo",
# each with its own mosquitto behind its own NAT router, both on the same private
# subnet. Starts brokerless at both sites, waits for the direct link, then publishes at
# one site and shows what the other site's subscriber receives. Everything is torn down
# at the end (also on Ctrl-C). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

bash scripts/deps.sh
cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-demo -j"$(nproc)" --target brokerless >/dev/null
export BL_BIN=$ROOT/build-demo/brokerless

. tests/lab/lab.sh
. tests/lab/sites.sh

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "building a lab: public host 198.18.0.1 (signalling broker + coturn), two sites behind NAT"
lab_up 2 "${DEMO_NAT:-cone}"
lab_start_pub_broker
lab_start_coturn
bl_sites 2
say "identities (brokerless init): alpha ${BL_FP[1]:0:23}..., bravo ${BL_FP[2]:0:23}..."
bl_config 1 "demo/# both 2" both
bl_config 2 "demo/# both 2" both
echo "site alpha's config:"
sed 's/^secret = .*/secret = (the network secret)/; s/^/    /' "$LAB_DIR/site1.conf"

say "starting brokerless at both sites"
t0=$(_lab_now_us)
bl_start 1
bl_start 2
if ! bl_wait_open 1 bravo 40; then
  echo "the link did not open; logs:"
  lab_dump_logs
  exit 1
fi
bl_wait_open 2 alpha 10 || true
echo "link open after $(lab_elapsed "$t0") s, path: $(bl_path 1 bravo)"
grep -hE "peer (alpha|bravo): " "$(bl_log 1)" | sed 's/^/    alpha| /'

say "subscribing to demo/# at bravo, publishing at alpha"
bl_sub 2 subB 'demo/#' -F '    bravo received %t "%p" qos=%q retain=%r props=%P'
bl_sub 1 subA 'demo/#' -F '    alpha received %t "%p" qos=%q retain=%r'
bl_pub 1 -t demo/kitchen/temp -m "21.5" -q 1 -D publish user-property unit celsius
bl_pub 1 -t demo/door -m "closed" -q 2 -r
bl_pub 2 -t demo/cabin/heater -m "on" -q 1
bl_wait_got subB 3 10 || true
bl_wait_got subA 3 10 || true
bl_got subB
bl_got subA

say "status, retained on each local broker"
lab_exec 2 timeout -s KILL 5 mosquitto_sub -h 127.0.0.1 -t 'brokerless/bravo/peers/#' -v -C 1 -W 3 | sed 's/^/    /' || true

say "done; tearing the lab down"
lab_finish >/dev/null || true
