#!/usr/bin/env bash
# A board that is not there, with us as peer1 (we say "0"): the daemon keeps trying with
# the example's timing, one "0" a second on the broker, and costs nothing meanwhile (its
# CPU time over the wait is printed, not asserted). When the board (peer2) comes, they
# pair; when it reboots it is silent (peer2 waits for our "0"), so the site notices only
# when ICE consent runs out, and pairs again by itself.
set -euo pipefail
. "$(dirname "$0")/esp32.sh"

esp_lab 2
esp_config 1 "$(esp_peer_section cabin peer1 'test/# both 1')" nosignal

# What the daemon says on the broker, as anyone there sees it.
lab_bg watch pub mosquitto_sub -h "$LAB_PUB_IP" -t /topic/serverless_mqtt1 -v
lab_wait_for 5 grep -q 'serverless_mqtt1 (QoS 0)' "$LAB_DIR/pub-broker.log" || fail "the broker watcher did not subscribe"
bl_start 1
lab_wait_for 10 grep -q 'looking for the peer' "$(bl_log 1)" || true
pid=$(lab_pid bl1)
t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
sleep 10
t2=$(awk '{print $14 + $15}' "/proc/$pid/stat")
zeros=$(grep -c '^/topic/serverless_mqtt1 0$' "$LAB_DIR/watch.log" || true)
if ((zeros >= 5 && zeros <= 15)); then
  pass "about one handshake a second while the board is away ($zeros in ~10 s)"
else
  fail "expected about 10 handshakes in ~10 s, saw $zeros"
fi
echo "# daemon CPU over 10 s of waiting: $((t2 - t1)) ticks of 1/$(getconf CLK_TCK) s"
assert_eq "$(bl_count 1 'looking for the peer')" 1 "one line for the attempt under way"
assert_eq "$(bl_count 1 "WARN peer cabin")" 0 "no warning about the peer while a board is simply away"

esp_start board 2 peer2
if bl_wait_open 1 cabin 70 && esp_wait board 'boot 1: ice connected' 30; then pass "the board came and paired"; else fail "no pair with the board"; fi
bl_sub 2 cabin 'test/#' -F '%t %p'
bl_sub 1 home 'test/#' -F '%t %p'
bl_pub 1 -t test/home/1 -m hello -q 1
bl_pub 2 -t test/cabin/1 -m hi
bl_wait_got cabin 2 10 || true
bl_wait_got home 2 10 || true
assert_eq "$(bl_got cabin | grep -c '^test/home/1 hello')" 1 "home -> board"
assert_eq "$(bl_got home | grep -c '^test/cabin/1 hi')" 1 "board -> home"

# The board reboots as peer2: silent until our next "0", which comes once the old path's
# consent has run out on our side.
if esp_reboot_repair board 1 cabin 90; then
  pass "paired again $ESP_REPAIR_S s after the board's silent reboot"
else
  fail "no second pair after the board rebooted"
fi
assert_eq "$(bl_count 1 'link down: ice: path lost')" 1 "the site saw the old path die (consent)"
bl_pub 2 -t test/cabin/2 -m again
bl_wait_got home 3 10 || true
assert_eq "$(bl_got home | grep -c '^test/cabin/2 again')" 1 "board -> home after the reboot"
lab_finish
