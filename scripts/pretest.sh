#!/usr/bin/env bash
# Installs the Debian packages the integration tests drive for real (sshd, …) when they are missing.
# Runs before `npm test`; silent and well under a second when everything is already there.
set -euo pipefail

# Debian packages the test suite needs; later issues add theirs here (postgresql, iptables, …).
PACKAGES="openssh-server openssh-client tigervnc-standalone-server asciinema chromium"

# The file a package must have put in place, where dpkg's word alone is not enough; empty = trust dpkg.
probe_file() {
  case "$1" in
    openssh-server) echo /usr/sbin/sshd ;;
    openssh-client) echo /usr/bin/ssh ;;
    tigervnc-standalone-server) echo /usr/bin/Xtigervnc ;;
    asciinema) echo /usr/bin/asciinema ;;
    chromium) echo /usr/bin/chromium ;;
    *) echo "" ;;
  esac
}

# What goes untested without a package, for the line printed when it cannot be installed.
tests_needing() {
  case "$1" in
    openssh-server | openssh-client) echo "SSH integration tests (test/helpers/sshd.ts)" ;;
    tigervnc-standalone-server) echo "the VNC session test (test/vnc-session.test.ts)" ;;
    asciinema) echo "the recording playback check (test/shell.test.ts)" ;;
    chromium) echo "the dashboard tests in a real browser (test/dashboard.test.ts)" ;;
    *) echo "tests that need $1" ;;
  esac
}

missing=()
for pkg in $PACKAGES; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  probe=$(probe_file "$pkg")
  if [ "$status" != "installed" ] || { [ -n "$probe" ] && ! command -v "$probe" >/dev/null; }; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then why="not running as root"; else why="no apt-get on this system"; fi
  skipped=$(for pkg in "${missing[@]}"; do tests_needing "$pkg"; done | sort -u | paste -sd ',' | sed 's/,/, /g')
  echo "pretest: ${missing[*]} missing and not installable ($why); these tests will be skipped: $skipped"
  exit 0
fi

echo "pretest: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# apt's chatter (debconf notes, progress) goes to a log that is shown only if the install fails.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The lock timeout waits out an apt run already in progress instead of failing on its lock.
if ! { apt-get update -qq -o DPkg::Lock::Timeout=300 &&
  # --reinstall restores a package whose files were removed by hand while dpkg still lists it.
  apt-get install -y -qq -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 --reinstall --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "pretest: installing ${missing[*]} failed" >&2
  exit 1
fi
