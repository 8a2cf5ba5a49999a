#!/usr/bin/env bash
# A site whose firewall refuses packets longer than 1,500 bytes on the way out: a
# segmented UDP send (a run of datagrams handed to the kernel in one sendmsg, cut after
# the firewall's OUTPUT hook) is refused whole, with EPERM. The daemon says so once,
# sends those datagrams and all later ones one by one, and loses nothing: 10,000 QoS 1
# messages from alpha arrive at bravo once each, in order. The firewall counts what it
# refused, which shows that a segmented send was tried (Linux 4.18 or later: before, the
# daemon never segments and this test fails on that count).
set -euo pipefail
. "$(dirname "$0")/sites.sh"
N=${BL_TEST_N:-10000}

bl_lab_up 2

# Alpha's host only, UDP only: the link's datagrams are ~1,250 bytes; a segmented send
# is up to 64 of them.
lab_exec 1 iptables -A OUTPUT -p udp -m length --length 1501:65535 -j DROP

bl_sub 2 subB test/gso -F '%p'
bl_pub_seq 1 test/gso 1 "$N" 1
bl_expect_seq subB "$N" 120 1 "all $N arrive once, in order, though alpha's firewall refuses segmented sends"

counters=$(lab_exec 1 iptables -L OUTPUT -v -x -n)
refused=$(awk '/length 1501:65535/ { print $1; exit }' <<<"$counters")
echo "alpha's firewall refused ${refused:-?} packets longer than 1,500 bytes"
assert_ok "alpha tried a segmented send and its firewall refused it" test "${refused:-0}" -ge 1
assert_eq "$(bl_count 1 'the path refused a segmented UDP send')" 1 \
  "alpha says once that the path refuses segmented sends"
assert_eq "$(bl_count 1 'link down')" 0 "the link stayed up on alpha's side"
lab_finish
