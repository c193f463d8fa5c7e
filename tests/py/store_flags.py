#!/usr/bin/env python3
"""SELECT a folder and STORE flags by sequence number with Python's imaplib, in
a fresh session that fetched nothing before (so a proxy has seen no UIDs), then
print the tagged answer.

  store_flags.py --host H --port P --user U FOLDER SEQUENCE-SET FLAGS

FLAGS like '($CRM_Track)'. The password comes from the IMAP_PASSWORD environment
variable, never argv.
"""
import sys

from plain_client import login, parser


def main():
    p = parser(__doc__)
    p.add_argument("folder")
    p.add_argument("set")
    p.add_argument("flags")
    a = p.parse_args()
    c = login(a)
    typ, data = c.select(a.folder)
    if typ != "OK":
        print(typ, data)
        return 1
    typ, data = c.store(a.set, "+FLAGS", a.flags)
    print(typ)
    c.logout()
    return 0 if typ == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
