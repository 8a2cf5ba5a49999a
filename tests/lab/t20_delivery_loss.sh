#!/usr/bin/env bash
# 10,000 QoS 1 messages from alpha to bravo while bravo's WAN drops 5 % of packets and
# delays what it sends by 20 ms: all arrive, none twice, in order. (The delay is netem
# where the kernel has it, bldelay over NFQUEUE where not; only if neither works does
# the test fall back to loss alone.)
set -euo pipefail
HERE=$(dirname "$0")
. "$HERE/lab.sh"
. "$HERE/sites.sh"
N=${BL_TEST_N:-10000}

bl_lab 2 cone "test/# both 2" both
bl_up 2

rtt0=$(lab_rtt 2) || rtt0=""
rc=0
lab_netem 2 "delay 20ms loss 5%" || rc=$?
what="5 % loss and 20 ms delay"
if ((rc == 2)); then
  echo "note: no netem and no bldelay here; testing 5 % loss without the 20 ms delay"
  lab_netem 2 "loss 5%"
  what="5 % loss"
elif ((rc != 0)); then
  fail "lab_netem returned $rc"
else
  # The setup, not brokerless: a ping from bravo's host must take 20 ms longer now.
  rtt1=$(lab_rtt 2 20) || rtt1=""
  echo "RTT bravo host -> public host: ${rtt0:-?} ms without, ${rtt1:-?} ms with the impairment"
  if [[ -n $rtt0 && -n $rtt1 ]] && awk -v a="$rtt0" -v b="$rtt1" 'BEGIN { exit !(b - a >= 19) }'; then
    pass "the WAN delay is in place (RTT ${rtt0} -> ${rtt1} ms)"
  else
    fail "the WAN delay is not in place (RTT '${rtt0}' -> '${rtt1}' ms)"
  fi
fi
bl_sub 2 subB 'test/load' -F '%p'
t0=$(_lab_now_us)
bl_pub_seq 1 test/load 1 "$N" 1
bl_wait_seq subB "$N" 120 || true
echo "delivered in $(lab_elapsed "$t0") s under $what"
sleep 1
r=$(bl_seq_report subB 1 "$N")
assert_eq "$r" "received $N unique $N duplicates 0 missing 0 out_of_order 0" "all $N arrive once, in order, under $what"
lab_netem_clear 2
if [[ -f $LAB_DIR/bldelay2.log ]]; then sed -n 's/^/  /; /queue 2:\|kernel queue/p' "$LAB_DIR/bldelay2.log"; fi
lab_finish
