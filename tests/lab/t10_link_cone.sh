#!/usr/bin/env bash
# Two sites behind cone NATs, on the same private subnet, find each other through the
# signalling broker and open a direct (non-relay) link; messages flow both ways with
# their QoS, retain flag and properties.
set -euo pipefail
. "$(dirname "$0")/sites.sh"

bl_lab 2 cone "test/# both 2" both
bl_open_pair 30
bl_assert_direct 1 bravo

# A -> B with properties, and B -> A.
bl_sub 2 subB 'test/#' -F '%t %p %q %r %P'
bl_sub 1 subA 'test/#' -F '%t %p %q %r'
bl_pub 1 -t test/ab -m "hello from alpha" -q 1 -D publish user-property k1 v1 \
  -D publish content-type text/plain
bl_wait_got subB 1 10 || true
got=$(bl_got subB)
assert_eq "$got" "test/ab hello from alpha 1 0 k1:v1" "alpha -> bravo: topic, payload, QoS, retain, user property"

bl_pub 2 -t test/ba -m "hello from bravo" -q 2 -r
bl_wait_got subA 2 10 || true
assert_eq "$(bl_got subA | grep test/ba)" "test/ba hello from bravo 2 1" "bravo -> alpha: QoS 2 and retain kept"

# Retained at B's broker too: a new subscriber at B gets it.
late=$(lab_exec 2 timeout -s KILL 7 mosquitto_sub -h 127.0.0.1 -t test/ba -C 1 -W 5 -F '%t %p %r' || true)
assert_eq "$late" "test/ba hello from bravo 1" "the retained message stays retained at the sending site"
late=$(lab_exec 1 timeout -s KILL 7 mosquitto_sub -h 127.0.0.1 -t test/ba -C 1 -W 5 -F '%t %p %r' || true)
assert_eq "$late" "test/ba hello from bravo 1" "the retained message is retained at the receiving site"

# Nothing echoes back or loops: each subscriber saw its own site's message (from its
# broker) and the other site's, once each.
sleep 1
assert_eq "$(bl_got subA | wc -l)" 2 "alpha's subscriber got each message once, no echo"
assert_eq "$(bl_got subB | wc -l)" 2 "bravo's subscriber got each message once, no echo"

# Topics outside the rules do not cross.
bl_sub 2 subOther 'other/#'
bl_pub 1 -t other/x -m nope -q 1
sleep 1
assert_eq "$(bl_got subOther | wc -l)" "0" "a topic outside the rules does not cross"

# The status topic tells the path.
st=$(lab_exec 2 timeout -s KILL 7 mosquitto_sub -h 127.0.0.1 -t brokerless/bravo/peers/alpha -C 1 -W 5 || true)
if grep -q '"state":"open"' <<<"$st"; then pass "status topic shows the link open: $st"; else fail "status topic: '$st'"; fi

lab_finish
