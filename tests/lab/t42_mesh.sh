#!/usr/bin/env bash
# Three sites, each peered with both others (a full mesh), each publishing 1,000 QoS 1
# messages on its own topic (test/from<i>). Every site's subscriber to test/# gets exactly
# the 3,000 (its own site's 1,000 from its own broker, the others' over the links), none
# twice, each site's stream in order; nothing loops: no daemon logs a message of a foreign
# origin, and the counts stay at 3,000 after a few more seconds. Then 1,000 QoS 0 from
# each site: again exactly 3,000 everywhere.
set -euo pipefail
. "$(dirname "$0")/sites.sh"
N=${BL_TEST_N:-1000}
S=3

bl_lab "$S" cone "test/# both 2" both
for ((i = 1; i <= S; i++)); do bl_start "$i"; done
# The smaller name offers: alpha to bravo and charlie, bravo to charlie.
bl_wait_open 1 bravo 30 && bl_wait_open 1 charlie 30 && bl_wait_open 2 charlie 30 &&
  pass "all three links open" || fail "not every link opened"
for ((i = 1; i <= S; i++)); do bl_sub "$i" "sub$i" 'test/#' -F '%t %p'; done

for ((i = 1; i <= S; i++)); do bl_pub_seq "$i" "test/from$i" 1 "$N" 1 & done
wait
for ((i = 1; i <= S; i++)); do bl_wait_got "sub$i" $((S * N)) 120 || true; done
sleep 5 # a looping message would show up as more than S*N
for ((i = 1; i <= S; i++)); do
  got=$(bl_got "sub$i")
  total=$(wc -l <<<"$got")
  uniq=$(sort -u <<<"$got" | wc -l)
  per=$(for ((j = 1; j <= S; j++)); do
    grep -c "^test/from$j " <<<"$got" || true
  done | paste -sd' ')
  assert_eq "$total $uniq" "$((S * N)) $((S * N))" \
    "site $i's subscriber got exactly $((S * N)), none twice (per origin: $per)"
  ooo=$(awk '{ if ($2 + 0 < last[$1]) o++; last[$1] = $2 + 0 } END { print o + 0 }' <<<"$got")
  assert_eq "$ooo" 0 "site $i: each origin's messages arrive in order"
done
# The same at QoS 0, which goes into each broker without an echo (No Local hides it):
# a daemon that forwarded one of them again would show it here twice, or at a third site.
for ((i = 1; i <= S; i++)); do bl_sub "$i" "zero$i" 'test/zero/#' -F '%t %p'; done
for ((i = 1; i <= S; i++)); do bl_pub_seq "$i" "test/zero/from$i" 1 "$N" 0 & done
wait
for ((i = 1; i <= S; i++)); do bl_wait_got "zero$i" $((S * N)) 60 || true; done
sleep 3
for ((i = 1; i <= S; i++)); do
  got=$(bl_got "zero$i")
  assert_eq "$(wc -l <<<"$got") $(sort -u <<<"$got" | wc -l)" "$((S * N)) $((S * N))" \
    "QoS 0: site $i's subscriber got exactly $((S * N)), none twice"
done
for ((i = 1; i <= S; i++)); do
  assert_eq "$(bl_count "$i" 'of origin')" 0 "site $i's daemon logs no message of a foreign origin (no loop)"
  lab_wait_for 15 bash -c "[[ -n \$(ip netns exec $LAB_PREFIX-h$i timeout -s KILL 4 mosquitto_sub -h 127.0.0.1 -t brokerless/${BL_NAMES[i]}/stats --retained-only -C 1 -W 2 2>/dev/null) ]]" || true
  assert_ok "site $i's stats count no bad origin" grep -q '"bad_origin":0' <<<"$(bl_retained "$i" "brokerless/${BL_NAMES[i]}/stats")"
done
lab_finish
