"""`python -m activities.directory.hash_password`: an argon2 hash for the built-in directory.

Asks for the password twice on a terminal, or reads one line from standard
input when it is piped (`echo secret | python -m ...`). Prints only the hash.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from argon2 import PasswordHasher


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m activities.directory.hash_password",
        description="Print an argon2 hash for a password_hash field of the built-in directory file.",
    )
    parser.parse_args(argv)
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("the two passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("an empty password cannot sign in", file=sys.stderr)
        return 1
    print(PasswordHasher().hash(password))
    return 0


if __name__ == "__main__":
    sys.exit(main())
