"""Base images of the pipeline's own, built from Debian's archive when no registry serves official ones.

An image built by debootstrap gets a new id on every run, which would invalidate every layer above it, so each
base is tagged by a hash of its inputs and built once: later runs find the tag and reuse it.

The archive is reached over plain HTTP, so its signature is what makes it trustworthy: debootstrap checks the
Release file against Debian's archive keyring (`--force-check-gpg`), and a missing keyring or a bad signature is a
refusal. Official bases (`python:<py>-slim-<distro>`) are pinned by digest in images/official-images.toml.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path

from ac_release.clients.docker import Docker
from ac_release.clients.retry import Transient, retry
from ac_release.core.errors import ReleaseError

DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# What `python:<py>-slim-<distro>` gives a Dockerfile: a Python with venv, and a CA store.
PACKAGES = ("ca-certificates", "python3", "python3-venv")
RECIPE = "3"  # bump when the recipe below changes in a way the other inputs do not show
REPOSITORY = "ac-release/debian"
# Debian's package debian-archive-keyring (installed by .ci/bootstrap): the keys that sign the archive's Release files.
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
OFFICIAL_IMAGES = Path(__file__).parents[2] / "images" / "official-images.toml"
_PINNED = re.compile(r"^[a-z0-9][a-z0-9._/-]*:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}$")
# The OCI labels by which every release image records the base it is built FROM (images/Dockerfile.j2): the
# reference without its digest, and the digest `base_digest` decides. `invoke verify` reads them from the registry.
BASE_NAME_LABEL = "org.opencontainers.image.base.name"
BASE_DIGEST_LABEL = "org.opencontainers.image.base.digest"


def official_images(path: Path = OFFICIAL_IMAGES) -> dict[str, str]:
    """{`name:tag`: `name:tag@sha256:<digest>`}: every official image the pipeline pulls, pinned by digest."""
    try:
        pins = tomllib.loads(path.read_text())["images"]
        refs = {name: f"{name}@{digest}" for name, digest in pins.items()}
    except (OSError, KeyError, AttributeError, tomllib.TOMLDecodeError) as exc:
        raise ReleaseError(f"{path}: cannot read the official image pins ({exc!r})") from exc
    if bad := [ref for ref in refs.values() if not _PINNED.match(ref)]:
        raise ReleaseError(f"{path}: {bad[0]!r} is not pinned as name:tag@sha256:<64 hex digits>")
    return refs


def official_image(name: str, path: Path = OFFICIAL_IMAGES) -> str:
    """An official image by its digest; one that is not pinned is refused, never pulled by a floating tag."""
    refs = official_images(path)
    if name not in refs:
        raise ReleaseError(f'{name} has no pinned digest: add it to {path} (name = "sha256:<digest>")')
    return refs[name]


def official_base(distro: str, python: str) -> str:
    return official_image(f"python:{python}-slim-{distro}")


def _tag(suite: str, keyring: Path) -> str:
    keyring_sha256 = hashlib.sha256(keyring.read_bytes()).hexdigest()
    inputs = "\n".join([RECIPE, suite, DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR, *PACKAGES, str(keyring), keyring_sha256])
    return f"{REPOSITORY}:{suite}-{hashlib.sha256(inputs.encode()).hexdigest()[:12]}"


def _check_keyring(keyring: Path) -> None:
    if not keyring.is_file():
        raise ReleaseError(
            f"Debian archive keyring {keyring} is missing: run .ci/bootstrap "
            "(or apt-get install debian-archive-keyring); the base is never built from an unchecked archive"
        )
    if shutil.which("gpgv") is None:
        raise ReleaseError("gpgv is not installed (debootstrap needs it to check the archive): apt-get install gpgv")


def _sources(suite: str) -> str:
    return (
        f"deb {DEBIAN_MIRROR} {suite} main\n"
        f"deb {DEBIAN_MIRROR} {suite}-updates main\n"
        f"deb {DEBIAN_SECURITY_MIRROR} {suite}-security main\n"
    )


# debootstrap's words for a download that did not arrive (the mirror or the network, not the archive's signature):
# worth another try. A bad signature or a missing package is final.
DOWNLOAD_FAILED = ("E: Failed getting release file", "E: Couldn't download", "E: Failed getting release signature")
RETRY_DELAY = 5.0  # seconds before the second try, doubled before the third


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        # debootstrap's reason is its `E:` line; the lines after it are advice
        errors = [line for line in lines if line.startswith("E: ")]
        reason = (errors or lines[-1:] or ["no output"])[0]
        if reason.startswith(DOWNLOAD_FAILED):
            raise Transient(f"exit {result.returncode}: {reason}")
        raise ReleaseError(f"{what} failed (exit {result.returncode}): {reason}")


def _debootstrap(argv: list[str], what: str, rootfs: Path) -> None:
    """debootstrap into an empty `rootfs`, tried again (from empty) when a download did not arrive."""

    def attempt() -> None:
        shutil.rmtree(rootfs, ignore_errors=True)
        _run(argv, what)

    retry(attempt, what=what, attempts=3, first_delay=RETRY_DELAY)


def ensure_debian_base(docker: Docker, suite: str, log=print, keyring: Path = KEYRING) -> str:
    """Return the tag of the Debian `suite` base image, building it with debootstrap if it is not there yet."""
    _check_keyring(keyring)
    tag = _tag(suite, keyring)
    if docker.image_id(tag):
        return tag
    if shutil.which("debootstrap") is None:
        raise ReleaseError("debootstrap is not installed: run .ci/bootstrap (or apt-get install debootstrap)")
    log(f"building base image {tag} from Debian's archive (once per input change)")
    with tempfile.TemporaryDirectory(prefix=f"ac-base-{suite}-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _debootstrap(
            [
                "debootstrap",
                "--variant=minbase",
                f"--keyring={keyring}",
                "--force-check-gpg",
                f"--include={','.join(PACKAGES)}",
                suite,
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            f"debootstrap {suite} (archive checked against {keyring})",
            rootfs,
        )
        (rootfs / "etc/apt/sources.list").write_text(_sources(suite))
        _run(
            [
                "chroot",
                str(rootfs),
                "sh",
                "-c",
                "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq && apt-get clean"
                " && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log",
            ],
            f"security updates of the {suite} base",
        )
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            docker(
                "import",
                "--change",
                "ENV LANG=C.UTF-8",
                "--change",
                'CMD ["bash"]',
                "-",
                tag,
                stdin=tar.stdout,
                capture=True,
            )
        finally:
            tar.stdout.close()
            tar.wait()
    return tag


def base_reference(mode: str, distro: str, python: str) -> str:
    """The reference of a flavour's base image, without building it."""
    if mode == "official":
        return official_base(distro, python)
    if mode == "debootstrap":
        _check_keyring(KEYRING)
        return _tag(distro, KEYRING)
    raise ReleaseError(f"unknown base_images mode {mode!r}: use 'official' or 'debootstrap' in release.toml")


def base_digest(base_image: str, image_id: str | None, labels: Mapping[str, str] | None = None) -> str:
    """The base image as a digest, the one rule of the build's base labels, attest's provenance and verify: the
    pinned digest of an official image, else (a debootstrap base, built on the build machine and never pushed) its
    image id there, `image_id` from the local engine. With a pushed image's `labels` (verify, on any machine; attest),
    the digest is the one they record: they must name `base_image`, a debootstrap base's as `image_id` where the
    engine has it, an official base's as its pin (a label never overrides a pin)."""
    name, _, pinned = base_image.partition("@")
    if labels is None:
        if not pinned and not image_id:
            raise ReleaseError(f"base image {base_image} is not in the Docker engine: run `invoke images` to build it")
        return pinned or image_id
    recorded = f"{labels.get(BASE_NAME_LABEL) or '(none)'}@{labels.get(BASE_DIGEST_LABEL) or '(none)'}"
    if labels.get(BASE_NAME_LABEL) != name or not labels.get(BASE_DIGEST_LABEL):
        raise ReleaseError(f"the image's labels name its base {recorded}, not {name}")
    if (expected := pinned or image_id) and labels[BASE_DIGEST_LABEL] != expected:
        source = f"the pin of {OFFICIAL_IMAGES.name}" if pinned else "the Docker engine"
        raise ReleaseError(f"the image's labels name its base {recorded}, {source} says {name}@{expected}")
    return labels[BASE_DIGEST_LABEL]


def labelled_base(mode: str, distro: str, python: str, labels: Mapping[str, str]) -> tuple[str, str]:
    """(reference, digest) of a flavour's base as a pushed image's labels record it, needing nothing of the build
    machine: an official base must be its pin; a debootstrap base's tag (a hash of the build machine's recipe and
    Debian keyring) and image id are the labels', the tag one of this pipeline's Debian `distro` bases."""
    if mode == "debootstrap":
        name = labels.get(BASE_NAME_LABEL) or ""
        if not re.fullmatch(rf"{re.escape(REPOSITORY)}:{re.escape(distro)}-[0-9a-f]{{12}}", name):
            raise ReleaseError(
                f"the image's label {BASE_NAME_LABEL} is {name!r}, not a {REPOSITORY}:{distro}-<hash> base"
            )
        return name, base_digest(name, None, labels)
    reference = base_reference(mode, distro, python)
    return reference, base_digest(reference, None, labels)


def ensure_base(docker: Docker, mode: str, distro: str, python: str, log=print) -> str:
    """The base image of a flavour: a setting of the target, one code path for both worlds."""
    if mode == "official":
        return official_base(distro, python)
    if mode == "debootstrap":
        return ensure_debian_base(docker, distro, log)
    raise ReleaseError(f"unknown base_images mode {mode!r}: use 'official' or 'debootstrap' in release.toml")
