#!/usr/bin/env bash
# A pinned peer must not be able to stop a site, nor reach beyond its rules (issue 12,
# items 1-4). bravo here is blpeer (tests/lab/blpeer.c): a real site, pinned by alpha,
# that speaks the real protocol and then sends what no well-behaved site would:
#   A. one 14 MB MSG frame of 2 million empty user properties, then a plain message:
#      alpha refuses the frame (too big) before it copies any of them, and the plain
#      message still arrives;
#   B. with the rule "# in 2 "" bravo/", the wire topic "bravo/$test/x": alpha does not
#      publish "$test/x" (a '$' topic, with its own broker rights), "bravo/ok/x" still
#      arrives as "ok/x";
#   C. Response Topics: one that alpha's out-rules carry back crosses, one they do not
#      ("alarm/disarm") is dropped from the message;
#   D. a flood of retained topics and bytes: alpha keeps at most its retained caps for
#      bravo (retained_max_topics 50, retained_max_bytes 300000), delivers the rest as
#      not retained, and counts them (stats: retained_refused);
#   F. a message whose origin is another site (charlie): dropped (split horizon), counted;
#   E. with alpha's broker away, 3000 messages with 60 kB of user properties each and a
#      one-byte payload: alpha counts the properties in its backpressure and stops taking
#      frames (its memory stays below holding them all); once the broker is back, all
#      3000 are delivered and acknowledged.
set -euo pipefail
. "$(dirname "$0")/sites.sh"
PEER=$(bl_tool blpeer)

bl_lab_sites 2 cone
bl_config 1 '# in 2 "" bravo/' stun 'topic = replies/# out 2
retained_max_topics = 50
retained_max_bytes = 300000'
bl_config 2 '# both 2' stun

bl_start 1
bl_sub 1 subA '#' -t '$test/#' -F '%t %p R=%R'
lab_bg blpeer h2 "$PEER" -c "$LAB_DIR/site2.conf" \
  'msg,topic=bravo/flood,props=2000000' \
  'msg,topic=bravo/after-flood,payload=alive' \
  'msg,topic=bravo/$test/x,payload=dollar' \
  'msg,topic=bravo/ok/x,payload=plain' \
  'msg,topic=bravo/req/1,payload=r1,rt=replies/1' \
  'msg,topic=bravo/req/2,payload=r2,rt=alarm/disarm' \
  'msg,topic=bravo/big/%d,retain=1,count=5,payload_size=100000' \
  'msg,topic=bravo/r/%d,retain=1,count=200,payload=v' \
  'msg,topic=bravo/spoof,origin=charlie,payload=s'
assert_ok "the hostile peer's link opens" lab_wait_for 30 grep -q 'blpeer: link open' "$LAB_DIR/blpeer.log"

# A: 2 million user properties.
assert_ok "a message sent after 2 million user properties still arrives" \
  lab_wait_for 60 grep -q '^after-flood alive' "$(bl_sub_out subA)"
assert_eq "$(bl_count 1 'dropped a bad frame of [0-9]+ bytes from the peer: a MSG property block over the limit')" 1 \
  "alpha refused the 14 MB frame of properties as too big"
assert_ok "alpha's daemon is still running" lab_running bl1

# B, C, D and F: every message bravo sent is acknowledged but the refused frame
# (1 + 1 + 1 + 2 + 5 + 200 + 1 of 212).
assert_ok "alpha acknowledged the other 211 messages" \
  lab_wait_for 60 grep -q 'blpeer: acked 211$' "$LAB_DIR/blpeer.log"
got=$(bl_got subA)
assert_eq "$(grep -c '^\$test' <<<"$got" || true)" 0 "nothing was published on a '\$' topic"
assert_ok "alpha warned about the '\$' topic" grep -q "peer sent a message on bravo/\$test/x, which our rules would publish on a '\\\$' topic" "$(bl_log 1)"
assert_eq "$(grep '^ok/x' <<<"$got")" "ok/x plain R=" "a plain topic behind the prefix arrives"
assert_eq "$(grep '^req/1' <<<"$got")" "req/1 r1 R=replies/1" \
  "a response topic the out-rules carry back crosses"
assert_eq "$(grep '^req/2' <<<"$got")" "req/2 r2 R=" \
  "a response topic they do not carry back is dropped"

# F: split horizon.
assert_eq "$(grep -c '^spoof' <<<"$got" || true)" 0 "a message of another origin is not delivered"
assert_ok "alpha says bravo sent a message of origin charlie" \
  grep -q 'bravo: peer sent a message of origin "charlie", dropped' "$(bl_log 1)"

# D: the retained caps.
retained() { lab_exec 1 timeout -s KILL 8 mosquitto_sub -h 127.0.0.1 -V 5 -t "$1" --retained-only -W 3 -F '%t' 2>/dev/null || true; }
assert_eq "$(retained 'big/#' | wc -l)" 2 "2 of 5 retained 100 kB messages fit in 300000 bytes"
assert_eq "$(retained 'r/#' | wc -l)" 48 "the topic cap (50) keeps 48 more"
assert_eq "$(grep -c '^r/' <<<"$got")" 200 "all 200 reached the live subscriber all the same"
# stats_has TEXT: alpha's retained stats (published every 10 s) contain TEXT.
stats_has() {
  local st
  st=$(lab_exec 1 timeout -s KILL 4 mosquitto_sub -h 127.0.0.1 -t brokerless/alpha/stats -C 1 -W 2 2>/dev/null || true)
  [[ $st == *"$1"* ]]
}
assert_ok "alpha counts 155 retained messages refused" lab_wait_for 25 stats_has '"retained_refused":155'
assert_ok "and one of a bad origin" stats_has '"bad_origin":1'

lab_kill blpeer
lab_kill subA

# E: property bytes count in the backpressure. A small SCTP window (max_message_size
# 1M) so that what alpha holds is what it took from the link.
bl_stop 1
sed -i '/^\[site\]/a max_message_size = 1M' "$LAB_DIR/site1.conf"
bl_start 1
lab_stop_site_broker 1 && pass "alpha's broker is down" || fail "alpha's broker did not stop"
mv "$LAB_DIR/blpeer.log" "$LAB_DIR/blpeer-first.log"
lab_bg blpeer h2 "$PEER" -c "$LAB_DIR/site2.conf" 'msg,topic=bravo/bp/%d,count=3000,propbytes=60000,payload=x'
assert_ok "alpha stops taking frames: 60 kB of properties per message count" \
  lab_wait_for 60 grep -q 'not taking more from peers' "$(bl_log 1)"
sleep 3 # bravo keeps trying to send: alpha's memory must not follow
# While its broker is away; 3000 x 60 kB = 172 MiB were sent.
bl_assert_peak_mem 1 140 "stays below holding them all"
lab_start_site_broker 1 && pass "alpha's broker is back" || fail "alpha's broker did not start"
assert_ok "all 3000 are delivered and acknowledged once the broker is back" \
  lab_wait_for 120 grep -q 'blpeer: acked 3000$' "$LAB_DIR/blpeer.log"
lab_kill blpeer
lab_finish
