"""Base images of the pipeline's own, built from Debian's archive when no registry serves official ones.

An image built by debootstrap gets a new id on every run, which would invalidate every layer above it, so each
base is tagged by a hash of its inputs and built once: later runs find the tag and reuse it.

One base per platform (`ac-release/debian:<suite>-<arch>-<hash>`, the platform among the hashed inputs): debootstrap
`--arch` builds a foreign architecture's tree in one stage when the kernel runs its binaries (binfmt_misc with the F
flag, `.ci/enable-arm64-emulation`); the tree becomes an image by a BuildKit build `FROM scratch` with `--platform`, for
every platform (engine 20.10 ignores `docker import --platform` and labels the image amd64), and the image's platform
is checked before the tag is used. Security updates come from `<suite>-security`. Where the archive lists them for an
architecture but serves none of its pool (bullseye-security's arm64 pool answered 404 on 2026-12-07, its amd64 pool
200), the base is built from the point release and `-updates` alone, says so in its label SECURITY_LABEL and in every
run that uses it (a warning line), and the release goes on: it is a rehearsal base (production builds FROM official
images). Any other missing file is a refusal.

The archive is reached over plain HTTP, so its signature is what makes it trustworthy: debootstrap checks the
Release file against Debian's archive keyring (`--force-check-gpg`), and a missing keyring or a bad signature is a
refusal. Official bases (`python:<py>-slim-<distro>`) are pinned by digest in images/official-images.toml.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path

from ac_release.building.build_once import build_once
from ac_release.clients.docker import Docker
from ac_release.clients.platforms import require_buildable
from ac_release.clients.retry import Transient, retry
from ac_release.core.errors import ReleaseError
from ac_release.model.debian import DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR, KEYRING, suites
from ac_release.model.flavours import AMD64, PLATFORMS, Platform

# What `python:<py>-slim-<distro>` gives a Dockerfile: a Python with venv, and a CA store.
PACKAGES = ("ca-certificates", "python3", "python3-venv")
RECIPE = "4"  # bump when the recipe below changes in a way the other inputs do not show (4: imported by BuildKit)
REPOSITORY = "ac-release/debian"
OFFICIAL_IMAGES = Path(__file__).parents[2] / "images" / "official-images.toml"
_PINNED = re.compile(r"^[a-z0-9][a-z0-9._/-]*:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}$")
# The OCI labels by which every release image records the base it is built FROM (images/Dockerfile.j2): the
# reference without its digest, and the digest `base_digest` decides. `invoke verify` reads them from the registry.
BASE_NAME_LABEL = "org.opencontainers.image.base.name"
BASE_DIGEST_LABEL = "org.opencontainers.image.base.digest"
# On a debootstrap base built without its security suite (the archive did not serve it for the architecture): why.
SECURITY_LABEL = "io.astronomer.ac-release.base.security-updates"


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


def _tag(suite: str, keyring: Path, platform: Platform = AMD64) -> str:
    """The base's tag: a hash of every input of its build, the platform among them, and the architecture named."""
    keyring_sha256 = hashlib.sha256(keyring.read_bytes()).hexdigest()
    inputs = "\n".join(
        [RECIPE, suite, str(platform), DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR, *PACKAGES, str(keyring), keyring_sha256]
    )
    return f"{REPOSITORY}:{suite}-{platform.debian_arch}-{hashlib.sha256(inputs.encode()).hexdigest()[:12]}"


def _debootstrap_argv(suite: str, rootfs: Path, keyring: Path, platform: Platform) -> list[str]:
    """One stage for every architecture: a foreign one's second stage runs through the kernel's emulator."""
    return [
        "debootstrap",
        f"--arch={platform.debian_arch}",
        "--variant=minbase",
        f"--keyring={keyring}",
        "--force-check-gpg",
        f"--include={','.join(PACKAGES)}",
        suite,
        str(rootfs),
        DEBIAN_MIRROR,
    ]


def _check_keyring(keyring: Path) -> None:
    if not keyring.is_file():
        raise ReleaseError(
            f"Debian archive keyring {keyring} is missing: run .ci/bootstrap "
            "(or apt-get install debian-archive-keyring); the base is never built from an unchecked archive"
        )
    if shutil.which("gpgv") is None:
        raise ReleaseError("gpgv is not installed (debootstrap needs it to check the archive): apt-get install gpgv")


def _sources(suite: str, security: bool = True) -> str:
    return "".join(f"deb {s.mirror} {s.name} main\n" for s in suites(suite) if security or not s.security)


UPGRADE = (
    "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq && apt-get clean"
    " && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log"
)


# debootstrap's words for a download that did not arrive (the mirror or the network, not the archive's signature):
# worth another try. A bad signature or a missing package is final.
DOWNLOAD_FAILED = ("E: Failed getting release file", "E: Couldn't download", "E: Failed getting release signature")
RETRY_DELAY = 5.0  # seconds before the second try, doubled before the third


def _run(argv: list[str], what: str, unserved_ok: str | None = None) -> list[str]:
    """Run a step of the build; a failure is one line. With `unserved_ok` (a URL prefix), package files under it
    that the archive does not serve (404) are returned instead of refused."""
    result = subprocess.run(argv, capture_output=True, text=True, env=chroot_env(os.environ))
    if result.returncode != 0:
        output = result.stderr or result.stdout
        missing = _NOT_SERVED.findall(output)
        if unserved_ok and missing and all(url.startswith(unserved_ok) for url in missing):
            return missing
        _refuse_unserved(output, what)
        lines = (result.stderr or result.stdout).strip().splitlines()
        # debootstrap's reason is its `E:` line; the lines after it are advice
        errors = [line for line in lines if line.startswith("E: ") and not line.startswith(_NO_PTS)]
        reason = (errors or lines[-1:] or ["no output"])[0]
        if reason.startswith(DOWNLOAD_FAILED):
            raise Transient(f"exit {result.returncode}: {reason}")
        raise ReleaseError(f"{what} failed (exit {result.returncode}): {reason}")
    return []


# What apt says in every chroot without /dev/pts, whatever else failed: never the reason.
_NO_PTS = "E: Can not write log (Is /dev/pts mounted?)"


def chroot_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of debootstrap and of the commands run in the new tree: the caller's, without the temporary
    directory variables, whose host path does not exist inside the tree (apt then fails with exit 100: a nox
    session sets TMPDIR)."""
    return {name: value for name, value in environ.items() if name not in ("TMPDIR", "TMP", "TEMP")}


# apt's line for a package file the archive does not serve: `E: Failed to fetch <url>  404  Not Found [IP: …]`
_NOT_SERVED = re.compile(r"^E: Failed to fetch (\S+)\s+404\b", re.MULTILINE)


def _refuse_unserved(output: str, what: str) -> None:
    """Package files of the archive answered 404 (a mirror that lists them but does not serve them): a refusal
    naming them, never a base without them (but for a security suite not served at all, see `ensure_debian_base`)."""
    if missing := _NOT_SERVED.findall(output):
        shown = " ".join(missing[:2]) + (f" and {len(missing) - 2} more" if len(missing) > 2 else "")
        raise ReleaseError(
            f"{what} failed: the archive lists {len(missing)} package file(s) it does not serve (404 Not Found: "
            f"{shown}); a base is never built without them: try again when the mirror serves them, or leave this "
            'platform out (platforms = ["linux/amd64"] in the target of release.toml)'
        )


def _debootstrap(argv: list[str], what: str, rootfs: Path) -> None:
    """debootstrap into an empty `rootfs`, tried again (from empty) when a download did not arrive."""

    def attempt() -> None:
        shutil.rmtree(rootfs, ignore_errors=True)
        _run(argv, what)

    retry(attempt, what=what, attempts=3, first_delay=RETRY_DELAY)


def ensure_debian_base(
    docker: Docker, suite: str, log=print, keyring: Path = KEYRING, platform: Platform = AMD64
) -> str:
    """Return the tag of the Debian `suite` base image for `platform`, building it with debootstrap if it is not
    there yet."""
    _check_keyring(keyring)
    tag = _tag(suite, keyring, platform)
    build_once(
        tag,
        lambda: bool(docker.image_id(tag)),
        lambda: _build_debian_base(docker, suite, keyring, platform, tag, log),
        log,
    )
    warn_unpatched(docker, tag, log)
    return tag


def _build_debian_base(docker: Docker, suite: str, keyring: Path, platform: Platform, tag: str, log) -> None:
    require_buildable([platform])
    if shutil.which("debootstrap") is None:
        raise ReleaseError("debootstrap is not installed: run .ci/bootstrap (or apt-get install debootstrap)")
    log(f"building base image {tag} from Debian's archive (once per input change)")
    arch = platform.debian_arch
    with tempfile.TemporaryDirectory(prefix=f"ac-base-{suite}-{arch}-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _debootstrap(
            _debootstrap_argv(suite, rootfs, keyring, platform),
            f"debootstrap {suite} {arch} (archive checked against {keyring})",
            rootfs,
        )
        (rootfs / "etc/apt/sources.list").write_text(_sources(suite))
        what = f"security updates of the {suite} {arch} base"
        missing = _run(["chroot", str(rootfs), "sh", "-c", UPGRADE], what, unserved_ok=DEBIAN_SECURITY_MIRROR)
        labels = {}
        if missing:
            # the security pool of this architecture is not served: the point release and -updates, said loudly
            (rootfs / "etc/apt/sources.list").write_text(_sources(suite, security=False))
            _run(["chroot", str(rootfs), "sh", "-c", UPGRADE], f"updates of the {suite} {arch} base")
            labels[SECURITY_LABEL] = (
                f"not applied: {DEBIAN_SECURITY_MIRROR} did not serve {len(missing)} file(s) of {suite}-security "
                f"for {arch} (e.g. {missing[0]}); built from the {suite} point release and {suite}-updates"
            )
        _import(docker, rootfs, Path(tmp) / "context", tag, platform, labels)


def warn_unpatched(docker: Docker, tag: str, log=print) -> None:
    """One warning line, on every run that uses it, for a base built without its security suite."""
    labels = docker("image", "inspect", "--format", "{{json .Config.Labels}}", tag, capture=True).stdout
    why = (json.loads(labels or b"null") or {}).get(SECURITY_LABEL)
    if why:
        log(f"WARNING: base {tag}: security updates {why}; remove it (docker image rm {tag}) to build it again")


# The tree as one layer, by BuildKit for every platform: `docker import --platform` is ignored by engine 20.10.
IMPORT_DOCKERFILE = 'FROM scratch\nADD rootfs.tar /\nENV LANG=C.UTF-8\nCMD ["bash"]\n'


def _import(
    docker: Docker, rootfs: Path, context: Path, tag: str, platform: Platform, labels: Mapping[str, str]
) -> None:
    """Make `rootfs` the image `tag` of `platform`, and check the engine says that platform before the tag is used."""
    context.mkdir()
    label_lines = "".join(f"LABEL {json.dumps(key)}={json.dumps(value)}\n" for key, value in labels.items())
    (context / "Dockerfile").write_text(IMPORT_DOCKERFILE + label_lines)
    _run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(context / "rootfs.tar"), "."], f"tar of {tag}")
    shutil.rmtree(rootfs)  # the tar holds it; half the disk
    docker("build", "--platform", str(platform), "--progress=plain", "--tag", tag, str(context), capture=True)
    inspect = ("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", tag)
    made = docker(*inspect, capture=True).stdout.decode().strip()
    if made != str(platform):
        docker("image", "rm", tag, capture=True, check=False)
        raise ReleaseError(
            f"the base {tag} was built as a {made} image, not {platform}: the engine ignored --platform "
            f"(BuildKit is needed: DOCKER_BUILDKIT=1 with Debian's docker.io CLI)"
        )


def base_reference(mode: str, distro: str, python: str, platform: Platform = AMD64) -> str:
    """The reference of a flavour's base image, without building it."""
    if mode == "official":
        return official_base(distro, python)
    if mode == "debootstrap":
        _check_keyring(KEYRING)
        return _tag(distro, KEYRING, platform)
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


def labelled_base(
    mode: str, distro: str, python: str, labels: Mapping[str, str], platform: Platform | None = None
) -> tuple[str, str]:
    """(reference, digest) of a flavour's base as a pushed image's labels record it, needing nothing of the build
    machine: an official base must be its pin; a debootstrap base's tag (a hash of the build machine's recipe and
    Debian keyring) and image id are the labels', the tag one of this pipeline's Debian `distro` bases: of
    `platform` when it is given (`<distro>-<arch>-<hash>`; a tag before recipe 4 names no arch: amd64)."""
    if mode == "debootstrap":
        name = labels.get(BASE_NAME_LABEL) or ""
        arches = [platform.debian_arch] if platform else [p.debian_arch for p in PLATFORMS]
        legacy = "" if platform not in (None, AMD64) else "?"  # recipe 3's tags: amd64 only, no arch named
        arch = f"(?:(?:{'|'.join(arches)})-){legacy}"
        if not re.fullmatch(rf"{re.escape(REPOSITORY)}:{re.escape(distro)}-{arch}[0-9a-f]{{12}}", name):
            which = f"{distro}-{platform.debian_arch if platform else '<arch>'}-<hash>"
            raise ReleaseError(f"the image's label {BASE_NAME_LABEL} is {name!r}, not a {REPOSITORY}:{which} base")
        return name, base_digest(name, None, labels)
    reference = base_reference(mode, distro, python)
    return reference, base_digest(reference, None, labels)


def ensure_base(docker: Docker, mode: str, distro: str, python: str, log=print, platform: Platform = AMD64) -> str:
    """The base image of a flavour: a setting of the target, one code path for both worlds."""
    if mode == "official":
        return official_base(distro, python)
    if mode == "debootstrap":
        return ensure_debian_base(docker, distro, log, platform=platform)
    raise ReleaseError(f"unknown base_images mode {mode!r}: use 'official' or 'debootstrap' in release.toml")
