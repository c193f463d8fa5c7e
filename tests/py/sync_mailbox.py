#!/usr/bin/env python3
"""Copy folders the way a simple imaplib script does, into OUT/FOLDER/UID.eml.

  sync_mailbox.py --host H --port P --user U OUT FOLDER...

Each folder is opened read-only (EXAMINE: no fetch sets \\Seen). Every message is
fetched by sequence number as imaplib users do (`FETCH n (UID RFC822.SIZE
RFC822)`), and its RFC822.SIZE must equal the length of the bytes that came: a
mismatch in one response is a protocol error, printed and exit 1. The password
comes from the IMAP_PASSWORD environment variable, never argv.
"""
import os
import re
import sys

from plain_client import login, parser


def main():
    p = parser(__doc__)
    p.add_argument("out")
    p.add_argument("folders", nargs="+")
    a = p.parse_args()
    c = login(a)
    for folder in a.folders:
        typ, data = c.select('"%s"' % folder, readonly=True)
        if typ != "OK":
            print("SELECT", folder, typ, data)
            return 1
        count = int(data[0])
        os.makedirs(os.path.join(a.out, folder), exist_ok=True)
        for n in range(1, count + 1):
            typ, data = c.fetch(str(n), "(UID RFC822.SIZE RFC822)")
            if typ != "OK":
                print("FETCH", folder, n, typ, data)
                return 1
            head, body = data[0]
            m = re.search(rb"UID (\d+)", head)
            size = re.search(rb"RFC822\.SIZE (\d+)", head)
            if not m or not size:
                print("FETCH", folder, n, "no UID or RFC822.SIZE in", head)
                return 1
            if int(size.group(1)) != len(body):
                print("SIZE", folder, m.group(1).decode(), size.group(1).decode(), len(body))
                return 1
            with open(os.path.join(a.out, folder, m.group(1).decode() + ".eml"), "wb") as f:
                f.write(body)
        print("synced", folder, count)
    c.logout()
    return 0


if __name__ == "__main__":
    sys.exit(main())
