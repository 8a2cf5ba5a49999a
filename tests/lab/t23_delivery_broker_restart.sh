#!/usr/bin/env bash
# bravo's local broker is restarted in the middle of a 10,000-message QoS 1 stream from
# alpha. The broker is persistent (as a real one that must not lose sessions would be)
# and bravo's subscriber has a persistent session (-c, fixed id, QoS 1), so whatever the
# broker accepted reaches it. brokerless must re-publish everything the broker had not
# acknowledged: nothing is lost. Duplicates (a broker redelivering an unacknowledged
# message after its restart, allowed by QoS 1) are counted and printed, not failed.
set -euo pipefail
. "$(dirname "$0")/sites.sh"
N=${BL_TEST_N:-10000}

bl_lab_sites 2 cone
bl_persistent_broker 2
bl_config 1 "test/# both 2" both
bl_config 2 "test/# both 2" both
bl_up 2
bl_sub 2 subB 'test/load' -F '%p' -c -i t23-subB -q 1

bl_flood subB test/load "$N" 1 20 3 bl_broker_restart 2 subB
bl_assert_none_lost subB "$N" "nothing of the $N messages is lost across a restart of bravo's broker"
lab_finish
