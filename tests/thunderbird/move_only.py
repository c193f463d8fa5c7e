#!/usr/bin/env python3
"""Move the first message of a folder into another the way a client without
keywords does (Outlook's IMAP, a phone's mail app): MOVE, or COPY then
\\Deleted and EXPUNGE. No keyword is stored. Prints the tagged answers.

  move_only.py --host H --port P --user U --how move|copy-expunge FROM TO

The password comes from the IMAP_PASSWORD environment variable, never argv.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))
from plain_client import login, parser  # noqa: E402


def main():
    p = parser(__doc__)
    p.add_argument("--how", choices=["move", "copy-expunge"], required=True)
    p.add_argument("source")
    p.add_argument("target")
    a = p.parse_args()
    c = login(a)
    typ, data = c.select(a.source)
    if typ != "OK":
        print(typ, data)
        return 1
    if a.how == "move":
        answers = [c._simple_command("MOVE", "1", a.target)[0]]
    else:
        answers = [
            c.copy("1", a.target)[0],
            c.store("1", "+FLAGS", "(\\Deleted)")[0],
            c.expunge()[0],
        ]
    print(" ".join(answers))
    c.logout()
    return 0 if all(t == "OK" for t in answers) else 1


if __name__ == "__main__":
    sys.exit(main())
