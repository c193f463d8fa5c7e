#!/usr/bin/env python3
"""APPEND a message file to a folder with Python's imaplib (a synchronising
literal: imaplib waits for the `+` go-ahead), then print the tagged answer.

  append.py --host H --port P --user U FOLDER FILE

The password comes from the IMAP_PASSWORD environment variable, never argv.
"""
import sys

from plain_client import login, parser


def main():
    p = parser(__doc__)
    p.add_argument("folder")
    p.add_argument("file")
    a = p.parse_args()
    with open(a.file, "rb") as f:
        raw = f.read()
    c = login(a)
    typ, data = c.append(a.folder, r"(\Seen)", None, raw)
    print(typ, data[0].decode(errors="replace"))
    c.logout()
    return 0 if typ == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
