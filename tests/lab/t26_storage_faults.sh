#!/usr/bin/env bash
# A write the durable store loses, at each place an acknowledgement relies on. The
# test-only hook of Debug builds (BL_FAULT=NAME:N, src/queue.c) makes the N-th call of
# one write fail as a full disk would. Each time: the daemon says which write failed,
# stops with exit status 3 before acknowledging anything that depended on it, and, once
# started again without the fault, every one of the 300 QoS 2 messages of that round
# reaches bravo's subscriber exactly once, in order. The last round runs bravo with
# delivery = exactly-once and QoS 1 (the in-doubt record of the echo).
set -euo pipefail
. "$(dirname "$0")/sites.sh"
M=${BL_TEST_N:-300}

# site:write:call[:qos[:publisher options]]
CASES=(
  "1:push:50"           # alpha queues a message of its broker for bravo
  "1:next_seq:50"       # alpha numbers it
  "1:mq_in_add:50"      # alpha records the QoS 2 packet id of its broker's PUBLISH
  "1:mq_in_del:50"      # ... and forgets it at the PUBREL
  "1:ack:2"             # alpha deletes what bravo acknowledged
  "1:retained_put:50:2:-r" # alpha keeps a retained message for the retained sync
  "1:commit:20"
  "2:mark_seen:50"      # bravo marks alpha's message delivered (its ACK follows)
  "2:mq_out_add:50"     # bravo records the packet id of its QoS 2 publish
  "2:mq_out_rec:50"     # ... and the PUBREC, before the PUBREL
  "2:retained_put:50:2:-r"
  "2:commit:20"
  "2:indoubt_add:50:1"  # exactly-once: bravo's record of a delivery in doubt
)

# start_faulty SITE SPEC: start the daemon of SITE with BL_FAULT=SPEC; its exit status
# goes into its log.
start_faulty() {
  lab_bg "bl$1" "h$1" env BL_FAULT="$2" bash -c \
    '"$0" run -c "$1"; echo "exit status $?"' "$BL_BIN" "$LAB_DIR/site$1.conf"
}

bl_lab_up 2
BL_SUB_PROTO="-V 311" bl_sub 2 sub 'test/#' -F '%t %p' -c -i t26-sub

k=0
for c in "${CASES[@]}"; do
  IFS=: read -r site what call qos opts <<<"$c"
  qos=${qos:-2}
  k=$((k + 1))
  topic=test/f$k
  if [[ $what == indoubt_add ]]; then
    BL_DELIVERY=exactly-once bl_config 2 "test/# both 2" both
  fi
  bl_stop "$site"
  opened=$(bl_count "$site" 'link open via')
  start_faulty "$site" "$what:$call"
  bl_wait_open "$site" "${BL_NAMES[3 - site]}" 30 $((opened + 1)) || true
  # shellcheck disable=SC2086 # opts is a list of options
  # In steps of 10 with a pause between, so that each daemon commits many times
  # whatever its speed (an ASan build takes more per commit): the N-th call comes.
  seq 1 "$M" | perl -ne 'BEGIN { $| = 1 } print; select(undef, undef, undef, 0.02) if $. % 10 == 0' |
    lab_exec_stdin 1 mosquitto_pub -h 127.0.0.1 -V 5 -q "$qos" -t "$topic" $opts -l ||
    fail "$what: publisher failed"
  if lab_wait_for 60 grep -q 'exit status' "$(bl_log "$site")"; then
    log=$(cat "$(bl_log "$site")")
    assert_ok "$what: ${BL_NAMES[site]} names the lost write" grep -q "injected fault in $what" <<<"$log"
    assert_ok "$what: ${BL_NAMES[site]} stops as after a crash, exit status 3" \
      grep -q '^exit status 3$' <<<"$log"
  else
    fail "$what: ${BL_NAMES[site]} did not stop on the lost write"
  fi
  mv "$(bl_log "$site")" "$LAB_DIR/bl$site-$what.log"
  lab_kill "bl$site" KILL || true
  bl_start "$site"
  lab_wait_for 120 bash -c "[[ \$(grep -c '^$topic ' '$(bl_sub_out sub)') -ge $M ]]" || true
  sleep 1
  got=$(grep "^$topic " "$(bl_sub_out sub)" | awk '{ print $2 }' | awk -v m="$M" '
    { n++; if (seen[$1]++) d++; if ($1 + 0 < p) o++; p = $1 + 0 }
    END { for (i = 1; i <= m; i++) if (!(i in seen)) miss++
          printf "received %d duplicates %d missing %d out_of_order %d", n, d, miss, o }')
  assert_eq "$got" "received $M duplicates 0 missing 0 out_of_order 0" \
    "$what: all $M QoS $qos messages arrive once, in order, after the restart"
done
lab_finish
