#!/usr/bin/env bash
# One site holds a secure WebRTC peer and an ESP32 running the example at once: alpha is
# linked to bravo (webrtc) and to the board at the cabin (esp32-example). The board
# reaches the mesh only through alpha, so alpha forwards what it sends to bravo and what
# bravo sends to it, as if its own clients had published them. Each message published
# anywhere reaches each other side exactly once, and never comes back.
set -euo pipefail
HERE=$(dirname "$0")
. "$HERE/sites.sh" # loads lab.sh too
. "$HERE/esp32.sh"

esp_lab 3
esp_config 1 "$(esp_site_section 2 'test/# both 1')$(esp_peer_section cabin peer2 'test/# both 1')"
esp_config 2 "$(esp_site_section 1 'test/# both 1')"
bl_start 1
bl_start 2
esp_start board 3 peer1
if bl_wait_open 1 bravo 30 && bl_wait_open 2 alpha 30; then pass "alpha <-> bravo open"; else fail "alpha <-> bravo did not open"; fi
if bl_wait_open 1 cabin 60; then pass "alpha <-> board open"; else fail "alpha <-> board did not open"; fi

N=20
bl_sub 1 s1 'test/#' -F '%t %p'
bl_sub 2 s2 'test/#' -F '%t %p'
bl_sub 3 s3 'test/#' -F '%t %p'
for ((i = 1; i <= N; i++)); do bl_pub 3 -t "test/board/$i" -m "b$i"; done
for ((i = 1; i <= N; i++)); do bl_pub 2 -t "test/bravo/$i" -m "v$i" -q 1; done
for ((i = 1; i <= N; i++)); do bl_pub 1 -t "test/alpha/$i" -m "a$i" -q 1; done
for s in s1 s2 s3; do bl_wait_got "$s" $((3 * N)) 30 || true; done
sleep 2 # anything arriving twice would come now
for s in s1 s2 s3; do
  for from in board bravo alpha; do
    assert_eq "$(bl_got "$s" | grep -c "^test/$from/")" "$N" "$s got each message from $from once"
  done
done
assert_eq "$(bl_count 1 'peer sent a message of origin')" 0 "no split-horizon refusals at alpha"
assert_eq "$(bl_count 2 'peer sent a message of origin')" 0 "no split-horizon refusals at bravo"
lab_finish
