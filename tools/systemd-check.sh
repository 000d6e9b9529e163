#!/bin/bash
# Runs redpipe.pyz under the units in deploy/ with systemd as PID 1: a Debian bookworm
# tree booted by systemd-nspawn, with tests/fakereddit.py as the Reddit it talks to.
# Checks that the .pyz works under every limit the units set (the units are installed
# as shipped; a drop-in changes only ExecStart, to point at the fake server), that stop
# is a clean exit 0, and that the daily refresh runs as the same dynamic user.
# Reuses the debootstrapped tree, resets state each run. Prints PASS or FAIL (exit 0/1).
# Needs root and the Debian package mirror. About 40 s, 85 s when it builds the tree.
#
#   ./build.sh && sudo tools/systemd-check.sh
#
# Env overrides: WORK (default /tmp/redpipe-systemd), PYZ, PORT, KEEP=1 (leave it up)
set -u
WORK=${WORK:-/tmp/redpipe-systemd}
SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=$WORK/root
PYZ=${PYZ:-$SRC/redpipe.pyz}
UNIT_FILE=$SRC/deploy/redpipe.service
FAKE=$SRC/tests/fakereddit.py
MIRROR=${MIRROR:-http://deb.debian.org/debian}
NAME=redpipe-test
LOG=$WORK/run-unit.log
T0=$(date +%s)
FAILS=()

say() { printf '[%3ss] %s\n' $(( $(date +%s) - T0 )) "$*"; }
fail() { say "FAIL: $*"; FAILS+=("$*"); }
check() { local what=$1; shift; if "$@"; then say "ok: $what"; else fail "$what"; fi; }

mkdir -p "$WORK"
[ -f "$PYZ" ] || { echo "FAIL: no pyz at $PYZ"; exit 1; }

# --- 1. host tools ---------------------------------------------------------
if ! command -v systemd-nspawn >/dev/null || ! command -v debootstrap >/dev/null; then
    say "installing systemd-container debootstrap"
    apt-get update -q >>"$LOG" 2>&1
    apt-get install -y -q systemd-container debootstrap >>"$LOG" 2>&1 || { echo "FAIL: apt-get install"; exit 1; }
fi

# --- 2. leftover container from an earlier run -------------------------------
stop_container() {
    local pid
    pid=$(cat "$WORK/nspawn.pid" 2>/dev/null) || return 0
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' </proc/$pid/cmdline | grep -q "systemd-nspawn.*$ROOT"; then
        say "powering off container (nspawn pid $pid)"
        kill -TERM "$pid"               # nspawn turns SIGTERM into a clean halt of the container
        for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$pid" 2>/dev/null && { kill -TERM "$pid"; sleep 1; kill -KILL "$pid" 2>/dev/null; }
    fi
    rm -f "$WORK/nspawn.pid"
}
stop_container

# --- 3. container tree -------------------------------------------------------
if [ ! -x "$ROOT/lib/systemd/systemd" ] || [ ! -x "$ROOT/usr/bin/python3" ]; then
    say "debootstrap bookworm into $ROOT (about 45 s)"
    rm -rf "$ROOT"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,python3 \
        bookworm "$ROOT" "$MIRROR" >>"$LOG" 2>&1 || { echo "FAIL: debootstrap (see $LOG)"; exit 1; }
fi
echo "$NAME" >"$ROOT/etc/hostname"

# Pick a free loopback port (the container shares the host network).
PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
URL=http://127.0.0.1:$PORT

# Install exactly as the unit's head comment says (done from the host into the tree).
install -D -m 0755 "$PYZ" "$ROOT/usr/local/bin/redpipe"
install -d -m 0700 "$ROOT/etc/redpipe"
printf %s test-client >"$ROOT/etc/redpipe/client-id"
printf %s test-secret >"$ROOT/etc/redpipe/client-secret"
chmod 0600 "$ROOT"/etc/redpipe/client-*
cp "$UNIT_FILE" "$ROOT/etc/systemd/system/redpipe.service"
cp "$SRC/deploy/redpipe-refresh.service" "$SRC/deploy/redpipe-refresh.timer" "$ROOT/etc/systemd/system/"
# Not enabled: it would start at boot before the fake server; started by hand below.
rm -f "$ROOT/etc/systemd/system/multi-user.target.wants/redpipe.service"

# Drop-in: only ExecStart changes; every hardening line stays as shipped.
mkdir -p "$ROOT/etc/systemd/system/redpipe.service.d"
cat >"$ROOT/etc/systemd/system/redpipe.service.d/test.conf" <<EOF
[Service]
ExecStart=
ExecStart=/usr/bin/python3 /usr/local/bin/redpipe /var/lib/redpipe/posts.sqlite --base-url $URL --auth-url $URL --interval 0.5
EOF
# The refresh unit as shipped but for the server, and an age that the posts just stored
# reach within the test.
mkdir -p "$ROOT/etc/systemd/system/redpipe-refresh.service.d"
cat >"$ROOT/etc/systemd/system/redpipe-refresh.service.d/test.conf" <<EOF
[Service]
ExecStart=
ExecStart=/usr/bin/python3 /usr/local/bin/redpipe refresh /var/lib/redpipe/posts.sqlite --purge-deleted --base-url $URL --auth-url $URL --older-than 1s
EOF
# Same hardening, other command lines: --version and --comments (into a second database).
for v in version comments; do
    cp "$UNIT_FILE" "$ROOT/etc/systemd/system/redpipe-$v.service"
    mkdir -p "$ROOT/etc/systemd/system/redpipe-$v.service.d"
done
cat >"$ROOT/etc/systemd/system/redpipe-version.service.d/test.conf" <<EOF
[Service]
ExecStart=
ExecStart=/usr/bin/python3 /usr/local/bin/redpipe --version
EOF
cat >"$ROOT/etc/systemd/system/redpipe-comments.service.d/test.conf" <<EOF
[Service]
ExecStart=
ExecStart=/usr/bin/python3 /usr/local/bin/redpipe /var/lib/redpipe/comments.sqlite --comments --base-url $URL --auth-url $URL --interval 0.5
EOF

# The fake Reddit, as a plain (unhardened) unit inside the container.
install -D -m 0644 "$FAKE" "$ROOT/opt/fakereddit.py"
cat >"$ROOT/etc/systemd/system/fakereddit.service" <<EOF
[Unit]
Description=fake Reddit for redpipe tests
[Service]
ExecStart=/usr/bin/python3 /opt/fakereddit.py --port $PORT --rate 5 --comment-rate 5
EOF

# Fresh state each run (DynamicUser keeps it under /var/lib/private).
rm -rf "$ROOT/var/lib/private/redpipe" "$ROOT/var/cache/private/redpipe" "$ROOT/var/lib/redpipe" "$ROOT/var/cache/redpipe"

# --- 4. boot -----------------------------------------------------------------
# --register=no --keep-unit: there is no systemd/machined/D-Bus on the host.
# No --private-network: the container shares the host's loopback.
say "booting container"
systemd-nspawn -D "$ROOT" -M "$NAME" --boot --register=no --keep-unit --console=passive \
    </dev/null >"$WORK/boot.log" 2>&1 &
NSPAWN=$!
echo $NSPAWN >"$WORK/nspawn.pid"
LEADER=
for _ in $(seq 60); do
    LEADER=$(pgrep -P "$NSPAWN" -x systemd | head -1)
    [ -n "$LEADER" ] && break
    sleep 0.5
done
[ -n "$LEADER" ] || { cat "$WORK/boot.log"; echo "FAIL: container did not start"; stop_container; exit 1; }
C() { nsenter -t "$LEADER" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 SYSTEMD_COLORS=0 SYSTEMD_PAGER= "$@"; }
STATE=
for _ in $(seq 60); do
    STATE=$(C systemctl is-system-running 2>/dev/null)
    case $STATE in running|degraded) break;; esac
    sleep 0.5
done
say "container up, leader pid $LEADER, system state: $STATE"
[ "$STATE" = degraded ] && C systemctl --failed --no-pager

sql() { C python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' "$@" 2>&1; }

# --- 5. tests ----------------------------------------------------------------
C systemctl start fakereddit
for _ in $(seq 40); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$PORT),1)" 2>/dev/null && break; sleep 0.25; done
say "fake Reddit on $URL: $(C systemctl is-active fakereddit)"

say "--- redpipe --version under the unit"
C systemctl start redpipe-version
sleep 2
C journalctl -b -u redpipe-version --no-pager -o cat | tee -a "$LOG"
check "--version exits 0 under the unit" [ "$(C systemctl show -P ExecMainStatus redpipe-version)" = 0 ]

say "--- redpipe.service, 20 s"
C systemctl start redpipe
sleep 20
C systemctl status redpipe --no-pager -l | tee -a "$LOG"
check "redpipe.service active after 20 s" [ "$(C systemctl is-active redpipe)" = active ]
PID=$(C systemctl show -P MainPID redpipe)
# PID is the container-namespace pid; read it through the container's /proc
UIDS=$(C awk '/^Uid:/{print $2}' /proc/"$PID"/status 2>/dev/null)
say "MainPID $PID runs as uid $UIDS"
check "runs as a dynamic uid (61184-65519)" eval '[ -n "$UIDS" ] && [ "$UIDS" -ge 61184 ] && [ "$UIDS" -le 65519 ]'
HARD=$(C grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/"$PID"/status | tr -s '\t\n' '  ')
say "hardening as seen in /proc/$PID/status: $HARD"
check "NoNewPrivs=1, seccomp filter mode, no capabilities" eval '[[ "$HARD" == *"CapEff: 0000000000000000"* && "$HARD" == *"NoNewPrivs: 1"* && "$HARD" == *"Seccomp: 2"* ]]'
say "note: MemoryMax/TasksMax: $(C systemctl show -p MemoryMax -p TasksMax -p MemoryCurrent -p TasksCurrent redpipe | tr '\n' ' ')"
say "note: the host's memory and pids controllers are cgroup v1 (read-only in the container), so these two limits are NOT enforced here"
C ls -la /var/lib/private/redpipe /var/cache/private/redpipe 2>&1 | tee -a "$LOG"
C systemd-analyze log-level debug
C systemctl stop redpipe
RESULT=$(C systemctl show -P Result redpipe); STATUS=$(C systemctl show -P ExecMainStatus redpipe)
say "after stop: Result=$RESULT ExecMainStatus=$STATUS"
check "systemctl stop: clean exit status 0" eval '[ "$RESULT" = success ] && [ "$STATUS" = 0 ]'
say "journal (redpipe.service):"
C journalctl -b -u redpipe --no-pager -o short-monotonic | grep -E 'python3\[|Main process|Deactivated|Started|Stopped|Failed|failed' | grep -vE 'Failed to parse system call|mount_setattr|Failed to send unit change signal' | tail -25 | tee -a "$LOG"
check "journal: Main process exited, code=exited, status=0/SUCCESS" C sh -c 'journalctl -b -u redpipe -o cat | grep -q "Main process exited, code=exited, status=0/SUCCESS"'
check "summary line in the journal" C sh -c 'journalctl -b -u redpipe -o cat | grep -q "redpipe: stopped"'
ROWS=$(sql /var/lib/private/redpipe/posts.sqlite "select count(*) from posts")
say "posts rows: $ROWS"
check "posts.sqlite has rows" [ "${ROWS:-0}" -gt 0 ] 2>/dev/null

say "--- redpipe-refresh.service (oneshot, User=redpipe) on the same database"
C systemctl start redpipe-refresh
R3=$(C systemctl show -P Result redpipe-refresh); S3=$(C systemctl show -P ExecMainStatus redpipe-refresh)
C journalctl -b -u redpipe-refresh --no-pager -o cat | grep -E "redpipe:" | tee -a "$LOG"
check "refresh: clean exit status 0" eval '[ "$R3" = success ] && [ "$S3" = 0 ]'
CHECKED=$(sql /var/lib/private/redpipe/posts.sqlite "select count(refreshed_utc) from posts")
say "posts refreshed: $CHECKED of $ROWS"
check "refresh wrote to the stream's database" [ "${CHECKED:-0}" -gt 0 ] 2>/dev/null
C systemctl enable --now redpipe-refresh.timer >>"$LOG" 2>&1
check "refresh timer scheduled" C sh -c 'systemctl list-timers --all --no-pager | grep -q redpipe-refresh.timer'

say "--- redpipe --comments under the unit, 15 s"
C systemctl start redpipe-comments
sleep 15
check "redpipe-comments active after 15 s" [ "$(C systemctl is-active redpipe-comments)" = active ]
C systemctl stop redpipe-comments
C journalctl -b -u redpipe-comments --no-pager -o short-monotonic | grep -E 'python3\[|Main process|Deactivated|Started|Stopped|Failed|failed' | grep -vE 'Failed to parse system call|mount_setattr|Failed to send unit change signal' | tail -15 | tee -a "$LOG"
R2=$(C systemctl show -P Result redpipe-comments); S2=$(C systemctl show -P ExecMainStatus redpipe-comments)
say "after stop: Result=$R2 ExecMainStatus=$S2"
check "--comments: clean exit status 0" eval '[ "$R2" = success ] && [ "$S2" = 0 ]'
check "--comments journal: code=exited, status=0/SUCCESS" C sh -c 'journalctl -b -u redpipe-comments -o cat | grep -q "Main process exited, code=exited, status=0/SUCCESS"'
C systemd-analyze log-level info
P2=$(sql /var/lib/private/redpipe/comments.sqlite "select count(*) from posts")
CM=$(sql /var/lib/private/redpipe/comments.sqlite "select count(*) from comments")
say "comments.sqlite: posts $P2, comments $CM"
check "comments table has rows" [ "${CM:-0}" -gt 0 ] 2>/dev/null

say "--- seccomp/hardening denials anywhere in the journal"
DENIALS=$(C journalctl -b -p info --no-pager -o short | grep -v dbus-daemon | grep -iE "seccomp|audit.*syscall|Operation not permitted|PermissionError|MemoryError|Traceback|status=(1|2|3|4|5|31)/|code=(killed|dumped)")
[ -n "$DENIALS" ] && printf "%s\n" "$DENIALS" | tee -a "$LOG" || say "(none at priority info or above)"

say "--- systemd-analyze security redpipe"
C systemd-analyze security redpipe --no-pager 2>&1 | tee "$WORK/security.txt" | tail -3

# --- 6. clean up -------------------------------------------------------------
if [ "${KEEP:-0}" = 1 ]; then
    say "KEEP=1: container left running, leader pid $LEADER (enter: nsenter -t $LEADER -a bash)"
else
    stop_container
fi
say "took $(( $(date +%s) - T0 )) s"
if [ ${#FAILS[@]} -eq 0 ]; then echo PASS; exit 0; else printf 'FAIL: %s\n' "${FAILS[@]}"; exit 1; fi
