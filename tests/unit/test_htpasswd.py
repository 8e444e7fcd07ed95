"""The services' htpasswd (services/htpasswd.py): bcrypt at HTPASSWD_COST, kept while it matches, rewritten when the
password or the cost changed (a service started before the change gets the new file on its next `services.up`)."""

from __future__ import annotations

import bcrypt

from ac_release.services.htpasswd import HTPASSWD_COST
from ac_release.services.htpasswd import write_htpasswd as _write_htpasswd


def test_the_htpasswd_is_written_once_at_its_cost_and_rewritten_for_another_password_or_cost(tmp_path):
    path = tmp_path / "htpasswd"
    assert _write_htpasswd(path, "user", "secret one")
    user, hashed = path.read_text().strip().split(":", 1)
    assert user == "user" and hashed.startswith(f"$2b${HTPASSWD_COST:02d}$")
    assert bcrypt.checkpw(b"secret one", hashed.encode())
    assert path.stat().st_mode & 0o777 == 0o600
    assert not _write_htpasswd(path, "user", "secret one")  # the same password: the file stays as it is

    assert _write_htpasswd(path, "user", "secret two")
    assert bcrypt.checkpw(b"secret two", path.read_text().strip().split(":", 1)[1].encode())

    path.write_text(f"user:{bcrypt.hashpw(b'secret two', bcrypt.gensalt(rounds=12)).decode()}\n")  # an older file
    assert _write_htpasswd(path, "user", "secret two")
    assert path.read_text().split(":", 1)[1].startswith(f"$2b${HTPASSWD_COST:02d}$")
