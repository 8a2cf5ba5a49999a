#!/usr/bin/env bash
# 20,000 QoS 1 messages from alpha to bravo across a long, lossy WAN: each router delays
# what it sends by 75 ms (150 ms of round trip between the sites) and bravo's router drops
# 2 % of the packets, both ways. All arrive, none twice, in order. Counts only: how long it
# took is printed, never checked (docs/BENCH.md has the throughput figures). Where neither
# netem nor bldelay is available, the test runs with the loss alone and says so.
set -euo pipefail
. "$(dirname "$0")/sites.sh"
N=${BL_TEST_N:-20000}

bl_lab_up 2

# A ping from either site to the public host takes 75 ms longer now (what it sends is
# delayed, the answer is not): 150 ms between the sites.
bl_impair "150 ms RTT and 2 % loss" 74 "loss 2%" "2 % loss" 1="delay 75ms" 2="delay 75ms loss 2%"
bl_stream_under_impairment test/wan "$N" 500
assert_eq "$(bl_count 1 'link down')" 0 "the link stayed up on alpha's side"
bl_impair_clear 1 2
lab_finish
