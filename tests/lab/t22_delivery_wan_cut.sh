#!/usr/bin/env bash
# bravo's WAN is cut for 30 s while alpha keeps publishing a 10,000-message QoS 1 stream
# (spread over ~40 s, so the cut falls in the middle of it); after the restore every
# message arrives at bravo's subscriber, none twice, in order.
set -euo pipefail
HERE=$(dirname "$0")
. "$HERE/lab.sh"
. "$HERE/sites.sh"
N=${BL_TEST_N:-10000}
CUT_S=${BL_TEST_CUT_S:-30}

bl_lab 2 cone "test/# both 2" both
bl_up 2
bl_sub 2 subB 'test/load' -F '%p'

bl_pub_seq_paced 1 test/load 1 "$N" $((CUT_S + 10)) 1 &
pubpid=$!
bl_wait_got subB $((N / 20)) 30 || true
lab_wan_cut 2
before=$(bl_got subB | wc -l)
pass "bravo's WAN cut after $before messages arrived"
sleep "$CUT_S"
during=$(bl_got subB | wc -l)
lab_wan_restore 2
echo "note: $((during - before)) messages arrived during the ${CUT_S} s cut"
wait "$pubpid" && pass "alpha's publisher published all $N" || fail "publisher failed"
bl_wait_seq subB "$N" 120 || true
sleep 2
r=$(bl_seq_report subB 1 "$N")
assert_eq "$r" "received $N unique $N duplicates 0 missing 0 out_of_order 0" \
  "all $N arrive once, in order, across a ${CUT_S} s WAN cut"
echo "note: alpha's link to bravo opened $(bl_count 1 'peer bravo: link open via') times, went down $(bl_count 1 'peer bravo: link down') times"
lab_finish
