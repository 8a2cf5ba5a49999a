#!/usr/bin/env bash
# delivery = exactly-once: kill -9 of bravo's daemon in the middle of a 10,000-message
# QoS 1 stream, then restart it: everything arrives, nothing twice (the echo tells the
# restarted daemon which of its last publishes its broker took); and nothing comes back
# to alpha (an echo bravo's broker sends again after the restart must not pass for a
# local message). The promise of exactly-once: a duplicate here fails the test.
set -euo pipefail
. "$(dirname "$0")/sites.sh"
N=${BL_TEST_N:-10000}
export BL_DELIVERY=exactly-once

bl_lab_up 2
bl_sub 2 subB 'test/load' -F '%p'
bl_sub 1 subA 'test/load' -F '%p'

bl_flood_kill_receiver subB test/load "$N" 1
bl_expect_seq subB "$N" 120 2 "all $N arrive, none twice, across a kill -9 of the receiver" any-order
bl_expect_seq subA "$N" 120 0 "alpha's own subscriber gets each of its $N once: nothing was routed back" any-order
lab_finish
