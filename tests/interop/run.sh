#!/usr/bin/env bash
# Proof against the real world: drives the real `dispatch` binary against software we did not
# write and prints one line per check (`PASS name (details)` / `FAIL name: why`), then exactly
# one closing line `N passed, N failed`. Exits 1 if any check failed.
#
#   1. Postfix (a throwaway instance, own config dir) relays a 200-reader digest to smtp-sink.
#   2. aiosmtpd with STARTTLS + AUTH and a throwaway openssl certificate; a wrong password.
#   3. SpamAssassin offline on a digest, a breaking-news message and an Urdu digest.
#   4. DKIM verified by dkimpy (python3-dkim) with the run's public key, no DNS.
#   5. MIME parsed by Python's `email` package.
#   6. One-click unsubscribe (RFC 8058) with curl, the way Gmail sends it, against `dispatch run`.
#
# Needs (Debian): postfix, python3-aiosmtpd, python3-dkim, spamassassin, openssl, curl; root to
# start Postfix. Everything lives in one temp dir, listens on loopback only and is stopped on
# exit; the system's mail setup (/etc/postfix, /var/spool/postfix) is never touched.
#
# Usage: bash tests/interop/run.sh            (builds target/debug/dispatch if missing)
#   DISPATCH_BIN=path   the binary to test      INTEROP_KEEP=1   keep the temp dir afterwards
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3
CHECKS="$HERE/checks.py"
STARTED=$SECONDS

PASSED=0
FAILED=0
pass() { echo "PASS $1${2:+ ($2)}"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL $1: $(echo "$2" | tr '\n' ' ' | sed 's/  */ /g; s/ $//')"; FAILED=$((FAILED + 1)); }

BIN=${DISPATCH_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/dispatch}
# The environment must not change what the binary sees.
for v in $(compgen -e | grep -E '^(DISPATCH_|RUST_LOG$)'); do unset "$v"; done

T=$(mktemp -d /tmp/dispatch-interop.XXXXXX)
chmod 755 "$T" # Postfix's unprivileged daemons must reach their queue below it
LOGS="$T/logs"
mkdir -p "$LOGS"
PIDS=()
PF_CONFS=()

cleanup() {
  local pid
  local conf
  for conf in "${PF_CONFS[@]}"; do
    local mpid
    mpid=$(tr -d ' ' <"$conf/../queue/pid/master.pid" 2>/dev/null)
    postfix -c "$conf" stop >/dev/null 2>&1 || postfix -c "$conf" abort >/dev/null 2>&1
    for _ in $(seq 50); do
      [ -n "$mpid" ] && kill -0 "$mpid" 2>/dev/null || break
      sleep 0.1
    done
    if [ -n "$mpid" ] && [ "$(ps -o comm= -p "$mpid" 2>/dev/null)" = master ]; then
      postfix -c "$conf" abort >/dev/null 2>&1
      kill -9 "$mpid" 2>/dev/null
    fi
  done
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [ "${INTEROP_KEEP:-0}" = 1 ]; then
    echo "# kept $T" >&2
  else
    rm -rf "$T"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

finish() {
  local took=$((SECONDS - STARTED))
  if [ "$took" -lt 300 ]; then pass suite-under-5-minutes "${took}s"; else fail suite-under-5-minutes "took ${took}s"; fi
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
  exit $?
}

# ---------------------------------------------------------------------------------------------
# Prerequisites

missing=""
[ -x "$PY" ] || missing+=" $PY"
for tool in openssl curl spamassassin postfix smtp-sink; do
  command -v "$tool" >/dev/null || missing+=" $tool"
done
for mod in aiosmtpd dkim; do
  "$PY" -c "import $mod" 2>/dev/null || missing+=" python3-$mod"
done
if [ -n "$missing" ]; then
  fail prerequisites "missing:$missing (apt-get install postfix python3-aiosmtpd python3-dkim spamassassin openssl curl)"
  finish
fi

if [ ! -x "$BIN" ]; then
  echo "# building $BIN (cargo build)" >&2
  if ! (cd "$ROOT" && cargo build --quiet) >"$LOGS/build.log" 2>&1; then
    fail build "cargo build failed: $(tail -5 "$LOGS/build.log")"
    finish
  fi
fi
if [ ! -x "$BIN" ]; then
  fail build "no binary at $BIN (set DISPATCH_BIN)"
  finish
fi

# Free loopback ports, all at once so they differ.
read -r PF_PORT SINK_PORT TLS_PORT TLS_CA_PORT PLAIN_PORT WEB_PORT DSN_PF_PORT DSN_SINK_PORT < <("$PY" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(8)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)

wait_port() { # PORT SECONDS
  local i
  for i in $(seq $(($2 * 10))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

count_eml() { find "$1" -maxdepth 1 -name '*.eml' | wc -l; }

wait_count() { # DIR N SECONDS: until DIR holds N .eml files
  local i
  for i in $(seq $(($3 * 10))); do
    [ "$(count_eml "$1")" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}

# Throwaway keys: DKIM (RSA 2048) and self-signed server certificates for loopback. tls.pem
# says CA:FALSE; tls-ca.pem is what a plain `openssl req -x509` makes (CA:TRUE), which rustls
# (webpki) refuses as a server's own certificate: check 2 wants a clear error for it.
(
  cd "$T" &&
    openssl genrsa -out dkim.pem 2048 &&
    openssl rsa -in dkim.pem -pubout -out dkim.pub.pem &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout tls.key -out tls.pem -days 2 -subj /CN=localhost \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
      -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=serverAuth" &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout tls-ca.key -out tls-ca.pem -days 2 -subj /CN=localhost \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
) >"$LOGS/openssl.log" 2>&1 || { fail keys "openssl: $(tail -3 "$LOGS/openssl.log")"; finish; }

CFG="$T/dispatch.toml"
cat >"$CFG" <<EOF
[publication]
name = "The Daily Ledger"
url = "https://news.example.com"
from = "The Daily Ledger <digest@news.example.com>"
postal_address = "The Daily Ledger, 12 Mall Road, Lahore 54000, Pakistan"
language = "en"

[database]
path = "$T/default.db"

[web]
bind = "127.0.0.1:$WEB_PORT"
public_url = "https://news.example.com"

[delivery]
transport = "smtp"
outbox = "$T/outbox"

[smtp]
host = "127.0.0.1"
port = $PLAIN_PORT
security = "none"
connections = 4
timeout_secs = 15

[sending]
max_attempts = 3
retry_base_secs = 1
pause_after_secs = 20

[dkim]
domain = "news.example.com"
selector = "interop"
private_key_path = "$T/dkim.pem"

[log]
level = "info"
EOF

# dispatch against the database named $1 ($T/$1.db); extra settings come from the caller's
# env. No command may hang the suite: 90 s each at most.
d() {
  local db=$1
  shift
  (cd "$T" && DISPATCH_DATABASE_PATH="$T/$db.db" timeout 90 "$BIN" --config "$CFG" "$@")
}

# Articles of a normal news morning, published an hour ago.
add_english_articles() { # DB
  local db=$1 at
  at=$(date -u -d '1 hour ago' +%Y-%m-%dT%H:%M:%SZ)
  d "$db" articles add --published-at "$at" --category "General News" \
    --title "Monsoon rains ease in Lahore as the Ravi falls below the danger mark" \
    --url https://news.example.com/2026/11/monsoon-rains-ease --author "Ayesha Khan" \
    --summary "The Punjab flood authority said water levels fell overnight and roads to Shahdara reopened." &&
    d "$db" articles add --published-at "$at" --category "Politics" \
      --title "National Assembly passes the revised budget after a late-night session" \
      --url https://news.example.com/2026/11/assembly-budget --author "Bilal Ahmed" \
      --summary "The house approved the finance bill by 182 votes to 94; the opposition walked out before the vote." &&
    d "$db" articles add --published-at "$at" --category "Business" \
      --title "Karachi stock index closes at a record high on strong bank earnings" \
      --url https://news.example.com/2026/11/kse-record \
      --summary "The KSE-100 gained 1.4 percent, led by the three largest banks, as foreign buying continued." \
      --image-url https://news.example.com/img/kse.jpg &&
    d "$db" articles add --published-at "$at" --category "Sport" \
      --title "Pakistan beat New Zealand by six wickets to level the series" \
      --url https://news.example.com/2026/11/cricket-series-level --author "Sports desk" \
      --summary "Babar Azam scored an unbeaten 88 in Rawalpindi; the deciding match is on Sunday." &&
    d "$db" articles add --published-at "$at" --category "Business" \
      --title "Textile exports rise for the fourth month in a row" \
      --url https://news.example.com/2026/11/textile-exports \
      --summary "Exporters credit lower energy tariffs and new orders from European buyers."
}

# A throwaway Postfix instance in $T/NAME listening on PORT and relaying everything to
# 127.0.0.1:SINKPORT, with EXTRA appended to its main.cf. Prints why on failure. Not in a
# subshell: the instance must reach PF_CONFS, so that cleanup stops it.
start_postfix() { # NAME PORT SINKPORT [EXTRA]
  local pf="$T/$1"
  mkdir -p "$pf/conf" "$pf/queue" "$pf/data"
  if ! id postfix >/dev/null 2>&1 || ! getent group postdrop >/dev/null; then
    echo "no postfix user or postdrop group (install the postfix package)"
    return 1
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "starting a Postfix instance needs root (master binds and drops to mail_owner)"
    return 1
  fi
  chown postfix "$pf/data"
  for f in main.cf master.cf; do
    sed -e "s|@DIR@|$pf|g" -e "s|@SINKPORT@|$3|g" -e "s|@PORT@|$2|g" \
      -e "s|@LOGPREFIX@|$pf|g" "$HERE/postfix/$f.in" >"$pf/conf/$f"
  done
  [ -n "${4:-}" ] && echo "$4" >>"$pf/conf/main.cf"
  if ! postfix -c "$pf/conf" check >"$LOGS/$1-check.log" 2>&1; then
    echo "postfix check: $(tail -3 "$pf/maillog" "$LOGS/$1-check.log" 2>/dev/null)"
    return 1
  fi
  PF_CONFS+=("$pf/conf")
  if ! postfix -c "$pf/conf" start >"$LOGS/$1-start.log" 2>&1 || ! wait_port "$2" 20; then
    echo "postfix start: $(tail -3 "$pf/maillog" "$LOGS/$1-start.log" 2>/dev/null)"
    return 1
  fi
}

# =============================================================================================
# 1. Relay through a real MTA: throwaway Postfix -> smtp-sink, 200 readers.

check_postfix() {
  local sink="$T/sink-postfix" rcpts="$T/relay-rcpts.txt" out
  mkdir -p "$sink"
  chown postfix "$sink" 2>/dev/null # smtp-sink -u postfix writes its dumps as postfix
  smtp-sink -u postfix -d "$sink/m." "127.0.0.1:$SINK_PORT" 256 >"$LOGS/smtp-sink.log" 2>&1 &
  PIDS+=($!)
  if ! wait_port "$SINK_PORT" 10; then
    fail postfix-relay-200 "smtp-sink did not listen: $(tail -3 "$LOGS/smtp-sink.log")"
    return
  fi
  if ! start_postfix postfix "$PF_PORT" "$SINK_PORT" >"$LOGS/postfix-setup.txt"; then
    fail postfix-relay-200 "$(cat "$LOGS/postfix-setup.txt")"
    return
  fi
  local pf="$T/postfix"

  # 200 readers: some named, some with a category choice (so several rendered variants).
  {
    echo "email,name,categories"
    for i in $(seq -w 1 200); do
      case $((10#$i % 4)) in
      0) echo "reader$i@example.org,Reader $i," ;;
      1) echo "reader$i@example.net,,Politics;Business" ;;
      2) echo "reader$i@mail.example.com,\"Khan, Sana $i\",Sport" ;;
      3) echo "reader$i@example.org,," ;;
      esac
    done
  } >"$T/readers.csv"
  tail -n +2 "$T/readers.csv" | cut -d, -f1 >"$rcpts"
  if ! out=$(d relay lists create daily --name "Daily Digest" 2>&1 &&
    d relay subscribers import "$T/readers.csv" --list daily 2>&1 &&
    add_english_articles relay 2>&1); then
    fail postfix-relay-200 "setting up the list failed: ${out:-no output}"
    return
  fi
  if ! DISPATCH_SMTP_PORT=$PF_PORT d relay send digest daily >"$LOGS/relay-send.log" 2>&1; then
    fail postfix-relay-200 "dispatch send digest exited non-zero: $(tail -3 "$LOGS/relay-send.log")"
    return
  fi
  # Postfix queues, then relays; wait for the sink to hold all 200 and the queue to drain.
  local i n q
  for i in $(seq 600); do
    n=$(find "$sink" -type f | wc -l)
    q=$(find "$pf/queue/incoming" "$pf/queue/active" "$pf/queue/deferred" "$pf/queue/maildrop" -type f 2>/dev/null | wc -l)
    [ "$n" -ge 200 ] && [ "$q" -eq 0 ] && break
    sleep 0.1
  done
  sleep 0.5 # smtp-sink closes its last dump file after the final reply
  if out=$("$PY" "$CHECKS" relay "$sink" "$rcpts"); then
    pass postfix-relay-200 "$(echo "$out" | tail -1)"
  else
    fail postfix-relay-200 "$(echo "$out" | tail -1); postfix log: $(grep -E 'status=(deferred|bounced)' "$pf/maillog" | tail -1)"
  fi
  RELAYED_DIR=$sink
}

# =============================================================================================
# 1b. Bounces from a real MTA: a second Postfix relays to aiosmtpd, which refuses one reader
# for good (550 5.1.1) and one for now (450 4.2.2; one delivery attempt allowed, so Postfix
# gives up at once). Postfix writes its own RFC 3464 DSNs to our VERP envelope senders, and
# `dispatch bounces ingest` reads each as Postfix's pipe(8) transport would hand it over.

check_postfix_dsn() {
  local name=postfix-dsn sink="$T/sink-dsn" out r rcpt n=0 i q
  mkdir -p "$sink"
  "$PY" "$HERE/sink.py" "$DSN_SINK_PORT" "$sink" \
    --refuse gone@example.org "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown in virtual mailbox table" \
    --refuse full@example.org "450 4.2.2 <full@example.org>: Recipient address rejected: Mailbox full" \
    >"$LOGS/sink-dsn.log" 2>&1 &
  PIDS+=($!)
  if ! wait_port "$DSN_SINK_PORT" 15; then
    fail $name "aiosmtpd did not start: $(tail -3 "$LOGS/sink-dsn.log")"
    return
  fi
  if ! start_postfix postfix-dsn "$DSN_PF_PORT" "$DSN_SINK_PORT" \
    $'maximal_queue_lifetime = 0\nbounce_queue_lifetime = 0' >"$LOGS/postfix-dsn-setup.txt"; then
    fail $name "$(cat "$LOGS/postfix-dsn-setup.txt")"
    return
  fi
  printf 'email\ngone@example.org\nfull@example.org\nstays@example.org\n' >"$T/dsn-readers.csv"
  if ! out=$(d dsn lists create daily --name "Daily Digest" 2>&1 &&
    d dsn subscribers import "$T/dsn-readers.csv" --list daily 2>&1 &&
    add_english_articles dsn 2>&1); then
    fail $name "setting up the list failed: ${out:-no output}"
    return
  fi
  export DISPATCH_BOUNCES_RETURN_PATH_DOMAIN=bounces.interop.test
  if ! DISPATCH_SMTP_PORT=$DSN_PF_PORT d dsn send digest daily >"$LOGS/dsn-send.log" 2>&1; then
    fail $name "dispatch send digest exited non-zero: $(tail -3 "$LOGS/dsn-send.log")"
    unset DISPATCH_BOUNCES_RETURN_PATH_DOMAIN
    return
  fi
  # One digest delivered and two DSNs, then an empty queue.
  for i in $(seq 600); do
    q=$(find "$T/postfix-dsn/queue/incoming" "$T/postfix-dsn/queue/active" \
      "$T/postfix-dsn/queue/deferred" -type f 2>/dev/null | wc -l)
    [ "$(count_eml "$sink")" -ge 3 ] && [ "$q" -eq 0 ] && break
    sleep 0.1
  done
  for r in "$sink"/*.rcpt; do
    [ -e "$r" ] || continue
    rcpt=$(sed -n 2p "$r")
    case "$rcpt" in
    *@bounces.interop.test)
      n=$((n + 1))
      if ! d dsn bounces ingest --recipient "$rcpt" <"${r%.rcpt}.eml" >>"$LOGS/dsn-ingest.log" 2>&1; then
        fail $name "bounces ingest exited non-zero: $(tail -2 "$LOGS/dsn-ingest.log")"
        unset DISPATCH_BOUNCES_RETURN_PATH_DOMAIN
        return
      fi
      ;;
    esac
  done
  unset DISPATCH_BOUNCES_RETURN_PATH_DOMAIN
  local gone full stays list
  gone=$(d dsn subscribers show gone@example.org 2>&1 | grep -E '^status')
  full=$(d dsn subscribers show full@example.org 2>&1 | grep -E '^status')
  stays=$(d dsn subscribers show stays@example.org 2>&1 | grep -E '^status')
  list=$(d dsn bounces list 2>&1)
  if [ "$n" -ne 2 ]; then
    fail $name "$n DSN(s) reached the VERP domain, want 2; postfix log: $(grep -E 'status=' "$T/postfix-dsn/maillog" | tail -3)"
  elif ! echo "$gone" | grep -q bounced; then
    fail $name "gone@example.org after a 5.1.1 DSN: '$gone'; bounces list: $list"
  elif ! echo "$full" | grep -q active || ! echo "$list" | grep -E 'soft' | grep -q full@example.org; then
    fail $name "full@example.org after a 4.2.2 DSN: '$full'; bounces list: $list"
  elif ! echo "$stays" | grep -q active || echo "$list" | grep -q stays@example.org; then
    fail $name "stays@example.org was delivered but shows '$stays'; bounces list: $list"
  elif ! echo "$list" | grep -E 'hard' | grep -q '5\.1\.1'; then
    fail $name "no hard bounce with status 5.1.1 listed: $list"
  else
    pass $name "2 Postfix DSNs via VERP: gone@ hard 5.1.1 -> bounced, full@ soft 4.2.2 -> still active, stays@ untouched"
  fi
}

# =============================================================================================
# 2. STARTTLS + AUTH against aiosmtpd; a wrong password pauses the edition.

TLS_SINK="$T/sink-tls"
# Runs "$@" with the TLS relay settings; TLS_SMTP_PORT, TLS_PASSWORD and TLS_CA (empty: no
# ca_file) change them.
tls_env() (
  export DISPATCH_SMTP_HOST=127.0.0.1 DISPATCH_SMTP_PORT="${TLS_SMTP_PORT:-$TLS_PORT}" \
    DISPATCH_SMTP_SECURITY=starttls DISPATCH_SMTP_USERNAME=digest \
    DISPATCH_SMTP_PASSWORD="${TLS_PASSWORD:-s3cret-interop}"
  local ca=${TLS_CA-$T/tls.pem}
  [ -n "$ca" ] && export DISPATCH_SMTP_CA_FILE="$ca"
  "$@"
)

# expect_paused NAME DB PATTERN: `send digest daily` on DB (with tls_env and the caller's
# TLS_* settings) must exit non-zero, sending nothing, and `editions show` must say the
# edition is paused, with a reason matching PATTERN (extended regex).
expect_paused() {
  local name=$1 db=$2 pattern=$3 rc=0 id show status_line before
  before=$(count_eml "$TLS_SINK")
  tls_env d "$db" send digest daily >"$LOGS/$name.log" 2>&1 || rc=$?
  id=$(grep -oE 'edition #[0-9]+' "$LOGS/$name.log" | head -1 | tr -dc 0-9)
  [ -n "$id" ] && show=$(d "$db" editions show "$id" 2>&1)
  status_line=$(echo "${show:-}" | grep -E '^status' | head -1)
  if [ "$rc" -eq 0 ]; then
    fail "$name" "dispatch send digest exited 0: $(tail -3 "$LOGS/$name.log")"
  elif [ -z "$id" ]; then
    fail "$name" "exit $rc but no edition id in the output: $(tail -3 "$LOGS/$name.log")"
  elif ! echo "$status_line" | grep -q '^status *paused: '; then
    fail "$name" "edition #$id: $status_line"
  elif ! echo "$status_line" | grep -qE "$pattern"; then
    fail "$name" "edition #$id is paused but the reason does not match /$pattern/: $status_line"
  elif [ "$(count_eml "$TLS_SINK")" -ne "$before" ]; then
    fail "$name" "a message arrived anyway"
  else
    pass "$name" "exit $rc; editions show #$id: $(echo "$status_line" | sed 's/^status *//')"
  fi
}

check_tls() {
  local out before id
  mkdir -p "$TLS_SINK"
  "$PY" "$HERE/sink.py" "$TLS_PORT" "$TLS_SINK" --starttls "$T/tls.pem" "$T/tls.key" \
    --user digest --password s3cret-interop >"$LOGS/sink-tls.log" 2>&1 &
  PIDS+=($!)
  if ! wait_port "$TLS_PORT" 15; then
    fail starttls-auth "aiosmtpd did not start: $(tail -3 "$LOGS/sink-tls.log")"
    return
  fi
  if ! out=$(d tls lists create daily --name "Daily Digest" 2>&1 &&
    d tls lists create alerts --name "Breaking News" --breaking 2>&1 &&
    d tls lists create urdu --name "روزنامہ خلاصہ" --categories "قومی خبریں,کھیل" 2>&1 &&
    d tls subscribers add sana@example.org --list daily --name "Sana Mir" 2>&1 &&
    d tls subscribers add omar@example.net --list daily 2>&1 &&
    d tls subscribers add sana@example.org --list alerts --name "Sana Mir" 2>&1 &&
    d tls subscribers add farah@example.com --list urdu --name "فرح ناز" 2>&1 &&
    add_english_articles tls 2>&1); then
    fail starttls-auth "setting up the lists failed: ${out:-no output}"
    return
  fi

  # The digest, over STARTTLS with AUTH, trusting only the throwaway certificate.
  before=$(count_eml "$TLS_SINK")
  if tls_env d tls send digest daily >"$LOGS/tls-send.log" 2>&1 && wait_count "$TLS_SINK" $((before + 2)) 20; then
    DIGEST="$TLS_SINK/$(printf %04d "$before").eml"
    pass starttls-auth "2 messages accepted by aiosmtpd after STARTTLS + AUTH"
  else
    fail starttls-auth "$(tail -3 "$LOGS/tls-send.log")"
  fi

  # Breaking news to the alerts list.
  before=$(count_eml "$TLS_SINK")
  if id=$(d tls articles add --category Politics --breaking \
    --title "Finance minister resigns after the budget vote" \
    --url https://news.example.com/2026/11/finance-minister-resigns --author "Bilal Ahmed" \
    --summary "The finance minister handed his resignation to the prime minister an hour after the budget passed, citing differences over the tax package." 2>"$LOGS/tls-breaking-add.log") &&
    tls_env d tls send breaking "$id" --list alerts >"$LOGS/tls-breaking.log" 2>&1 &&
    wait_count "$TLS_SINK" $((before + 1)) 20; then
    BREAKING="$TLS_SINK/$(printf %04d "$before").eml"
  else
    fail breaking-news-send "$(tail -3 "$LOGS/tls-breaking-add.log" "$LOGS/tls-breaking.log")"
  fi

  # The Urdu digest: publication language ur, Urdu articles in Urdu categories.
  local at
  at=$(date -u -d '30 minutes ago' +%Y-%m-%dT%H:%M:%SZ)
  before=$(count_eml "$TLS_SINK")
  if out=$(d tls articles add --language ur --category "قومی خبریں" --published-at "$at" \
    --title "قومی اسمبلی نے نظرثانی شدہ بجٹ منظور کر لیا" \
    --url https://news.example.com/ur/2026/11/budget --author "بلال احمد" \
    --summary "ایوان نے رات گئے اجلاس میں مالیاتی بل کثرت رائے سے منظور کر لیا، حزب اختلاف نے ووٹنگ سے پہلے واک آؤٹ کیا۔" 2>&1 &&
    d tls articles add --language ur --category "کھیل" --published-at "$at" \
      --title "پاکستان نے نیوزی لینڈ کو چھ وکٹوں سے ہرا کر سیریز برابر کر دی" \
      --url https://news.example.com/ur/2026/11/cricket --author "اسپورٹس ڈیسک" \
      --summary "راولپنڈی میں بابر اعظم نے ناقابل شکست اٹھاسی رنز بنائے، فیصلہ کن میچ اتوار کو کھیلا جائے گا۔" 2>&1) &&
    DISPATCH_PUBLICATION_LANGUAGE=ur tls_env d tls send digest urdu >"$LOGS/tls-urdu.log" 2>&1 &&
    wait_count "$TLS_SINK" $((before + 1)) 20; then
    URDU="$TLS_SINK/$(printf %04d "$before").eml"
  else
    fail urdu-digest-send "${out:-} $(tail -3 "$LOGS/tls-urdu.log")"
  fi

  # A wrong password: the edition is paused with a reason, the command fails, nothing arrives.
  sleep 1.1 # the next window starts after the previous digest's end
  d tls articles add --category Sport --title "Shaheen Afridi ruled out of the final with a hamstring strain" \
    --url https://news.example.com/2026/11/shaheen-injury >/dev/null 2>&1
  TLS_PASSWORD=wrong-password expect_paused wrong-password-pauses tls 'authentication refused: 535'

  # Certificates an operator gets wrong: the same pause, with an error that says what to do.
  local db
  for db in tlsca tlsnoca; do
    d "$db" lists create daily --name "Daily Digest" >/dev/null 2>&1 &&
      d "$db" subscribers add omar@example.net --list daily >/dev/null 2>&1 &&
      add_english_articles "$db" >/dev/null 2>&1 ||
      fail "$db-setup" "could not set up database $db"
  done
  "$PY" "$HERE/sink.py" "$TLS_CA_PORT" "$TLS_SINK" --starttls "$T/tls-ca.pem" "$T/tls-ca.key" \
    --user digest --password s3cret-interop >"$LOGS/sink-tls-ca.log" 2>&1 &
  PIDS+=($!)
  if wait_port "$TLS_CA_PORT" 15; then
    TLS_SMTP_PORT=$TLS_CA_PORT TLS_CA="$T/tls-ca.pem" \
      expect_paused tls-ca-true-cert-clear-error tlsca 'CA:FALSE'
  else
    fail tls-ca-true-cert-clear-error "aiosmtpd did not start: $(tail -3 "$LOGS/sink-tls-ca.log")"
  fi
  TLS_CA="" expect_paused tls-no-ca-file-clear-error tlsnoca 'UnknownIssuer.*ca_file'
}

# =============================================================================================
# 3-5. SpamAssassin, DKIM and MIME on the three kinds of message, as they arrived at aiosmtpd.

check_messages() {
  local kind file lang out
  for kind in digest breaking urdu; do
    case $kind in
    digest) file=${DIGEST:-} lang="" ;;
    breaking) file=${BREAKING:-} lang="" ;;
    urdu) file=${URDU:-} lang="--lang ur" ;;
    esac
    if [ -z "$file" ] || [ ! -s "$file" ]; then
      for c in spamassassin dkim mime; do fail "$c-$kind" "no $kind message was received (see above)"; done
      continue
    fi
    if out=$("$PY" "$CHECKS" spam "$file"); then
      pass "spamassassin-$kind" "$(echo "$out" | tail -1)"
    else
      fail "spamassassin-$kind" "$(echo "$out" | tr '\n' ' ')"
    fi
    if out=$("$PY" "$CHECKS" dkim "$T/dkim.pub.pem" "$file"); then
      pass "dkim-$kind" "$(echo "$out" | head -1)"
    else
      fail "dkim-$kind" "$(echo "$out" | tr '\n' ' ')"
    fi
    # shellcheck disable=SC2086
    if out=$("$PY" "$CHECKS" mime "$file" $lang); then
      pass "mime-$kind" "$(echo "$out" | head -1)"
    else
      fail "mime-$kind" "$(echo "$out" | tail -1)"
    fi
  done
  # The signatures survive a real MTA: Postfix adds Received headers, nothing else may change.
  if [ -n "${RELAYED_DIR:-}" ] && [ -n "$(ls "$RELAYED_DIR")" ]; then
    if out=$("$PY" "$CHECKS" dkim "$T/dkim.pub.pem" "$RELAYED_DIR"/*); then
      pass dkim-after-postfix "$(echo "$out" | tail -1) after relaying through Postfix"
    else
      fail dkim-after-postfix "$(echo "$out" | tr '\n' ' ')"
    fi
  else
    fail dkim-after-postfix "no message relayed by Postfix to verify"
  fi
}

# =============================================================================================
# 6. One-click unsubscribe with curl against `dispatch run`, then the next edition skips them.

check_oneclick() {
  local sink="$T/sink-plain" out web="http://127.0.0.1:$WEB_PORT" before msg url res daemon
  mkdir -p "$sink"
  "$PY" "$HERE/sink.py" "$PLAIN_PORT" "$sink" >"$LOGS/sink-plain.log" 2>&1 &
  PIDS+=($!)
  if ! wait_port "$PLAIN_PORT" 15; then
    fail one-click-unsubscribe "aiosmtpd did not start: $(tail -3 "$LOGS/sink-plain.log")"
    return
  fi
  export DISPATCH_WEB_PUBLIC_URL="$web"
  if ! out=$(d web lists create daily --name "Daily Digest" 2>&1 &&
    d web subscribers add leaver@example.org --list daily --name "Zara Leaver" 2>&1 &&
    d web subscribers add stayer@example.org --list daily 2>&1 &&
    d web subscribers add scanner@example.org --list daily 2>&1 &&
    add_english_articles web 2>&1); then
    fail one-click-unsubscribe "setting up the list failed: ${out:-no output}"
    unset DISPATCH_WEB_PUBLIC_URL
    return
  fi
  (cd "$T" && exec env DISPATCH_DATABASE_PATH="$T/web.db" "$BIN" --config "$CFG" run) >"$LOGS/daemon.log" 2>&1 &
  daemon=$!
  PIDS+=($daemon)
  local up=""
  for _ in $(seq 150); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$web/healthz")" = 200 ] && up=1 && break
    kill -0 "$daemon" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$up" ]; then
    fail one-click-unsubscribe "dispatch run did not serve $web/healthz: $(tail -3 "$LOGS/daemon.log")"
    unset DISPATCH_WEB_PUBLIC_URL
    return
  fi

  before=$(count_eml "$sink")
  if ! d web send digest daily >"$LOGS/web-send1.log" 2>&1 || ! wait_count "$sink" $((before + 3)) 20; then
    fail one-click-unsubscribe "first digest: $(tail -3 "$LOGS/web-send1.log")"
    unset DISPATCH_WEB_PUBLIC_URL
    return
  fi
  rcpt_file() { grep -lx "$1" "$sink"/*.rcpt | head -1; }
  msg=$(rcpt_file leaver@example.org)
  url=$("$PY" "$CHECKS" unsub-url "${msg%.rcpt}.eml")
  if [[ "$url" != "$web/"* ]]; then
    fail one-click-unsubscribe "List-Unsubscribe URL ${url:-none} is not under $web"
    unset DISPATCH_WEB_PUBLIC_URL
    return
  fi

  # A link scanner's GET must not unsubscribe anyone (RFC 8058 §1).
  local scan_url code
  scan_url=$("$PY" "$CHECKS" unsub-url "$(rcpt_file scanner@example.org | sed 's/rcpt$/eml/')")
  code=$(curl -s -o "$T/get.html" -w '%{http_code}' "$scan_url")
  if [ "$code" = 200 ] && d web subscribers show scanner@example.org 2>&1 | grep -qE '^daily +active'; then
    pass get-does-not-unsubscribe "GET answered 200 with a page; still active"
  else
    fail get-does-not-unsubscribe "GET answered $code; $(d web subscribers show scanner@example.org 2>&1 | grep -E '^daily')"
  fi

  # Gmail's one-click POST (RFC 8058 §3.2).
  res=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -X POST \
    -H 'Content-Type: application/x-www-form-urlencoded' --data 'List-Unsubscribe=One-Click' "$url")
  local shown
  shown=$(d web subscribers show leaver@example.org 2>&1 | grep -E '^daily ')
  if [ "$res" != "200 " ]; then
    fail one-click-unsubscribe "POST answered '$res' (want '200 ' with no redirect)"
  elif ! echo "$shown" | grep -qE '^daily +unsubscribed'; then
    fail one-click-unsubscribe "POST answered 200 but subscribers show says: $shown"
  else
    pass one-click-unsubscribe "POST answered 200, no redirect; subscribers show: $(echo "$shown" | awk '{print $1, $2}')"
  fi

  # The next edition skips the reader who left.
  sleep 1.1
  d web articles add --category Politics --title "Senate elects a new chairman unopposed" \
    --url https://news.example.com/2026/11/senate-chairman \
    --summary "The upper house chose its new chairman after the only other candidate withdrew." >/dev/null 2>&1
  local sent_before
  sent_before=$(ls "$sink"/*.rcpt | sort)
  before=$(count_eml "$sink")
  if ! d web send digest daily >"$LOGS/web-send2.log" 2>&1 || ! wait_count "$sink" $((before + 2)) 20; then
    fail next-edition-skips-unsubscribed "second digest: $(tail -3 "$LOGS/web-send2.log")"
  else
    sleep 1 # anything extra (a message to the leaver) would arrive now
    local new
    new=$(comm -13 <(echo "$sent_before") <(ls "$sink"/*.rcpt | sort))
    local got
    got=$(for f in $new; do tail -n +2 "$f"; done | sort | paste -sd ' ')
    if echo "$got" | grep -q leaver@example.org; then
      fail next-edition-skips-unsubscribed "the next edition went to leaver@example.org (recipients: $got)"
    elif [ "$got" != "scanner@example.org stayer@example.org" ]; then
      fail next-edition-skips-unsubscribed "the next edition went to: $got"
    else
      pass next-edition-skips-unsubscribed "$(grep -oE 'edition #[0-9]+.*reader\(s\)' "$LOGS/web-send2.log" | sed 's/"[^"]*"/…/'): $got"
    fi
  fi
  unset DISPATCH_WEB_PUBLIC_URL
  kill -TERM "$daemon" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$daemon" 2>/dev/null; then
    fail daemon-stops-on-sigterm "dispatch run still running 10 s after SIGTERM"
  else
    wait "$daemon"
    local rc=$?
    if [ "$rc" -eq 0 ]; then pass daemon-stops-on-sigterm "exit 0"; else fail daemon-stops-on-sigterm "exit $rc: $(tail -2 "$LOGS/daemon.log")"; fi
  fi
}

check_postfix
check_postfix_dsn
check_tls
check_messages
check_oneclick
finish
