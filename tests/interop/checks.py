#!/usr/bin/python3
"""Independent checks on what `dispatch` sent, for tests/interop/run.sh.

Each subcommand prints what it found and exits 0 when the check passes, 1 with the reason on
the last line of stdout when it fails. Only software we did not write judges the messages:
Python's `email` package, dkimpy (python3-dkim) and SpamAssassin.

    checks.py mime EML [--lang ur]         MIME structure, required headers, line lengths
    checks.py dkim PUBKEY.pem EML...       DKIM signatures verified with this key (no DNS)
    checks.py spam EML                     SpamAssassin offline: score <= 1.0, no banned rule
    checks.py relay SINKDIR RCPTS          smtp-sink dumps: every recipient exactly once, intact
    checks.py unsub-url EML                prints the http(s) URI of List-Unsubscribe
    checks.py recipients DIR...            prints the RCPT TO addresses of sink.py's messages
"""
import base64
import email
import email.policy
import email.utils
import glob
import os
import re
import subprocess
import sys
import tempfile
import time

REQUIRED_ONCE = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
]

# SpamAssassin rules that must never fire on our mail (deliverability.md §G).
BANNED = re.compile(
    r"^(MISSING_MID|MISSING_DATE|INVALID_DATE|MIME_HTML_ONLY|MPART_ALT_DIFF"
    r"|HTML_IMAGE_ONLY_\w+|DATE_IN_FUTURE_\w+)$"
)
SA_MAX = 1.0


class Fail(Exception):
    pass


def read(path):
    with open(path, "rb") as f:
        return f.read()


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def header_count(msg, name):
    return len(msg.get_all(name) or [])


# ---------------------------------------------------------------------------------------------
# mime


def check_mime(path, lang=None):
    raw = read(path)
    problems = []

    # RFC 5322 §2.1.1: lines at most 998 octets, excluding CRLF.
    lines = raw.split(b"\n")
    longest = max(len(l.rstrip(b"\r")) for l in lines)
    if longest > 998:
        problems.append(f"a line of {longest} octets (> 998)")
    head = raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw else raw.split(b"\n\n", 1)[0]
    if any(b > 127 for b in head):
        problems.append("non-ASCII bytes in the header block (needs RFC 2047)")

    msg = parse(raw)
    for name in REQUIRED_ONCE:
        n = header_count(msg, name)
        if n != 1:
            problems.append(f"{name} appears {n} times (want exactly 1)")
    if msg.get("MIME-Version", "").strip() != "1.0":
        problems.append(f"MIME-Version is {msg.get('MIME-Version')!r}")
    mid = str(msg.get("Message-ID", "")).strip()
    if not re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", mid):
        problems.append(f"Message-ID {mid!r} is not <left@right>")
    date = str(msg.get("Date", ""))
    try:
        when = email.utils.parsedate_to_datetime(date)
        if when.tzinfo is None:
            problems.append(f"Date {date!r} has no numeric zone")
        elif abs(when.timestamp() - time.time()) > 15 * 60:
            problems.append(f"Date {date!r} is more than 15 minutes from now")
    except (TypeError, ValueError):
        problems.append(f"Date {date!r} does not parse")
    lup = str(msg.get("List-Unsubscribe-Post", "")).strip()
    if lup != "List-Unsubscribe=One-Click":
        problems.append(f"List-Unsubscribe-Post is {lup!r}")
    lu = re.sub(r"\s+", "", str(msg.get("List-Unsubscribe", "")))
    if not re.fullmatch(r"(<[^>]+>)(,<[^>]+>)*", lu):
        problems.append(f"List-Unsubscribe {lu!r} is not a list of <URI>")
    elif not re.search(r"<https?://", lu):
        problems.append("List-Unsubscribe has no http(s) URI")
    if not re.search(r"<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+>\s*$",
                     str(msg.get("List-Id", ""))):
        problems.append(f"List-Id {msg.get('List-Id')!r} has no <label.namespace>")

    # RFC 2046 §5.1.4: multipart/alternative, plain text first, HTML last.
    if msg.get_content_type() != "multipart/alternative":
        problems.append(f"top-level type is {msg.get_content_type()}, not multipart/alternative")
    parts = list(msg.iter_parts()) if msg.is_multipart() else []
    types = [p.get_content_type() for p in parts]
    if types != ["text/plain", "text/html"]:
        problems.append(f"parts are {types}, want ['text/plain', 'text/html']")
    html = ""
    for p in parts:
        cs = (p.get_content_charset() or "").lower()
        if cs != "utf-8":
            problems.append(f"{p.get_content_type()} charset is {cs!r}, not utf-8")
        payload = p.get_payload(decode=True) or b""
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.append(f"{p.get_content_type()} is not valid UTF-8: {e}")
            continue
        if not text.strip():
            problems.append(f"{p.get_content_type()} is empty")
        if p.get_content_type() == "text/html":
            html = text
    for d in [msg, *parts]:
        for defect in d.defects:
            problems.append(f"MIME defect: {type(defect).__name__}")
    if html and not re.search(r"</html>\s*$", html, re.I):
        problems.append("the HTML part does not end with </html> (truncated?)")
    if lang == "ur" and html and not re.search(r'<html[^>]*\blang="ur"[^>]*\bdir="rtl"|<html[^>]*\bdir="rtl"[^>]*\blang="ur"', html):
        problems.append('Urdu digest without <html lang="ur" dir="rtl">')

    print(f"{os.path.basename(path)}: {types}, longest line {longest}, subject {str(msg['Subject'])!r}")
    if problems:
        raise Fail("; ".join(problems))


# ---------------------------------------------------------------------------------------------
# dkim


def check_dkim(pubkey_path, paths):
    pem = read(pubkey_path).decode()
    der_b64 = "".join(l for l in pem.splitlines() if l and not l.startswith("-----"))
    der = base64.b64decode(der_b64)  # validates
    record = ("v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()).encode()
    for i, path in enumerate(paths):
        try:
            h = check_dkim_one(read(path), record)
        except Fail as e:
            raise Fail(f"{os.path.basename(path)}: {e}")
        if i == 0:
            print(h)
    print(f"{len(paths)} message(s) verified")


def check_dkim_one(raw, record):
    """Verifies one message's signature with the TXT `record`; returns its tags for display."""
    import dkim  # python3-dkim (dkimpy)

    msg = parse(raw)
    sigs = msg.get_all("DKIM-Signature") or []
    if len(sigs) != 1:
        raise Fail(f"{len(sigs)} DKIM-Signature headers (want 1)")
    tags = dict(
        (k.strip(), v.strip())
        for k, _, v in (t.partition("=") for t in re.sub(r"\s+", "", str(sigs[0])).split(";"))
        if k.strip()
    )
    asked = []

    def dnsfunc(name, timeout=5):
        asked.append(name)
        want = f"{tags.get('s')}._domainkey.{tags.get('d')}."
        n = name.decode() if isinstance(name, bytes) else name
        return record if n.rstrip(".") == want.rstrip(".") else None

    h = [x.lower() for x in tags.get("h", "").split(":")]
    shown = f"d={tags.get('d')} s={tags.get('s')} a={tags.get('a')} c={tags.get('c')} h={':'.join(h)}"
    if not dkim.verify(raw, dnsfunc=dnsfunc):
        raise Fail(f"dkimpy: signature did not verify ({shown})")
    missing = [x for x in ("list-unsubscribe", "list-unsubscribe-post") if x not in h]
    if missing:
        raise Fail(f"h= does not cover {', '.join(missing)} ({shown})")
    return shown


# ---------------------------------------------------------------------------------------------
# spamassassin


def check_spam(path):
    with tempfile.TemporaryDirectory(prefix="sa-home-") as home:
        env = dict(os.environ, HOME=home)
        r = subprocess.run(
            ["spamassassin", "-L", "-x", "--cf=use_bayes 0", "--cf=bayes_auto_learn 0", "-t"],
            stdin=open(path, "rb"),
            capture_output=True,
            env=env,
            timeout=120,
        )
    out = r.stdout.decode("utf-8", "replace")
    status = re.search(r"^X-Spam-Status:.*(?:\n[ \t].*)*", out, re.M)
    status = re.sub(r"\s+", " ", status.group(0)) if status else ""
    m = re.search(r"score=(-?[\d.]+).*?tests=(.*?)(?: autolearn=| version=|$)", status)
    if not m:
        raise Fail(f"no X-Spam-Status in spamassassin's output (exit {r.returncode}): "
                   f"{r.stderr.decode('utf-8', 'replace').strip()[-300:]}")
    score = float(m.group(1))
    tests = [t for t in re.split(r"[\s,]+", m.group(2).strip()) if t and t != "none"]
    points = {}
    table = out.split("Content analysis details:", 1)[-1]
    for pts, rule in re.findall(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s", table, re.M):
        points.setdefault(rule, pts)
    fired = ", ".join(f"{t} {points.get(t, '?')}" for t in tests) or "none"
    print(f"score {score}: {fired}")
    problems = []
    if score > SA_MAX:
        problems.append(f"score {score} > {SA_MAX}")
    banned = [t for t in tests if BANNED.match(t)]
    if banned:
        problems.append("banned rules fired: " + ", ".join(banned))
    if problems:
        raise Fail("; ".join(problems))


# ---------------------------------------------------------------------------------------------
# relay (Postfix -> smtp-sink dumps)


def check_relay(sinkdir, rcpts_file):
    want = [l.strip().lower() for l in open(rcpts_file) if l.strip()]
    seen = {}
    mids = {}
    problems = []
    files = sorted(glob.glob(os.path.join(sinkdir, "*")))
    for path in files:
        raw = read(path)
        msg = parse(raw)
        rcpts = [re.match(r"\s*<([^>]*)>", x).group(1).lower() for x in (msg.get_all("X-Rcpt-Args") or [])]
        name = os.path.basename(path)
        if len(rcpts) != 1:
            problems.append(f"{name}: {len(rcpts)} recipients in one transaction")
        for r in rcpts:
            seen[r] = seen.get(r, 0) + 1
        for h in ("List-Unsubscribe", "List-Unsubscribe-Post", "List-Id", "Message-ID",
                  "DKIM-Signature", "From", "To", "Date", "Subject"):
            n = header_count(msg, h)
            if n != 1:
                problems.append(f"{name}: {h} appears {n} times after relaying")
        if str(msg.get("List-Unsubscribe-Post", "")).strip() != "List-Unsubscribe=One-Click":
            problems.append(f"{name}: List-Unsubscribe-Post changed to {msg.get('List-Unsubscribe-Post')!r}")
        to = email.utils.getaddresses([str(msg.get("To", ""))])
        if rcpts and (not to or to[0][1].lower() != rcpts[0]):
            problems.append(f"{name}: To {msg.get('To')!r} is not the envelope recipient {rcpts[0]}")
        mid = str(msg.get("Message-ID", "")).strip()
        mids[mid] = mids.get(mid, 0) + 1
        parts = list(msg.iter_parts()) if msg.is_multipart() else []
        if [p.get_content_type() for p in parts] != ["text/plain", "text/html"]:
            problems.append(f"{name}: body parts {[p.get_content_type() for p in parts]}")
        else:
            html = parts[1].get_payload(decode=True).decode("utf-8", "replace")
            if not re.search(r"</html>\s*$", html, re.I):
                problems.append(f"{name}: HTML part truncated")
        for d in [msg, *parts]:
            for defect in d.defects:
                problems.append(f"{name}: MIME defect {type(defect).__name__}")
    missing = [r for r in want if r not in seen]
    extra = [r for r in seen if r not in set(want)]
    dups = [r for r, n in seen.items() if n > 1]
    dup_mids = [m for m, n in mids.items() if n > 1]
    print(f"{len(files)} messages for {len(seen)} recipients (want {len(want)}); "
          f"{len(mids)} distinct Message-IDs")
    if missing:
        problems.append(f"{len(missing)} recipients missing, e.g. {missing[:3]}")
    if extra:
        problems.append(f"unexpected recipients {extra[:3]}")
    if dups:
        problems.append(f"{len(dups)} recipients got more than one message, e.g. {dups[:3]}")
    if dup_mids:
        problems.append(f"{len(dup_mids)} Message-IDs used twice")
    if problems:
        raise Fail("; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""))


# ---------------------------------------------------------------------------------------------
# small extractors


def unsub_url(path):
    msg = parse(read(path))
    for uri in re.findall(r"<([^>]+)>", str(msg.get("List-Unsubscribe", ""))):
        if uri.startswith(("https://", "http://")):
            print(uri)
            return
    raise Fail("no http(s) URI in List-Unsubscribe")


def recipients(dirs):
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, "*.rcpt"))):
            for line in open(path).read().splitlines()[1:]:
                if line.strip():
                    print(line.strip().lower())


def main(argv):
    cmd, args = argv[1], argv[2:]
    try:
        if cmd == "mime":
            lang = args[args.index("--lang") + 1] if "--lang" in args else None
            check_mime(args[0], lang)
        elif cmd == "dkim":
            check_dkim(args[0], args[1:])
        elif cmd == "spam":
            check_spam(args[0])
        elif cmd == "relay":
            check_relay(args[0], args[1])
        elif cmd == "unsub-url":
            unsub_url(args[0])
        elif cmd == "recipients":
            recipients(args)
        else:
            raise Fail(f"unknown subcommand {cmd}")
    except Fail as e:
        print(e)
        return 1
    except Exception as e:  # a crash in a checker is a failed check, with the reason
        print(f"checker error: {type(e).__name__}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
