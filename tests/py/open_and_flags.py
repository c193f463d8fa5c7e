#!/usr/bin/env python3
"""A mail client's two moves for the pane's end-to-end test, with Python's imaplib.

  open   UID   fetch the whole message (BODY[]) as a client does when it shows it
  open-number N  the same by sequence number, as most imaplib scripts do
                 (`FETCH N (BODY[])` in a session that has seen no UIDs)
  flags  UID   print the message's FLAGS, one per line (read-only EXAMINE)

The password comes from the IMAP_PASSWORD environment variable, never argv.
"""
import imaplib
import re
import sys

from plain_client import login, parser


def main():
    p = parser(__doc__)
    p.add_argument("action", choices=["open", "open-number", "flags"])
    p.add_argument("uid")
    a = p.parse_args()
    c = login(a)
    if a.action == "open":
        typ, _ = c.select("INBOX")
        assert typ == "OK", typ
        typ, data = c.uid("FETCH", a.uid, "(BODY[])")
        assert typ == "OK", (typ, data)
        body = data[0][1]
        print(f"fetched {len(body)} bytes")
    elif a.action == "open-number":
        typ, _ = c.select("INBOX")
        assert typ == "OK", typ
        typ, data = c.fetch(a.uid, "(BODY[])")
        assert typ == "OK", (typ, data)
        body = data[0][1]
        print(f"fetched {len(body)} bytes")
    else:
        typ, _ = c.select("INBOX", readonly=True)
        assert typ == "OK", typ
        typ, data = c.uid("FETCH", a.uid, "(FLAGS)")
        assert typ == "OK", (typ, data)
        m = re.search(rb"FLAGS \(([^)]*)\)", data[0])
        for f in (m.group(1).split() if m else []):
            print(f.decode())
    c.logout()


if __name__ == "__main__":
    sys.exit(main())
