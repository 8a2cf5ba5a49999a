#!/usr/bin/env bash
# The Debian package, built and checked as a user would meet it: dpkg-buildpackage -b in
# a copy of the tree, dpkg -i, then systemd-analyze verify on both units, man -l on both
# pages, lintian (no errors), the user and state directory the package makes, nothing
# enabled; then it is purged again (and the brokerless user removed if this run made
# it). Run as root. Ends with "N passed, N failed".
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d /tmp/blpkg.XXXXXX)
PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   - $1"; }
ko() { FAIL=$((FAIL + 1)); echo "FAIL - $1"; }
check() { if eval "$2"; then ok "$1"; else ko "$1"; fi; }
had_user=0
getent passwd brokerless >/dev/null && had_user=1
installed=0
cleanup() {
  if ((installed)); then dpkg --purge brokerless >/dev/null 2>&1 || true; fi
  if ((!had_user)) && getent passwd brokerless >/dev/null; then deluser --system --quiet brokerless >/dev/null 2>&1 || true; fi
  rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$W/src"
tar -C "$ROOT" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$W/src" -xf -
if (cd "$W/src" && DEB_BUILD_OPTIONS=parallel=2 dpkg-buildpackage -b -us -uc) >"$W/build.log" 2>&1; then
  ok "dpkg-buildpackage -b -us -uc builds the package"
else
  ko "dpkg-buildpackage failed:"; tail -n 40 "$W/build.log"
  echo "$PASS passed, $FAIL failed"; exit 1
fi
deb=$(ls "$W"/brokerless_*.deb)
if dpkg -i "$deb" >"$W/install.log" 2>&1; then installed=1; ok "dpkg -i installs it"; else ko "dpkg -i:"; cat "$W/install.log"; fi

check "the binary runs" '[[ $(/usr/bin/brokerless version) == "brokerless 0.1.0" ]]'
help=$(/usr/bin/brokerless --help)
check "--help points to the man pages" 'grep -q "brokerless(8) and brokerless.conf(5)" <<<"$help"'
for page in /usr/share/man/man8/brokerless.8.gz /usr/share/man/man5/brokerless.conf.5.gz; do
  out=$(MANWIDTH=80 man --warnings -l "$page" 2>"$W/man.err")
  check "man -l renders $(basename "$page") without warnings" '[[ -n $out && ! -s $W/man.err ]]'
done
check "the example config is installed" '[[ -f /usr/share/doc/brokerless/examples/brokerless.conf ]]'
check "the package made the brokerless user" 'getent passwd brokerless >/dev/null'
check "and its state directory, 0700" '[[ $(stat -c "%U %a" /var/lib/brokerless) == "brokerless 700" ]]'
if command -v systemd-analyze >/dev/null; then
  mkdir -p "$W/units"
  ln -s /lib/systemd/system/brokerless@.service "$W/units/brokerless@site.service"
  out=$(systemd-analyze verify /lib/systemd/system/brokerless.service "$W/units/brokerless@site.service" 2>&1)
  check "systemd-analyze verify passes on both units${out:+: $out}" '[[ -z $out ]]'
  en=$(systemctl --root=/ is-enabled brokerless.service 2>&1 || true)
  check "nothing is enabled until configured (is-enabled: $en)" '[[ $en == disabled ]]'
else
  echo "note: no systemd-analyze here: the units are not verified"
fi
lint=$(lintian --fail-on error "$deb" 2>&1)
rc=$?
echo "$lint" | sed 's/^/  lintian: /'
check "lintian finds no error" '[[ $rc == 0 ]] && ! grep -q "^E: " <<<"$lint"'

echo "$PASS passed, $FAIL failed"
((FAIL == 0))
