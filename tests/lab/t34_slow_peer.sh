#!/usr/bin/env bash
# A peer that is there but does not keep up holds nobody back. Three sites in a mesh;
# charlie's daemon is frozen (SIGSTOP: its sockets stay open, its association and ICE
# agent still exist, it just reads nothing and answers nothing), then alpha publishes
# 3,000 QoS 1 messages over about 15 s:
#   - bravo's subscriber gets all 3,000, once, in order, while charlie is still frozen;
#   - alpha keeps what charlie has not acknowledged queued for it
#     (brokerless/alpha/peers/charlie shows a backlog);
#   - once charlie's daemon runs again (SIGCONT), charlie gets all 3,000, once, in order,
#     and alpha's queue for it drains.
set -euo pipefail
. "$(dirname "$0")/sites.sh"
N=${BL_TEST_N:-3000}

# retained_match SITE TOPIC PATTERN: the retained value of TOPIC at SITE matches PATTERN.
retained_match() { grep -qE "$3" <<<"$(bl_retained "$1" "$2")"; }

# frozen SITE: the site's daemon is stopped by a signal (state T in /proc).
frozen() { [[ $(awk '{ print $3 }' "/proc/$(lab_pid "bl$1")/stat" 2>/dev/null) == T ]]; }

# charlie_cont: let charlie's daemon run again (also before lab_finish on a failure path:
# a stopped process would not act on the TERM that stops it cleanly).
charlie_cont() { kill -CONT "$(lab_pid bl3)" 2>/dev/null || true; }

bl_lab_up 3
bl_wait_open 1 charlie 30 && pass "alpha's link to charlie is open" || fail "alpha-charlie link did not open"
bl_sub 2 subB 'test/slow' -F '%p'
bl_sub 3 subC 'test/slow' -F '%p'

kill -STOP "$(lab_pid bl3)"
frozen 3 && pass "charlie's daemon is frozen" || fail "charlie's daemon did not stop"

bl_pub_seq_paced 1 test/slow 1 "$N" 15
bl_wait_seq subB "$N" 60 || true
assert_eq "$(bl_seq_report subB 1 "$N")" "received $N unique $N duplicates 0 missing 0 out_of_order 0" \
  "bravo gets all $N, once, in order, while charlie does not keep up"
frozen 3 && pass "charlie's daemon was frozen all that time" || fail "charlie's daemon ran meanwhile"
lab_wait_for 20 retained_match 1 brokerless/alpha/peers/charlie '"queued":[1-9][0-9]*[,}]' &&
  pass "alpha keeps a backlog queued for charlie" ||
  fail "alpha's view of charlie: $(bl_retained 1 brokerless/alpha/peers/charlie)"

charlie_cont
bl_wait_seq subC "$N" 120 || true
sleep 3
assert_eq "$(bl_seq_report subC 1 "$N")" "received $N unique $N duplicates 0 missing 0 out_of_order 0" \
  "charlie, running again, gets all $N, once, in order"
lab_wait_for 60 retained_match 1 brokerless/alpha/peers/charlie '"queued":0[,}]' &&
  pass "alpha's queue for charlie has drained" ||
  fail "alpha's view of charlie: $(bl_retained 1 brokerless/alpha/peers/charlie)"
echo "alpha's view of its link to charlie: $(grep -cE 'peer charlie: link (open|down)' "$(bl_log 1)") link open/down lines"
lab_finish
