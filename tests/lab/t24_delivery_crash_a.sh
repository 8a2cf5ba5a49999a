#!/usr/bin/env bash
# delivery = exactly-once: kill -9 of alpha's daemon (the sender) three times in a
# 10,000-message QoS 1 flood, restarting it each time, while the publisher keeps
# publishing to alpha's broker (no in-flight limit: many messages in flight at a kill). brokerless keeps a persistent session with its local broker
# (clean_start false, session expiry) and the lab brokers hold any number of messages
# for it (max_queued_messages 0), so the broker keeps what arrives while the daemon is
# down and redelivers what it had not acknowledged: every message must reach bravo's
# subscriber. And none twice: a message the dead daemon had queued but whose PUBACK its
# broker never read comes again with DUP and its packet id, which the daemon recorded
# with it (site_mq.c). (With the default delivery such a resend may come twice: QoS 1
# is at least once; t25 prints how many.)
set -euo pipefail
. "$(dirname "$0")/sites.sh"
N=${BL_TEST_N:-10000}
export BL_DELIVERY=exactly-once
LAB_BROKER_EXTRA="max_queued_messages 0
max_inflight_messages 0"

bl_lab_up 2
bl_sub 2 subB 'test/load' -F '%p'

bl_pub_seq_paced 1 test/load 1 "$N" 6 1 &
pubpid=$!
for k in 1 2 3; do
  bl_wait_got subB $((k * N / 5)) 30 || true
  bl_crash_restart 1 subB 0.3
  bl_wait_open 1 bravo 60 && pass "alpha restarted and the link is back" || fail "link did not come back"
done
wait "$pubpid" && pass "the publisher published all $N to alpha's broker" || fail "publisher failed"
bl_expect_seq subB "$N" 120 2 "all $N arrive, none twice, across a kill -9 of the sender" any-order
lab_finish
