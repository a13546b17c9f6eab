#!/usr/bin/env bash
# Checks the package scripts/package-deb.sh built: unpacks it into a throwaway root (no
# maintainer scripts run, nothing touches this system), checks its files, conffiles and man page,
# runs the installed binary (--version, --config.check on the shipped config, --demo until it
# serves yeastar_up 1) and verifies the installed systemd unit with systemd-analyze.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(ls target/debian/yeastar-exporter_*.deb | head -1)
root=$(mktemp -d)
demo=""
cleanup() { if [ -n "$demo" ]; then kill "$demo" 2>/dev/null || true; fi; rm -rf "$root"; }
trap cleanup EXIT
echo "package: $deb ($(du -k "$deb" | cut -f1) KiB)"
dpkg-deb --field "$deb" Package Version Architecture Depends
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$root/DEBIAN"
unit=$(find "$root" -name yeastar-exporter.service -path '*systemd/system*' | head -1)
for f in usr/bin/yeastar-exporter usr/share/man/man1/yeastar-exporter.1.gz \
         etc/yeastar-exporter/yeastar-exporter.yml etc/default/yeastar-exporter \
         usr/share/doc/yeastar-exporter/examples/alerts.yml \
         usr/share/doc/yeastar-exporter/examples/yeastar-pbx.json; do
  [ -e "$root/$f" ] || { echo "missing /$f"; exit 1; }
done
[ -n "$unit" ] || { echo "missing the systemd unit"; exit 1; }
for c in /etc/yeastar-exporter/yeastar-exporter.yml /etc/default/yeastar-exporter; do
  grep -qx "$c" "$root/DEBIAN/conffiles" || { echo "$c is not a conffile"; exit 1; }
done
# Not enabled or started on install: it needs a PBX first.
if grep -q 'deb-systemd-invoke start' "$root/DEBIAN/postinst" 2>/dev/null; then
  echo "the package starts the service on install"; exit 1
fi
# The man page is the --help text: every flag is in it (roff escapes the dashes).
zcat "$root/usr/share/man/man1/yeastar-exporter.1.gz" | grep -qF 'state\-dir <PBX_STATE_DIR>' \
  || { echo "the man page lacks the flags"; exit 1; }
bin="$root/usr/bin/yeastar-exporter"
"$bin" --version
# The shipped config, with the credential and CA paths pointed at test files.
echo -n 'demo-password' > "$root/password"
cp deploy/kubernetes/pbx-ca.pem "$root/pbx-ca.pem"
sed -e "s#/run/credentials/yeastar-exporter.service/pbx-password#$root/password#" \
    -e "s#/etc/yeastar-exporter/pbx-ca.pem#$root/pbx-ca.pem#" \
    "$root/etc/yeastar-exporter/yeastar-exporter.yml" > "$root/check.yml"
"$bin" --config.check --config.file "$root/check.yml"
# --demo, served on a free port, until it answers yeastar_up 1.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" --demo --web.listen-address "127.0.0.1:$port" 2>"$root/demo.log" &
demo=$!
for _ in $(seq 1 100); do
  if python3 - "$port" <<'PY' 2>/dev/null
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=2).read().decode()
sys.exit(0 if "\nyeastar_up 1\n" in body else 1)
PY
  then up=1; break; fi
  sleep 0.2
done
kill "$demo"; wait "$demo" 2>/dev/null || true; demo=""
[ "${up:-0}" = 1 ] || { echo "the installed binary's --demo never served yeastar_up 1"; cat "$root/demo.log"; exit 1; }
echo "installed --demo: yeastar_up 1 on :$port"
# The installed unit as systemd reads it. Only the binary's path is pointed at the unpacked one
# (the unit is not installed on this system); its man page is checked above, not through man(1).
mkdir -p "$root/verify"
sed "s#/usr/bin/yeastar-exporter#$root/usr/bin/yeastar-exporter#" "$unit" > "$root/verify/yeastar-exporter.service"
out=$(systemd-analyze verify --man=no "$root/verify/yeastar-exporter.service" 2>&1) || { echo "$out"; exit 1; }
# verify exits 0 on some findings; none is acceptable.
if [ -n "$out" ]; then echo "$out"; exit 1; fi
echo "systemd-analyze verify ${unit#"$root"}: clean"
