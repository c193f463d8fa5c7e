#!/usr/bin/env python3
"""A full imaplib session for crmproxy's integration tests.

Prints a normalised transcript (one line per step) on stdout, so that the same
session run directly against Dovecot and through crmproxy can be compared byte for
byte. Values that differ between two runs of one server (UIDVALIDITY, timings) are
replaced by placeholders; capabilities are printed on their own CAPS lines so the
Rust test can compare them explicitly.

The password comes from the IMAP_PASSWORD environment variable, never argv.
"""
import argparse
import imaplib
import os
import re
import ssl
import sys
import time

FIXED_DATE = '"23-Nov-2026 09:30:00 +0000"'


def msg(n, extra_headers=""):
    body = "".join(f"Line {i} of message {n}, with some text to make it longer.\r\n" for i in range(40))
    return (
        f"From: Alice Example <alice@example.com>\r\n"
        f"To: Bob Example <bob@example.org>\r\n"
        f"Subject: Session test {n}\r\n"
        f"Date: Mon, 23 Nov 2026 09:{n:02d}:00 +0000\r\n"
        f"Message-ID: <session-{n}@example.com>\r\n"
        f"{extra_headers}"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: multipart/mixed; boundary=\"b{n}\"\r\n\r\n"
        f"--b{n}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
        f"--b{n}\r\nContent-Type: application/pdf; name=\"q{n}.pdf\"\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\r\n"
        f"--b{n}--\r\n"
    ).encode()


NORMALISE = [
    (re.compile(rb"(UIDVALIDITY|APPENDUID|COPYUID) \d+"), rb"\1 N"),
    (re.compile(rb"\(\d+\.\d+( \+ \d+\.\d+)* secs\)"), rb"(T secs)"),
    (re.compile(rb"HIGHESTMODSEQ \d+"), rb"HIGHESTMODSEQ N"),
]


def norm(value):
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(norm(v) for v in value) + "]"
    if isinstance(value, str):
        value = value.encode()
    if value is None:
        return "None"
    for rx, rep in NORMALISE:
        value = rx.sub(rep, value)
    return repr(value)


def step(name, result):
    print(f"{name}: {norm(result)}", flush=True)


def connect(a, quiet=False):
    if a.tls == "imaps":
        ctx = ssl.create_default_context(cafile=a.cafile)
        return imaplib.IMAP4_SSL(a.host, a.port, ssl_context=ctx)
    c = imaplib.IMAP4(a.host, a.port)
    if a.tls == "starttls":
        ctx = ssl.create_default_context(cafile=a.cafile)
        result = c.starttls(ssl_context=ctx)
        if not quiet:
            step("STARTTLS", result)
    return c


def caps(label, c):
    print(f"CAPS {label}: {' '.join(sorted(c.capabilities))}", flush=True)


def raw(c, line, literal=None):
    """Send a raw command (optionally followed by a non-synchronising literal) and
    return every response line up to the tagged one."""
    tag = c._new_tag()
    c.send(tag + b" " + line + b"\r\n")
    if literal is not None:
        c.send(literal + b"\r\n")
    lines = []
    while True:
        got = c._get_line()
        lines.append(got)
        m = re.search(rb"\{(\d+)\}$", got)
        if m:
            lines.append(c.read(int(m.group(1))))
        if got.startswith(tag + b" "):
            return [l.replace(tag, b"TAG") for l in lines]


def idle_with_arrival(c, a):
    tag = c._new_tag()
    c.send(tag + b" IDLE\r\n")
    cont = c._get_line()
    step("IDLE start", cont[:1])
    other = connect(a, quiet=True)
    other.login(a.user, os.environ["IMAP_PASSWORD"])
    step("IDLE other APPEND", other.append("INBOX", None, FIXED_DATE, msg(9)))
    other.logout()
    seen = []
    while True:
        line = c._get_line()
        seen.append(line)
        if line.endswith(b"EXISTS"):
            break
    c.send(b"DONE\r\n")
    while True:
        line = c._get_line()
        seen.append(line.replace(tag, b"TAG"))
        if line.startswith(tag + b" "):
            break
    step("IDLE lines", seen)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls", choices=["plain", "imaps", "starttls"], default="plain")
    p.add_argument("--cafile")
    p.add_argument("--user", required=True)
    p.add_argument("--short", action="store_true", help="login, list, select, logout only")
    a = p.parse_args()
    password = os.environ["IMAP_PASSWORD"]

    c = connect(a)
    caps("pre-login", c)
    step("LOGIN", c.login(a.user, password))
    typ, dat = c.capability()
    step("CAPABILITY", typ)
    # Dovecot sends an untagged CAPABILITY inside a successful LOGIN's response (to
    # clients that asked CAPABILITY before); imaplib collects it with the answer to
    # the CAPABILITY command: the first is the login's, the last the command's.
    if len(dat) > 1:
        print(f"CAPS login-response: {' '.join(sorted(dat[0].decode().upper().split()))}", flush=True)
    print(f"CAPS post-login: {' '.join(sorted(dat[-1].decode().upper().split()))}", flush=True)
    step("LIST", c.list())
    if a.short:
        step("SELECT", c.select("INBOX"))
        step("LOGOUT", c.logout()[0])
        return

    for n in (1, 2, 3):
        step(f"APPEND {n}", c.append("INBOX", "(\\Flagged)" if n == 1 else None, FIXED_DATE, msg(n)))
    m4 = msg(4)
    step("APPEND LITERAL+", raw(c, b"APPEND INBOX (\\Seen) \"" + FIXED_DATE.strip('"').encode() + b"\" {%d+}" % len(m4), m4))
    step("SELECT", c.select("INBOX"))
    step("UID SEARCH ALL", c.uid("SEARCH", None, "ALL"))
    step("UID SEARCH SUBJECT", c.uid("SEARCH", None, 'SUBJECT "test 2"'))
    step("UID FETCH body", c.uid("FETCH", "1:*", "(BODY.PEEK[])"))
    step("UID FETCH header fields", c.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (FROM SUBJECT MESSAGE-ID)])"))
    step("UID FETCH bodystructure", c.uid("FETCH", "1:*", "(BODYSTRUCTURE RFC822.SIZE INTERNALDATE FLAGS)"))
    step("UID FETCH partial", c.uid("FETCH", "2", "(BODY.PEEK[]<0.100>)"))
    step("UID FETCH part", c.uid("FETCH", "3", "(BODY.PEEK[1.MIME] BODY.PEEK[2])"))
    step("UID STORE seen", c.uid("STORE", "1", "+FLAGS", "(\\Seen)"))
    step("UID STORE keyword", c.uid("STORE", "2", "+FLAGS", "(Customer_Acme)"))
    step("FLAGS", c.uid("FETCH", "1:*", "(FLAGS)"))
    step("UID COPY", c.uid("COPY", "1", "Sent"))
    step("UID MOVE", c.uid("MOVE", "2", "Trash"))
    step("UID STORE deleted", c.uid("STORE", "3", "+FLAGS.SILENT", "(\\Deleted)"))
    step("EXPUNGE", c.expunge())
    idle_with_arrival(c, a)
    step("UID FETCH after idle", c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
    for box in ("Sent", "Trash"):
        step(f"SELECT {box}", c.select(box))
        step(f"FETCH {box}", c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])"))
    step("STATUS", c.status("INBOX", "(MESSAGES UIDNEXT UNSEEN)"))
    step("NOOP", c.noop())
    step("LOGOUT", c.logout()[0])


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # printed so that the test shows where the session broke
        print(f"ERROR: {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
