#!/usr/bin/env bash
# Checks the package scripts/package-deb.sh built, in two parts.
#
# 1. Unpacked into a throwaway directory (no maintainer scripts): its files, their modes, the
#    conffiles, the man page, the installed binary's --version and --demo, and the installed unit
#    through systemd-analyze verify.
# 2. Installed and run as its unit runs it, by a real systemd: a Debian root made with debootstrap
#    from the host's release is booted with systemd-nspawn (systemd as PID 1 of the container,
#    sharing the host's network; no systemd is needed on the host). Inside it, as an admin would on
#    a fresh host: `apt-get install ./the.deb`, the PBX's certificate saved with openssl s_client,
#    the password written to its one home (/etc/yeastar-exporter/password, root 0600), the
#    conffile pointed at a simulated PBX (`yeastar-exporter simulate`, HTTPS, on the host's
#    loopback), `--config.check` as root, `systemctl enable --now`, then /probe?target=office must
#    answer yeastar_up 1. systemd itself parses the unit, runs ExecStart as the DynamicUser with
#    the LoadCredential copy, the StateDirectory and every sandboxing setting; the script checks
#    the running process's uid, capabilities, no_new_privs and seccomp, reload and stop.
#
# Needs root (re-runs itself with sudo) and the Debian mirror (debootstrap, about 1 min and 90 MB;
# CHECK_DEB_ROOT_CACHE=DIR keeps the base root there for the next run). Installs debootstrap,
# systemd-container and systemd when missing. Nothing on the host is installed or configured:
# everything lives in one temporary directory, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then exec sudo -- bash "$0" "$@"; fi
need=()
for t in debootstrap:debootstrap systemd-nspawn:systemd-container systemd-analyze:systemd \
         nsenter:util-linux openssl:openssl curl:curl python3:python3; do
  command -v "${t%%:*}" >/dev/null 2>&1 || need+=("${t#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

deb=$(ls target/debian/yeastar-exporter_*.deb | head -1)
work=$(mktemp -d /var/tmp/yeastar-deb.XXXXXX)
root="$work/unpacked"
guest="$work/guest"
pids=()
nspawn=""
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$nspawn" ] && kill -0 "$nspawn" 2>/dev/null; then
    kill -TERM "$nspawn" 2>/dev/null || true   # nspawn asks the container's systemd to halt
    for _ in $(seq 1 50); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$nspawn" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

echo "== 1. the package, unpacked"
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
# The service's DynamicUser reads the config directory and file: root-owned, readable by all.
listing=$(dpkg-deb -c "$deb")
for want in 'drwxr-xr-x root/root ./etc/yeastar-exporter/' \
            '-rw-r--r-- root/root ./etc/yeastar-exporter/yeastar-exporter.yml'; do
  mode=${want%% *}; path=${want##* }
  got=$(awk -v p="$path" '$6 == p { print $1, $2 }' <<<"$listing")
  case "$got" in "$mode root/root"|"$mode 0/0") ;; *) echo "$path is '$got', not '$mode root/root'"; exit 1;; esac
done
if awk '{ print $6 }' <<<"$listing" | grep -q '^./etc/yeastar-exporter/password$'; then
  echo "the package ships a password file"; exit 1
fi
# Not enabled or started on install: it needs a PBX first.
if grep -q 'deb-systemd-invoke start' "$root/DEBIAN/postinst" 2>/dev/null; then
  echo "the package starts the service on install"; exit 1
fi
# The man page is the --help text: every flag is in it (roff escapes the dashes).
zcat "$root/usr/share/man/man1/yeastar-exporter.1.gz" | grep -qF 'state\-dir <PBX_STATE_DIR>' \
  || { echo "the man page lacks the flags"; exit 1; }
bin="$root/usr/bin/yeastar-exporter"
"$bin" --version
wait_for() { # URL PATTERN: until the page at URL has a line matching PATTERN (20 s)
  for _ in $(seq 1 100); do
    if curl -fsS --max-time 2 "$1" 2>/dev/null | grep -qx "$2"; then return 0; fi
    sleep 0.2
  done
  return 1
}
port=$(free_port)
"$bin" --demo --web.listen-address "127.0.0.1:$port" 2>"$work/demo.log" &
demo=$!; pids+=("$demo")
if ! wait_for "http://127.0.0.1:$port/metrics" 'yeastar_up 1'; then
  echo "the installed binary's --demo never served yeastar_up 1"; cat "$work/demo.log"; exit 1
fi
kill "$demo"; wait "$demo" 2>/dev/null || true
echo "installed --demo: yeastar_up 1 on :$port"
# The installed unit as systemd reads it. Only the binary's path is pointed at the unpacked one
# (the unit is not installed on this system); its man page is checked above, not through man(1).
mkdir -p "$work/verify"
sed "s#/usr/bin/yeastar-exporter#$bin#" "$unit" > "$work/verify/yeastar-exporter.service"
out=$(systemd-analyze verify --man=no "$work/verify/yeastar-exporter.service" 2>&1) || { echo "$out"; exit 1; }
# verify exits 0 on some findings; none is acceptable.
if [ -n "$out" ]; then echo "$out"; exit 1; fi
echo "systemd-analyze verify ${unit#"$root"}: clean"

echo "== 2. the package, installed and started by systemd in a booted Debian container"
. /etc/os-release
suite=${VERSION_CODENAME:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
include=systemd,systemd-sysv,dbus,openssl,curl,ca-certificates
base=${CHECK_DEB_ROOT_CACHE:-}
if [ -n "$base" ] && [ -x "$base/usr/lib/systemd/systemd" ]; then
  echo "base root: $base (cached)"
else
  [ -n "$base" ] || base="$work/base"
  start=$(date +%s)
  debootstrap --variant=minbase --include="$include" "$suite" "$base" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log"; exit 1; }
  echo "base root: debootstrap $suite from $mirror in $(( $(date +%s) - start )) s"
fi
cp -a "$base" "$guest"
cp "$deb" "$guest/root/"
# systemd as PID 1 of the container. The host's network (no --private-network): the simulated
# PBX and the exporter listen on the host's loopback. --register=no --keep-unit: no machined or
# systemd needed on the host.
systemd-nspawn --quiet --directory="$guest" --machine="yeastar-deb-$$" --register=no --keep-unit --console=passive --boot \
  >"$work/nspawn.log" 2>&1 &
nspawn=$!
leader=""
for _ in $(seq 1 100); do
  leader=$(ps -o pid= --ppid "$nspawn" | tr -d ' ' | head -1 || true)
  if [ -n "$leader" ] && [ "$(cat "/proc/$leader/comm" 2>/dev/null)" = systemd ]; then break; fi
  leader=""; sleep 0.1
done
[ -n "$leader" ] || { echo "the container's systemd did not start"; cat "$work/nspawn.log"; exit 1; }
# A command in the container, as root in a login shell's environment.
inside() {
  nsenter --target "$leader" --all --root --wd -- \
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}
# The admin's commands, each echoed as run.
admin() { echo "  # $*"; inside sh -c "$*"; }
# Until its systemd answers (its socket appears a moment after it starts) and boot has finished.
state=""
for _ in $(seq 1 90); do
  state=$(timeout 90 nsenter --target "$leader" --all --root --wd -- systemctl is-system-running --wait 2>/dev/null || true)
  [ -n "$state" ] && break
  sleep 1
done
echo "container booted: systemd $(inside systemctl --version | head -1 | cut -d' ' -f2), system $state"
case "$state" in running|degraded) ;; *) echo "the container did not boot"; cat "$work/nspawn.log"; exit 1;; esac

# The simulated PBX on the host's loopback, over HTTPS with a self-signed certificate, as most
# units serve; the installed binary runs it.
simport=$(free_port)
password="pw-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=pbx.test \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$work/pbx.key" -out "$work/pbx.pem" 2>/dev/null
"$bin" simulate --listen "127.0.0.1:$simport" --password "$password" \
  --tls.cert-file "$work/pbx.pem" --tls.key-file "$work/pbx.key" 2>"$work/sim.log" &
pids+=("$!")
port=$(free_port)

fail() {
  echo "FAILED: $*"
  inside systemctl --no-pager status yeastar-exporter || true
  inside journalctl --no-pager -u yeastar-exporter -n 40 || true
  exit 1
}
echo "installing as an admin would (the README's package steps):"
echo "1. install it"
admin "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /root/$(basename "$deb") >/dev/null"
admin "dpkg -s yeastar-exporter | grep -E '^(Status|Version):'"
admin "stat -c '%A %U:%G %n' /etc/yeastar-exporter /etc/yeastar-exporter/yeastar-exporter.yml"
echo "2. save the PBX's certificate"
admin "openssl s_client -connect 127.0.0.1:$simport -showcerts </dev/null 2>/dev/null | openssl x509 | tee /etc/yeastar-exporter/pbx-ca.pem >/dev/null"
echo "3. store the password (the README reads it from the terminal: read -rsp)"
admin "printf '%s\\n' '$password' | install -m 600 /dev/stdin /etc/yeastar-exporter/password"
admin "stat -c '%A %U:%G %n' /etc/yeastar-exporter/password /etc/yeastar-exporter/pbx-ca.pem"
echo "4. name the PBX"
admin "sed -i 's#https://192.168.5.150:8088#https://127.0.0.1:$simport#' /etc/yeastar-exporter/yeastar-exporter.yml"
# Only because the host is shared: the unit's own default, :11088, may be taken.
admin "sed -i 's#^ARGS=.*#ARGS=\"--web.listen-address=127.0.0.1:$port\"#' /etc/default/yeastar-exporter"
echo "5. check the file"
check=$(admin "yeastar-exporter --config.check --config.file=/etc/yeastar-exporter/yeastar-exporter.yml" 2>&1) \
  || fail "--config.check as root: $check"
echo "$check"
grep -qx 'config OK: 1 target(s)' <<<"$check" || fail "--config.check as root: $check"
echo "6. start it"
admin "systemctl enable --now yeastar-exporter 2>&1" || fail "systemctl enable --now"
inside sh -c "for i in \$(seq 1 100); do curl -fs --max-time 2 http://127.0.0.1:$port/-/ready >/dev/null && exit 0; sleep 0.2; done; exit 1" \
  || fail "the service never became ready on 127.0.0.1:$port"
echo "7. check it"
probe=$(admin "curl -s 'http://127.0.0.1:$port/probe?target=office' | grep '^yeastar_up'")
echo "$probe"
[ "$(tail -1 <<<"$probe")" = "yeastar_up 1" ] || fail "/probe?target=office: $probe"

echo "the running service, as systemd started it:"
pid=$(inside systemctl show -P MainPID yeastar-exporter)
status=$(inside grep -E '^(Uid|Gid|Groups|CapEff|CapBnd|NoNewPrivs|Seccomp):' "/proc/$pid/status")
sed 's/^/  /' <<<"$status"
uid=$(awk '/^Uid:/ { print $2 }' <<<"$status")
# DynamicUser: a uid systemd allocates from 61184-65519 at start, not root, not a static user.
[ "$uid" -ge 61184 ] && [ "$uid" -le 65519 ] || fail "the service runs as uid $uid, not a DynamicUser"
grep -qx $'CapEff:\t0000000000000000' <<<"$status" || fail "the service has capabilities"
grep -qx $'NoNewPrivs:\t1' <<<"$status" || fail "no NoNewPrivileges"
grep -qx $'Seccomp:\t2' <<<"$status" || fail "no system call filter"
cmdline=$(inside sh -c "tr '\\0' ' ' </proc/$pid/cmdline")
echo "  ExecStart as run: $cmdline"
admin "stat -c '%A %u %n' /var/lib/private/yeastar-exporter"
[ "$(inside stat -c %u /var/lib/private/yeastar-exporter)" = "$uid" ] || fail "the StateDirectory is not the service's"
# The password's home is root's alone: the service reads systemd's copy, not the file.
inside setpriv --reuid="$uid" --regid="$uid" --clear-groups cat /etc/yeastar-exporter/password >/dev/null 2>&1 \
  && fail "the service's uid can read /etc/yeastar-exporter/password itself"
admin "systemctl reload yeastar-exporter" || fail "systemctl reload"
inside sh -c "for i in \$(seq 1 50); do journalctl -u yeastar-exporter -o cat | grep -q 'SIGHUP received' && exit 0; sleep 0.2; done; exit 1" \
  || fail "no reload on systemctl reload"
echo "  reload: SIGHUP received, configuration reloaded"
[ "$(tail -1 <<<"$(admin "curl -s 'http://127.0.0.1:$port/probe?target=office' | grep '^yeastar_up'")")" = "yeastar_up 1" ] \
  || fail "/probe after reload"
admin "systemctl stop yeastar-exporter" || fail "systemctl stop"
result=$(inside systemctl show -P Result yeastar-exporter)
[ "$result" = success ] || fail "stopped with result $result"
echo "  stop: result $result"
echo "package installed and run by systemd: /probe?target=office answers yeastar_up 1"
