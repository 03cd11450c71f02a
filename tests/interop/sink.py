#!/usr/bin/python3
"""A throwaway SMTP sink (Python's aiosmtpd, which we did not write) for tests/interop/run.sh.

    sink.py PORT OUTDIR [--starttls CERT KEY --user U --password P] [--refuse ADDR REPLY]...
            [--recipients-only]

Every message is written as it arrived on the wire: OUTDIR/NNNN.eml (the DATA bytes) and
OUTDIR/NNNN.rcpt (MAIL FROM, then one RCPT TO per line), renamed into place when complete.
With --recipients-only nothing but each message's recipients is kept, one per line appended
to OUTDIR/recipients.log (a message's lines written at once, after which it is accepted): a
quarter of the file work, for tests that send tens of thousands of messages and only count them.
With --starttls the server requires STARTTLS before MAIL and before AUTH, and AUTH (PLAIN or
LOGIN) accepts only U/P. Each --refuse answers RCPT TO:<ADDR> with REPLY (e.g. "550 5.1.1 ...").
Prints READY when listening; runs until killed.
"""
import argparse
import itertools
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

p = argparse.ArgumentParser()
p.add_argument("port", type=int)
p.add_argument("outdir")
p.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
p.add_argument("--user")
p.add_argument("--password")
p.add_argument("--refuse", nargs=2, action="append", default=[], metavar=("ADDR", "REPLY"))
p.add_argument("--recipients-only", action="store_true")
a = p.parse_args()
log = open(os.path.join(a.outdir, "recipients.log"), "a") if a.recipients_only else None

counter = itertools.count()
lock = threading.Lock()


refused = {addr.lower(): reply for addr, reply in a.refuse}


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = refused.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if log is not None:
            with lock:
                log.write("".join(r + "\n" for r in envelope.rcpt_tos))
                log.flush()
            return "250 2.0.0 OK"
        with lock:
            n = next(counter)
        base = os.path.join(a.outdir, "%04d" % n)
        with open(base + ".rcpt.tmp", "w") as f:
            f.write(envelope.mail_from + "\n" + "\n".join(envelope.rcpt_tos) + "\n")
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(base + ".rcpt.tmp", base + ".rcpt")
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 2.0.0 OK queued as %04d" % n


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == a.user.encode()
        and auth_data.password == a.password.encode()
    )
    return AuthResult(success=ok, handled=False)


kw = dict(hostname="127.0.0.1", port=a.port, server_hostname="sink.interop.test")
if a.starttls:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*a.starttls)
    c = Controller(
        Handler(),
        tls_context=ctx,
        require_starttls=True,
        auth_require_tls=True,
        authenticator=authenticator,
        auth_required=True,
        **kw,
    )
else:
    c = Controller(Handler(), **kw)
c.start()
print("READY", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGINT, lambda *_: stop.set())
stop.wait()
c.stop()
sys.exit(0)
