#!/usr/bin/env bash
# A burst of 30,000 QoS 0 messages of 200 bytes at alpha, faster than the link carries them, while
# bravo is connected: every one arrives, once, in order. (Past 8192 waiting in memory
# the rest waits in the durable queue; before that fix a burst could also stall in
# memory until the next message came.) The site brokers queue without limit here, so
# that what is measured is brokerless, not mosquitto's max_queued_messages.
set -euo pipefail
. "$(dirname "$0")/sites.sh"
N=${BL_TEST_N:-30000}
export LAB_BROKER_EXTRA="max_queued_messages 0"

bl_lab_up 2
bl_sub 2 subB 'test/burst' -F '%p'
t0=$(_lab_now_us)
# 200-byte payloads ("SEQ 000..."): big enough that one turn of the loop fills the
# link's send queue to its high-water mark.
seq 1 "$N" | awk '{ printf "%d %0195d\n", $1, 0 }' |
  lab_exec_stdin 1 mosquitto_pub -h 127.0.0.1 -V 5 -q 0 -t test/burst -l
echo "published $N at QoS 0 in $(lab_elapsed "$t0") s"
bl_wait_seq subB "$N" 60 || true
sleep 1
r=$(bl_seq_report subB 1 "$N")
assert_eq "$r" "received $N unique $N duplicates 0 missing 0 out_of_order 0" \
  "all $N QoS 0 messages of the burst arrive once, in order"
echo "note: alpha spilled QoS 0 into its queue $(bl_count 1 'QoS 0 burst over') time(s)"
lab_finish
