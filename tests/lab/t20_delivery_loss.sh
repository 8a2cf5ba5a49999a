#!/usr/bin/env bash
# 10,000 QoS 1 messages from alpha to bravo while bravo's WAN drops 5 % of packets and
# delays what it sends by 20 ms: all arrive, none twice, in order. (The delay is netem
# where the kernel has it, bldelay over NFQUEUE where not; only if neither works does
# the test fall back to loss alone.)
set -euo pipefail
. "$(dirname "$0")/sites.sh"
N=${BL_TEST_N:-10000}

bl_lab_up 2

# A ping from bravo's host must take 20 ms longer now.
bl_impair "5 % loss and 20 ms delay" 19 "loss 5%" "5 % loss" 2="delay 20ms loss 5%"
bl_stream_under_impairment test/load "$N" 120
bl_impair_clear 2
lab_finish
