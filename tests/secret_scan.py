"""Secret scans for the tests: look for the secrets a release uses wherever a release leaves bytes behind.

A `Secret` is a name and the byte strings whose presence means it leaked: the value itself and the forms a leak
could take on the way (base64 at every alignment, so a value inside a Basic auth header or a docker config is found
too; base64url; URL-encoding). A `SecretScan` looks for every form in text, in every file under a directory, in
`docker history`/`docker image inspect`, and in every file of every layer of `docker save` (streamed, never
written to disk). A finding names the secret and the place, never the value.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tarfile
import tempfile
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ac_release.clients.docker import docker_env
from ac_release.model.config import docker_command

# Shorter forms would match by chance somewhere in a gigabyte of image.
MIN_FORM = 16
# Files that hold credentials wherever they are found in an image, whatever the value in them.
CREDENTIAL_FILES = (".pypirc", ".netrc", ".git-credentials", ".docker/config.json")


@dataclass(frozen=True)
class Secret:
    name: str
    forms: dict[bytes, str] = field(repr=False)  # byte string -> how the value is encoded in it

    def __post_init__(self):
        short = [encoding for form, encoding in self.forms.items() if len(form) < MIN_FORM]
        if not self.forms or short:
            raise ValueError(f"{self.name}: too short to scan for ({', '.join(short) or 'no form'})")


@dataclass(frozen=True)
class Finding:
    secret: str
    encoding: str
    where: str

    def __str__(self) -> str:
        return f"{self.secret} ({self.encoding}) in {self.where}"


def base64_runs(value: bytes, urlsafe: bool = False) -> list[bytes]:
    """The base64 characters that encode `value` wherever it starts in an encoded stream: one run per alignment
    (0, 1 or 2 bytes before it in its 3-byte group), without the characters its neighbours also decide."""
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    runs = []
    for shift in range(3):
        encoded = encode(b"\0" * shift + value)
        first = -(-shift * 8 // 6)  # the first character made of the value's bits only
        last = (shift + len(value)) * 8 // 6  # past the last one
        runs.append(encoded[first:last])
    return runs


def encoded_forms(value: bytes) -> dict[bytes, str]:
    forms = {value: "as is"}
    for run in base64_runs(value):
        forms.setdefault(run, "base64")
    for run in base64_runs(value, urlsafe=True):
        forms.setdefault(run, "base64url")
    forms.setdefault(urllib.parse.quote_from_bytes(value, safe="").encode(), "url-encoded")
    return forms


def secret(name: str, value: str | bytes) -> Secret:
    """A password, an API token, a registry credential: its value and its encodings."""
    raw = value.encode() if isinstance(value, str) else value
    return Secret(name, encoded_forms(raw.strip()))


def identity_token_secret(name: str, token: str) -> Secret:
    """Any token of the issuer that minted `token`. Each token differs (time, nonce, signature), but every token of
    one key starts with the same header, which names the key: that header and the start of a payload after it."""
    header = token.split(".")[0]
    if not header.startswith("eyJ"):
        raise ValueError(f"{name}: not a JWT")
    return Secret(name, encoded_forms(f"{header}.eyJ".encode()))


def private_key_secret(name: str, pem: bytes) -> Secret:
    """An EC private key: its scalar (as bytes, and base64 at every alignment, as in DER or a one-line PEM body),
    and each line of its PEM body that carries part of the scalar."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{name}: expected an EC private key")
    scalar = key.private_numbers().private_value.to_bytes((key.curve.key_size + 7) // 8, "big")
    forms = {scalar: "private scalar"}
    for run in base64_runs(scalar):
        forms.setdefault(run, "private scalar in base64")
    der = base64.b64decode(b"".join(line for line in pem.splitlines() if line and not line.startswith(b"-----")))
    start = der.find(scalar)
    if start < 0:
        raise ValueError(f"{name}: the scalar is not in the PEM body")
    lines = [line for line in pem.splitlines() if line and not line.startswith(b"-----")]
    first_char, end_char = start * 4 // 3, -(-(start + len(scalar)) * 4 // 3)
    offset = 0
    for line in lines:
        if offset < end_char and offset + len(line) > first_char:
            forms.setdefault(line, "PEM line")
        offset += len(line)
    return Secret(name, forms)


class SecretScan:
    """Findings of one scan, and how much it read (a scan that read nothing proves nothing)."""

    def __init__(self, secrets: Iterable[Secret], docker: list[str] | None = None):
        self.secrets = list(secrets)
        self.docker = docker or docker_command("auto")
        self.findings: list[Finding] = []
        self.files = 0
        self.bytes = 0
        self.layers = 0

    def report(self) -> str:
        return "\n".join(map(str, self.findings))

    def data(self, data: bytes, where: str) -> None:
        self.bytes += len(data)
        for item in self.secrets:
            for form, encoding in item.forms.items():
                if form in data:
                    self.findings.append(Finding(item.name, encoding, where))
                    break

    def text(self, text: str, where: str) -> None:
        self.data(text.encode(errors="surrogateescape"), where)

    def _name(self, name: str, where: str) -> None:
        """A path inside a tree or a layer: a secret in a file name, and files that hold credentials."""
        self.data(name.encode(errors="surrogateescape"), f"the name of {where}")
        normalised = "/" + name.removeprefix("./").lstrip("/")
        for credentials in CREDENTIAL_FILES:
            if normalised.endswith("/" + credentials):
                self.findings.append(Finding("credential file", credentials, where))

    def tree(self, directory: Path) -> None:
        """Every file under `directory` (which must exist: a scan of nothing is no proof)."""
        if not directory.is_dir():
            raise FileNotFoundError(f"nothing to scan: {directory} is not a directory")
        for path in sorted(directory.rglob("*")):
            self._name(str(path.relative_to(directory)), str(path))
            if path.is_file() and not path.is_symlink():
                self.files += 1
                self.data(path.read_bytes(), str(path))

    def _docker(self, *args: str) -> str:
        result = subprocess.run([*self.docker, *args], capture_output=True, env=docker_env(), timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"docker {args[0]} failed: {result.stderr.decode(errors='replace').strip()[-500:]}")
        return result.stdout.decode(errors="replace")

    def history(self, images: Iterable[str]) -> None:
        """`docker history --no-trunc` (every step, build arguments of RUN steps) and the config (Env, labels)."""
        for image in images:
            self.text(self._docker("history", "--no-trunc", "--format", "{{json .}}", image), f"history of {image}")
            self.text(self._docker("image", "inspect", image), f"docker image inspect {image}")

    def saved(self, images: list[str]) -> None:
        """Every file of every layer, and every config and manifest, of `docker save` of `images`, as it streams."""
        label = f"docker save {' '.join(images)}"
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(
                [*self.docker, "save", *images], stdout=subprocess.PIPE, stderr=errors, env=docker_env()
            )
            try:
                with tarfile.open(fileobj=process.stdout, mode="r|") as saved:
                    for member in saved:
                        if not member.isreg():
                            continue
                        stream = saved.extractfile(member)
                        if _is_archive(stream.peek(512)[:512], f"{label}: {member.name}"):
                            self.layers += 1
                            self._layer(stream, f"{label}: layer {member.name}")
                        else:
                            self.files += 1
                            self.data(stream.read(), f"{label}: {member.name}")
            finally:
                process.stdout.close()
                process.wait(timeout=600)
            errors.seek(0)
            if process.returncode != 0:
                raise RuntimeError(f"{label} failed: {errors.read().decode(errors='replace').strip()[-500:]}")
        if not self.layers:
            raise RuntimeError(f"{label}: no layer found in the saved images")

    def _layer(self, stream, where: str) -> None:
        with tarfile.open(fileobj=stream, mode="r|*") as layer:
            for member in layer:
                self._name(member.name, f"{where}: {member.name}")
                if member.issym() or member.islnk():
                    self.data(member.linkname.encode(errors="surrogateescape"), f"{where}: {member.name} (link)")
                if member.isreg():
                    self.files += 1
                    self.data(layer.extractfile(member).read(), f"{where}: {member.name}")


def _is_archive(head: bytes, where: str) -> bool:
    """A layer: a tar, or one compressed the way tarfile reads. Anything else is scanned as it is."""
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise RuntimeError(f"{where}: a zstd-compressed layer, which this scanner cannot read")
    is_tar = len(head) >= 262 and head[257:262] == b"ustar"
    return is_tar or head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00"))


def release_secrets(
    ctx, registry_credentials: dict[str, str] | None = None, index_password: bool = True
) -> list[Secret]:
    """The secrets a release of `ctx`'s target uses, read where the pipeline reads them: the index password, the
    Sigstore identity token (minted by the sign stage's own code path, for a local instance) and the local
    instance's CA and OIDC keys. A secret that cannot be read fails here (a scan without it would prove nothing).
    Registry credentials come from `docker login`, outside the pipeline: the caller passes them. `index_password`
    False leaves out a password the caller cannot see (the test stage never passes the environment's secrets on)."""
    from ac_release.services.manager import LocalServices
    from ac_release.supply_chain import signing

    index = ctx.target.index
    found = [secret(f"index password ({index.password.describe()})", index.password.read())] if index_password else []
    for registry, credential in (registry_credentials or {}).items():
        found.append(secret(f"registry credential of {registry}", credential))
    if ctx.target.signing.instance == "local":
        # Read first: minting on a missing state directory would create a new instance instead of failing.
        keys = LocalServices(ctx.settings.services).sigstore_dir / "state" / "keys"
        for key in ("ca", "oidc"):
            found.append(private_key_secret(f"local Sigstore {key} key", (keys / f"{key}.key.pem").read_bytes()))
        token = signing.identity_token(ctx)
        found.append(identity_token_secret("Sigstore identity token", token))
    return found


def docker_config_auth(registry: str, username: str, password: str) -> str:
    """A docker config.json holding a login, as `docker login` writes it (for planting a registry credential)."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {registry: {"auth": auth}}}, indent="\t")
