"""dockerd's trust in the services' CA: a `certs.d/HOST:PORT/ca.crt` entry for each registry, outside the services'
directory, written by `up` and removed by `down`; a record in the run directory names the entries this service set
wrote, so that `down` removes those and no other."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_write_bytes, atomic_write_text, sha256_bytes
from ac_release.model.config import ServiceRegistry, ServicesSettings

DOCKER_CERTS = Path("/etc/docker/certs.d")  # where dockerd looks for a registry's CA: certs.d/HOST:PORT/ca.crt


class DockerTrust:
    def __init__(self, settings: ServicesSettings, docker_certs: Path = DOCKER_CERTS):
        self.settings = settings
        self.docker_certs = docker_certs

    def entry(self, registry: ServiceRegistry) -> Path:
        return self.docker_certs / self.settings.registry_address(registry) / "ca.crt"

    @property
    def record(self) -> Path:
        """JSON, {entry: {"sha256": of what was written, "directory": whether the HOST:PORT directory was made for
        it}}."""
        return self.settings.run_dir / "docker-certs.json"

    def _written(self) -> dict[str, dict]:
        try:
            return json.loads(self.record.read_text())
        except FileNotFoundError:
            return {}

    def _write_record(self, written: dict[str, dict]) -> None:
        atomic_write_text(self.record, json.dumps(written, indent=1, sort_keys=True) + "\n")

    def trust(self, ca: bytes) -> None:
        """The CA as each registry's entry: written whole (a temporary file renamed), the entry recorded before it is
        written (a crash in between leaves a record of an entry never written, which `untrust` passes over)."""
        written = self._written()
        digest = sha256_bytes(ca)
        for registry in self.settings.registries:
            path = self.entry(registry)
            entry = written.get(str(path))
            if _read_or_none(path) == ca:
                if entry is None:  # an earlier `up` of these services wrote it (the CA is theirs alone), unrecorded
                    written[str(path)] = {"sha256": digest, "directory": _holds_only(path.parent, path.name)}
                    self._write_record(written)
                continue
            made_directory = not path.parent.exists() or (entry is not None and entry["directory"])
            written[str(path)] = {"sha256": digest, "directory": made_directory}
            self._write_record(written)
            try:
                atomic_write_bytes(path, ca)
            except OSError as exc:
                if entry is None:  # the record as it was: nothing written
                    del written[str(path)]
                else:
                    written[str(path)] = entry
                self._write_record(written)
                raise ReleaseError(
                    f"cannot write {path} ({exc.strerror}): dockerd reads a registry's CA from there; "
                    "run the services as a user who may write it (root)"
                ) from None

    def untrust(self) -> None:
        """Remove the entries this service set wrote, each only while it holds what was written (another service set
        may have written its own CA there since), and a HOST:PORT directory only when it was made for the entry."""
        for name, entry in self._written().items():
            path = Path(name)
            content = _read_or_none(path)
            if content is not None and sha256_bytes(content) == entry["sha256"]:
                path.unlink()
            if entry["directory"]:
                _remove_empty(path.parent)
        self.record.unlink(missing_ok=True)


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _holds_only(directory: Path, name: str) -> bool:
    try:
        return os.listdir(directory) == [name]
    except OSError:
        return False


def _remove_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        pass
