#!/usr/bin/env bash
# What a message carries crosses intact, and size and expiry limits hold:
#   - MQTT 5 properties (user properties, content type, response topic, correlation
#     data, payload format indicator, message expiry) arrive at bravo; a message without
#     them arrives without them;
#   - a message with a 2 s expiry queued while bravo's daemon is down for 5 s is not
#     delivered later, and alpha counts it ("expired" in brokerless/alpha/stats);
#   - an 8 MiB payload arrives byte for byte; a 17 MiB one (over max_message_size 16M)
#     is refused at alpha with a log line naming topic and size, and the next small
#     message still arrives.
set -euo pipefail
. "$(dirname "$0")/sites.sh"
# The site brokers also log subscriptions ("CLIENT QOS TOPIC"): readiness of the
# one-shot subscriber of the big payload.
# shellcheck disable=SC2034 # read by lab_start_site_broker
LAB_BROKER_EXTRA="max_queued_messages 0
log_type subscribe"

# retained_match SITE TOPIC PATTERN: the retained value of TOPIC at SITE matches PATTERN.
retained_match() { grep -qE "$3" <<<"$(bl_retained "$1" "$2")"; }

bl_lab_up 2

# ---- properties
bl_sub 2 subP 'test/props' -F '%t|%C|%R|%D|%F|%E|%P|%p'
bl_pub 1 -q 1 -t test/props -m with-props \
  -D publish user-property k1 v1 -D publish user-property k2 v2 -D publish user-property k1 v3 \
  -D publish content-type text/plain -D publish response-topic test/reply \
  -D publish correlation-data abc123 -D publish payload-format-indicator 1 \
  -D publish message-expiry-interval 60
bl_pub 1 -q 1 -t test/props -m no-props
bl_wait_got subP 2 30 || true
got=$(bl_got subP | grep '|with-props$' || true)
IFS='|' read -r _ ctype rtopic corr pfi expiry uprops _ <<<"$got"
assert_eq "$ctype" text/plain "content type crosses"
assert_eq "$rtopic" test/reply "response topic crosses"
assert_eq "$corr" abc123 "correlation data crosses"
assert_eq "$pfi" 1 "payload format indicator crosses"
assert_eq "$uprops" "k1:v1 k2:v2 k1:v3" "three user properties cross, in order, a repeated key kept"
if [[ $expiry =~ ^[0-9]+$ ]] && ((expiry >= 1 && expiry <= 60)); then
  pass "message expiry arrives counted down ($expiry s of 60 left)"
else
  fail "message expiry of 60 s arrived as '$expiry'"
fi
assert_eq "$(bl_got subP | grep '|no-props$' || true)" "test/props|||||||no-props" \
  "a message without properties arrives without any"

# ---- expiry while the peer is away
bl_sub 2 subE 'test/exp' -F '%p'
bl_stop 2
bl_pub 1 -q 1 -t test/exp -m short-lived -D publish message-expiry-interval 2
bl_pub 1 -q 1 -t test/exp -m long-lived
sleep 5
mv "$(bl_log 2)" "$LAB_DIR/bl2-first.log"
bl_start 2
bl_wait_open 2 alpha 60 && pass "bravo back after 5 s away" || fail "link did not come back"
bl_wait_got subE 1 60 || true
sleep 2
assert_eq "$(bl_got subE | tr '\n' ' ')" "long-lived " \
  "the message with a 2 s expiry is not delivered after 5 s in the queue; the one without is"
lab_wait_for 30 retained_match 1 brokerless/alpha/stats '"expired":[1-9]' &&
  pass "alpha counts the expired message: $(bl_retained 1 brokerless/alpha/stats | grep -oE '"expired":[0-9]+')" ||
  fail "alpha's stats do not count it: $(bl_retained 1 brokerless/alpha/stats)"

# ---- large payloads
lab_bg subL h2 mosquitto_sub -h 127.0.0.1 -V 5 -q 1 -i t41-subL -t test/big8 -t test/big17 -t test/after -F '%t %l'
lab_wait_for 10 grep -q 't41-subL 1 test/after' "$LAB_DIR/site2-broker.log" || fail "size subscriber did not subscribe"
head -c 8M /dev/urandom >"$LAB_DIR/big8"
head -c 17M /dev/urandom >"$LAB_DIR/big17"
lab_bg big8sub h2 bash -c "exec mosquitto_sub -h 127.0.0.1 -V 5 -q 1 -i t41-big8 -t test/big8 -C 1 -N >'$LAB_DIR/big8.out'"
lab_wait_for 10 grep -q 't41-big8 1 test/big8' "$LAB_DIR/site2-broker.log" || fail "8 MiB subscriber did not subscribe"
bl_pub 1 -q 1 -t test/big8 -f "$LAB_DIR/big8"
lab_wait_for 60 eval '! lab_running big8sub' || true
assert_eq "$(sha256sum <"$LAB_DIR/big8.out" | cut -d' ' -f1)" "$(sha256sum <"$LAB_DIR/big8" | cut -d' ' -f1)" \
  "an 8 MiB payload arrives intact (sha256)"
bl_pub 1 -q 1 -t test/big17 -f "$LAB_DIR/big17"
bl_pub 1 -q 1 -t test/after -m after
bl_wait_got subL 2 60 || true
sleep 2
assert_eq "$(bl_got subL | tr '\n' ',')" "test/big8 8388608,test/after 5," \
  "the 17 MiB message is not delivered; the small one after it is"
assert_ok "alpha's log names the refused message's topic and size" \
  grep -q 'refused a message on test/big17: 17825792 bytes' "$(bl_log 1)"
rm -f "$LAB_DIR/big8" "$LAB_DIR/big17" "$LAB_DIR/big8.out"
lab_finish
