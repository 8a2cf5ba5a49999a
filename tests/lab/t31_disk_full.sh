#!/usr/bin/env bash
# alpha's state directory is on a 4 MiB filesystem. With bravo's daemon down, alpha
# queues a QoS 1 stream of 2 KiB messages until the disk is full: the daemon then stops
# (as a crash would) and says why, having acknowledged to its broker nothing it could
# not store. With room again and both daemons back, every message reaches bravo's
# subscriber. Duplicates are printed, not failed (what alpha had stored but not yet
# acknowledged comes again from its broker: QoS 1 is at least once).
set -euo pipefail
. "$(dirname "$0")/sites.sh"
N=${BL_TEST_N:-4000}

bl_lab 2 cone "test/# both 2" both
mv "$LAB_DIR/state1" "$LAB_DIR/state1.init"
lab_tmpfs "$LAB_DIR/state1" 4m
cp -a "$LAB_DIR/state1.init/." "$LAB_DIR/state1/"
bl_up 2
bl_sub 2 subB 'test/full' -F '%p'
bl_stop 2
# 2 KiB payloads ("SEQ 000..."): N of them are twice the filesystem.
seq 1 "$N" | awk '{ printf "%d %02040d\n", $1, 0 }' |
  lab_exec_stdin 1 mosquitto_pub -h 127.0.0.1 -V 5 -q 1 -t test/full -l
pass "the publisher handed all $N to alpha's broker"
pid=$(lab_pid bl1) || pid=""
if [[ -n $pid ]] && lab_wait_for 60 bash -c "! kill -0 $pid 2>/dev/null"; then
  pass "alpha's daemon stopped when its disk was full"
else
  fail "alpha's daemon still runs on a full disk"
fi
assert_ok "it says why" grep -q "disk full or failing?): stopping now, as after a crash" "$(bl_log 1)"
echo "alpha: $(grep -E 'ERROR' "$(bl_log 1)" | awk 'NR <= 3')"
df -h "$LAB_DIR/state1" | tail -1

mount -o remount,size=64m "$LAB_DIR/state1"
mv "$(bl_log 1)" "$LAB_DIR/bl1-full.log"
bl_start 1
bl_start 2
bl_wait_open 1 bravo 60 && pass "both daemons back, link open" || fail "link did not come back"
bl_assert_none_lost subB "$N" \
  "all $N arrive after the disk was full (nothing acknowledged to alpha's broker is lost)"
lab_finish
