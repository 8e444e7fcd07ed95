"""The services' logins: bcrypt htpasswd files, which docker-registry and pypiserver both read."""

from __future__ import annotations

from pathlib import Path

from ac_release.core.fsutil import atomic_write_text

# bcrypt's cost: Apache `htpasswd -B`'s default, which the registry's documentation uses. docker-registry checks the
# hash on every request (it keeps no session), and at bcrypt's own default (12) each registry call of a release cost
# 0.25 s of the host's CPU: a re-run to staging spent most of its time there. The work factor only slows the cracking
# of a leaked file (0600, on the services' host) holding these random secrets.
HTPASSWD_COST = 5


def write_htpasswd(path: Path, username: str, password: str) -> bool:
    """A bcrypt htpasswd entry, rewritten only when the password or the cost changed (a fresh salt would change the
    file on every start). True when written."""
    import bcrypt

    if path.exists():
        for line in path.read_text().splitlines():
            user, _, hashed = line.partition(":")
            if (
                user == username
                and cost(hashed) == HTPASSWD_COST
                and bcrypt.checkpw(password.encode(), hashed.encode())
            ):
                return False
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=HTPASSWD_COST)).decode()
    atomic_write_text(path, f"{username}:{hashed}\n", mode=0o600)
    return True


def cost(hashed: str) -> int | None:
    """The cost of a bcrypt hash (`$2b$05$...` -> 5), or None when it is not one."""
    parts = hashed.split("$")
    return int(parts[2]) if len(parts) > 3 and parts[2].isdigit() else None
