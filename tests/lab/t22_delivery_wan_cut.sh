#!/usr/bin/env bash
# bravo's WAN is cut for 30 s while alpha keeps publishing a 10,000-message QoS 1 stream
# (spread over ~40 s, so the cut falls in the middle of it); after the restore every
# message arrives at bravo's subscriber, none twice, in order.
set -euo pipefail
. "$(dirname "$0")/sites.sh"
N=${BL_TEST_N:-10000}
CUT_S=${BL_TEST_CUT_S:-30}

bl_lab_up 2
bl_sub 2 subB 'test/load' -F '%p'

bl_flood_wan_cut subB test/load "$N" 1 $((CUT_S + 10)) 20 "$CUT_S"
bl_expect_seq subB "$N" 120 2 "all $N arrive once, in order, across a ${CUT_S} s WAN cut"
echo "note: alpha's link to bravo opened $(bl_count 1 'peer bravo: link open via') times, went down $(bl_count 1 'peer bravo: link down') times"
lab_finish
