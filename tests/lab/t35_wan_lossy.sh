#!/usr/bin/env bash
# 20,000 QoS 1 messages from alpha to bravo across a long, lossy WAN: each router delays
# what it sends by 75 ms (150 ms of round trip between the sites) and bravo's router drops
# 2 % of the packets, both ways. All arrive, none twice, in order. Counts only: how long it
# took is printed, never checked (docs/BENCH.md has the throughput figures). Where neither
# netem nor bldelay is available, the test runs with the loss alone and says so.
set -euo pipefail
HERE=$(dirname "$0")
. "$HERE/lab.sh"
. "$HERE/sites.sh"
N=${BL_TEST_N:-20000}

bl_lab 2 cone "test/# both 2" both
bl_up 2

rtt0=$(lab_rtt 2) || rtt0=""
what="150 ms RTT and 2 % loss"
rc=0
lab_netem 1 "delay 75ms" || rc=$?
if ((rc == 0)); then lab_netem 2 "delay 75ms loss 2%" || rc=$?; fi
if ((rc == 2)); then
  echo "note: no netem and no bldelay here; testing 2 % loss without the delay"
  lab_netem_clear 1
  lab_netem 2 "loss 2%"
  what="2 % loss"
elif ((rc != 0)); then
  fail "lab_netem returned $rc"
else
  # The setup, not brokerless: a ping from either site to the public host takes 75 ms
  # longer now (what it sends is delayed, the answer is not).
  rtt1=$(lab_rtt 1 10) || rtt1=""
  rtt2=$(lab_rtt 2 20) || rtt2=""
  echo "RTT to the public host: ${rtt0:-?} ms before; now ${rtt1:-?} ms (alpha), ${rtt2:-?} ms (bravo)"
  if [[ -n $rtt0 && -n $rtt1 && -n $rtt2 ]] &&
    awk -v a="$rtt0" -v b="$rtt1" -v c="$rtt2" 'BEGIN { exit !(b - a >= 74 && c - a >= 74) }'; then
    pass "the WAN delay is in place on both sides (150 ms between the sites)"
  else
    fail "the WAN delay is not in place (RTT '${rtt0}' -> '${rtt1}' / '${rtt2}' ms)"
  fi
fi
bl_sub 2 subB 'test/wan' -F '%p'
t0=$(_lab_now_us)
bl_pub_seq 1 test/wan 1 "$N" 1
bl_wait_seq subB "$N" 500 || true
echo "delivered in $(lab_elapsed "$t0") s under $what"
sleep 1
r=$(bl_seq_report subB 1 "$N")
assert_eq "$r" "received $N unique $N duplicates 0 missing 0 out_of_order 0" \
  "all $N arrive once, in order, under $what"
assert_eq "$(bl_count 1 'link down')" 0 "the link stayed up on alpha's side"
lab_netem_clear 1
lab_netem_clear 2
for i in 1 2; do
  if [[ -f $LAB_DIR/bldelay$i.log ]]; then sed -n 's/^/  /; /queue '"$i"':\|kernel queue/p' "$LAB_DIR/bldelay$i.log"; fi
done
lab_finish
