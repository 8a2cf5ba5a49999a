#!/usr/bin/env bash
# Two sites behind symmetric NATs: hole punching cannot work, so the link comes up
# through the coturn relay on the public host, and messages flow.
set -euo pipefail
. "$(dirname "$0")/sites.sh"

bl_lab 2 symmetric "test/# both 2" both
bl_open_pair 40 "through symmetric NATs"
assert_eq "$(bl_path 1 bravo)" "relay" "alpha reports a relay path"
assert_eq "$(bl_path 2 alpha)" "relay" "bravo reports a relay path"

bl_sub 2 subB 'test/#' -F '%t %p %q'
bl_sub 1 subA 'test/#' -F '%t %p %q'
for k in 1 2 3; do bl_pub 1 -t test/ab -m "a$k" -q 1; done
for k in 1 2 3; do bl_pub 2 -t test/ba -m "b$k" -q 1; done
bl_wait_got subB 6 15 || true
bl_wait_got subA 6 15 || true
assert_eq "$(bl_got subB | grep test/ab | tr '\n' ' ')" "test/ab a1 1 test/ab a2 1 test/ab a3 1 " "alpha -> bravo through the relay, in order"
assert_eq "$(bl_got subA | grep test/ba | tr '\n' ' ')" "test/ba b1 1 test/ba b2 1 test/ba b3 1 " "bravo -> alpha through the relay, in order"

lab_finish
