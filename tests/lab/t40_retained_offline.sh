#!/usr/bin/env bash
# Retained state changed at alpha while bravo's daemon is down reaches bravo's broker once
# bravo is back:
#   test/ret/a  retained "zero" while both run (bravo has it), then, while bravo is down,
#               set to "one" and cleared (empty retained payload): bravo ends with nothing
#               retained for it;
#   test/ret/b  set to "bee" while bravo is down: bravo ends with "bee" retained;
#   test/ret/c  set to "sea" with QoS 0 while bravo is down (QoS 0 is not queued): it
#               still reaches bravo as retained, through the retained sync on link-up.
set -euo pipefail
. "$(dirname "$0")/sites.sh"

bl_lab_up 2

bl_pub 1 -q 1 -r -t test/ret/a -m zero
lab_wait_for 15 bash -c "[[ \$(ip netns exec $LAB_PREFIX-h2 timeout -s KILL 4 mosquitto_sub -h 127.0.0.1 -t test/ret/a --retained-only -C 1 -W 2 2>/dev/null) == zero ]]" &&
  pass "test/ret/a=zero is retained at bravo while both run" || fail "test/ret/a=zero never retained at bravo"

bl_stop 2
pass "bravo's daemon stopped"
bl_pub 1 -q 1 -r -t test/ret/a -m one
bl_pub 1 -q 1 -r -t test/ret/a -n
bl_pub 1 -q 1 -r -t test/ret/b -m bee
bl_pub 1 -q 0 -r -t test/ret/c -m sea
assert_eq "$(bl_retained 2 test/ret/a)" zero "bravo still has the old value while its daemon is down"
sleep 1
mv "$(bl_log 2)" "$LAB_DIR/bl2-first.log"
bl_start 2
bl_wait_open 2 alpha 60 && pass "bravo is back and the link is open" || fail "link did not come back"

lab_wait_for 30 bash -c "[[ \$(ip netns exec $LAB_PREFIX-h2 timeout -s KILL 4 mosquitto_sub -h 127.0.0.1 -t test/ret/b --retained-only -C 1 -W 2 2>/dev/null) == bee ]]" || true
lab_wait_for 30 bash -c "[[ \$(ip netns exec $LAB_PREFIX-h2 timeout -s KILL 4 mosquitto_sub -h 127.0.0.1 -t test/ret/c --retained-only -C 1 -W 2 2>/dev/null) == sea ]]" || true
sleep 2 # anything still under way lands
assert_eq "$(bl_retained 2 test/ret/b)" bee "bravo's broker retains test/ret/b=bee, set while bravo was down"
assert_eq "$(bl_retained 2 test/ret/c)" sea "bravo's broker retains test/ret/c=sea, a QoS 0 retained set while bravo was down"
assert_eq "$(bl_retained 2 test/ret/a)" "" "test/ret/a, cleared while bravo was down, is no longer retained at bravo"
# And nothing the sync carried went back to alpha changed.
assert_eq "$(bl_retained 1 test/ret/a)|$(bl_retained 1 test/ret/b)|$(bl_retained 1 test/ret/c)" "|bee|sea" \
  "alpha's retained state is unchanged"
grep -E 'retained sync' "$(bl_log 1)" | tail -2 || true
lab_finish
