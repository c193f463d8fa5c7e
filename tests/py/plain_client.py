"""What the small imaplib scripts share: the arguments the Rust tests' run_python
passes (--host --port --tls plain --user [--cafile]) and a logged-in plain
connection. The password comes from the IMAP_PASSWORD environment variable,
never argv."""
import argparse
import imaplib
import os


def parser(doc):
    p = argparse.ArgumentParser(description=doc)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls", choices=["plain"], default="plain")
    p.add_argument("--user", required=True)
    p.add_argument("--cafile")
    return p


def login(args):
    c = imaplib.IMAP4(args.host, args.port)
    c.login(args.user, os.environ["IMAP_PASSWORD"])
    return c
