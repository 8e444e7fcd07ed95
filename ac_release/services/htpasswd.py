"""The services' logins: bcrypt htpasswd files, which docker-registry and pypiserver both read."""

from __future__ import annotations

from pathlib import Path

from ac_release.core.fsutil import atomic_write_text


def write_htpasswd(path: Path, username: str, password: str) -> bool:
    """A bcrypt htpasswd entry, rewritten only when the password changed (a fresh salt would change the file on
    every start). True when written."""
    import bcrypt

    if path.exists():
        for line in path.read_text().splitlines():
            user, _, hashed = line.partition(":")
            if user == username and bcrypt.checkpw(password.encode(), hashed.encode()):
                return False
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    atomic_write_text(path, f"{username}:{hashed}\n", mode=0o600)
    return True
