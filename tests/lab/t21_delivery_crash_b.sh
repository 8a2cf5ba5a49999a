#!/usr/bin/env bash
# delivery = exactly-once: kill -9 of bravo's daemon in the middle of a 10,000-message
# QoS 1 stream, then restart it: everything arrives, nothing twice (the echo tells the
# restarted daemon which of its last publishes its broker took); and nothing comes back
# to alpha (an echo bravo's broker sends again after the restart must not pass for a
# local message). The promise of exactly-once: a duplicate here fails the test.
set -euo pipefail
HERE=$(dirname "$0")
. "$HERE/lab.sh"
. "$HERE/sites.sh"
N=${BL_TEST_N:-10000}
export BL_DELIVERY=exactly-once

bl_lab 2 cone "test/# both 2" both
bl_up 2
bl_sub 2 subB 'test/load' -F '%p'
bl_sub 1 subA 'test/load' -F '%p'

bl_pub_seq 1 test/load 1 "$N" 1 &
pubpid=$!
bl_wait_got subB $((N / 3)) 30 || true
bl_crash_restart 2 subB
wait "$pubpid" || fail "publisher failed"
bl_wait_open 2 alpha 60 && pass "bravo restarted and the link is back" || fail "link did not come back"
bl_wait_seq subB "$N" 120 || true
sleep 2
r=$(bl_seq_report subB 1 "$N")
assert_eq "${r% out_of_order*}" "received $N unique $N duplicates 0 missing 0" "all $N arrive, none twice, across a kill -9 of the receiver"
r=$(bl_seq_report subA 1 "$N")
assert_eq "${r% out_of_order*}" "received $N unique $N duplicates 0 missing 0" "alpha's own subscriber gets each of its $N once: nothing was routed back"
lab_finish
