# shellcheck shell=bash
# esp32.sh - the lab's ESP32 boards beside brokerless sites (on top of lab.sh, sites.sh).
#
# A board is tests/lab/esppeer/esppeer.mjs: Espressif's serverless_mqtt example (libjuice
# variant) played by werift-ice and mqtt.js in a site's host, bridging that site's own
# mosquitto (lab_start_site_broker) as the board bridges the broker it runs. It meets
# brokerless on the lab's public broker, topic base /topic/serverless_mqtt.
#
#   bl_sites 2; esp_config 1 "$(esp_peer_section cabin peer2 'test/# both 1')"
#   bl_start 1; esp_start board 2 peer1; bl_wait_open 1 cabin 60

# Load sites.sh (and through it lab.sh), which the boards stand beside, unless the caller
# already did.
declare -F bl_sites >/dev/null || . "$(dirname "${BASH_SOURCE[0]}")/sites.sh"

ESP_PEER=${BL_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}/tests/lab/esppeer

# esp_check: node and the board's npm packages are there (scripts/deps.sh installs them).
esp_check() {
  if ! command -v node >/dev/null || [[ ! -d $ESP_PEER/node_modules/werift-ice ]]; then
    fail "the lab's ESP32 needs node and its packages: run scripts/deps.sh"
    lab_finish
    exit 1
  fi
}

# esp_lab N: the lab of an ESP32 test: N sites behind cone NATs, the public broker and
# coturn, every site's broker and identity (bl_lab_sites N cone), and esp_check (the
# board's node packages are there). The configs are the caller's.
esp_lab() {
  bl_lab_sites "$1" cone
  esp_check
}

# esp_config SITE SECTIONS [SIGNAL]: site SITE's config: [site], [local], [ice] (the lab's
# STUN), [signal] (the lab's broker and secret) unless SIGNAL is "nosignal", then SECTIONS.
esp_config() {
  local i=$1 f=$LAB_DIR/site$1.conf
  {
    bl_config_head "$i" "${3:-}"
    echo
    bl_config_ice stun
    echo "$2"
  } >"$f"
}

# esp_peer_section NAME ROLE RULE: the [peer NAME] section for a board; ROLE is ours.
esp_peer_section() {
  printf '\n[peer %s]\nmode = esp32-example\ninsecure = true\nrole = %s\nbroker = mqtt://%s:1883\ntopic = %s\n' \
    "$1" "$2" "$LAB_PUB_IP" "$3"
}

# esp_site_section J RULE: the [peer] section for lab site J, a brokerless site.
esp_site_section() {
  printf '\n[peer %s]\nfingerprint = %s\ntopic = %s\n' "${BL_NAMES[$1]}" "${BL_FP[$1]}" "$2"
}

# esp_start NAME SITE ROLE [ARGS...]: a board in site SITE's host, log $LAB_DIR/NAME.log.
esp_start() {
  lab_bg "$1" "h$2" node "$ESP_PEER/esppeer.mjs" --role "$3" --broker "mqtt://$LAB_PUB_IP:1883" \
    --stun "$LAB_PUB_IP:3478" --local mqtt://127.0.0.1:1883 "${@:4}"
}
esp_log() { echo "$LAB_DIR/$1.log"; }
# esp_count NAME PATTERN: lines of board NAME's log matching PATTERN (grep -E).
esp_count() { grep -cE "$2" "$(esp_log "$1")" 2>/dev/null || true; }
# esp_wait NAME PATTERN TIMEOUT [N]: until board NAME's log has N (default 1) such lines.
esp_wait() {
  lab_wait_for "$3" bash -c "[[ \$(grep -cE '$2' '$(esp_log "$1")' 2>/dev/null) -ge ${4:-1} ]]"
}

# esp_reboot_repair NAME SITE PEER TIMEOUT: reboot board NAME (its first reboot: SIGUSR1)
# and wait until site SITE's second link to PEER is open (within TIMEOUT s) and the board
# says 'boot 2: ice connected' (within 30 s more); ESP_REPAIR_S is how long it all took.
# shellcheck disable=SC2034 # ESP_REPAIR_S is read by the tests
esp_reboot_repair() {
  local t0
  t0=$(_lab_now_us)
  kill -USR1 "$(lab_pid "$1")"
  bl_wait_open "$2" "$3" "$4" 2 && esp_wait "$1" 'boot 2: ice connected' 30 || return 1
  ESP_REPAIR_S=$(lab_elapsed "$t0")
}
