"""A Debian archive read over plain HTTP, trusted through its signature alone, as apt and debootstrap trust it.

A suite's InRelease is fetched afresh on every run and checked by gpgv against the archive keyring, in an empty GnuPG
home so that no key but the keyring's counts; only the text gpgv verified is read, never what surrounds it. Every
other file is checked against that text: a Packages index by the sha256 the Release lists, a .deb by the sha256 its
Packages entry gives. Files are kept in the cache under their sha256 and used again only while they still hash to it.

A .deb is read for its changelog only (the images' security audit): a package whose changelog cannot be read is a
NoChangelog, which the caller reports for that package alone. A refused signature or checksum stops the run.
"""

from __future__ import annotations

import gzip
import lzma
import posixpath
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from debian import deb822
from debian.arfile import ArError
from debian.debfile import DebError, DebFile
from debian.debian_support import Version

from ac_release.clients import proc
from ac_release.clients.retry import retry
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_write_bytes, sha256_bytes, sha256_file
from ac_release.model.debian import KEYRING, Suite

COMPONENT = "main"
MAX_DEB_BYTES = 64 * 1024 * 1024  # a bigger .deb is not downloaded for its changelog
MAX_INRELEASE_BYTES = 4 * 1024 * 1024
TIMEOUT_S = 60
CHANGELOGS = ("changelog.Debian.gz", "changelog.gz")  # changelog.gz: a native package's (no Debian revision)
DOC = "usr/share/doc"
MAX_DOC_LINKS = 3  # doc directories linked to another package's, followed at most this many times
_SHA256 = re.compile(r"[0-9a-f]{64}")
_INDEXES = ((".xz", lzma.decompress), (".gz", gzip.decompress))


class NoChangelog(ReleaseError):
    """The changelog of one package cannot be read from the archive; the message says why."""


class NotServed(ReleaseError):
    """The mirror answered 404 for a file."""


@dataclass(frozen=True)
class BinaryPackage:
    """One binary package as a suite's signed Packages index lists it."""

    name: str
    version: str
    source: str  # the source package's name (a Packages entry's `Source: name (version)`, or the package's own)
    source_version: str  # the source package's version: the binary's own unless `Source:` names another
    filename: str  # its path on the suite's mirror (pool/...)
    size: int
    sha256: str
    suite: Suite
    arch: str  # the architecture of the index that lists it (an `all` package is listed in each)

    @property
    def url(self) -> str:
        return f"{self.suite.mirror.rstrip('/')}/{self.filename}"


@dataclass(frozen=True)
class _Elsewhere:
    """A doc directory (or changelog) that is a link into another package's doc directory."""

    package: str


class DebianArchive:
    """Suites of Debian's archive (each Suite names its mirror), read through `cache_dir` and checked against
    `keyring`. Each suite's index is read once per instance."""

    def __init__(
        self, cache_dir: Path, *, keyring: Path = KEYRING, max_deb_bytes: int = MAX_DEB_BYTES, attempts: int = 4
    ):
        self.cache_dir = Path(cache_dir)
        self.keyring = Path(keyring)
        self.max_deb_bytes = max_deb_bytes
        self.attempts = attempts
        self._releases: dict[Suite, deb822.Release] = {}
        self._indexes: dict[tuple[Suite, str], dict[str, BinaryPackage]] = {}

    def release(self, suite: Suite) -> deb822.Release:
        """The suite's Release as its InRelease signs it: refused when the signature does not verify against the
        keyring, when it is another suite's, or when it is past its Valid-Until (a mirror serving a stale copy)."""
        if suite not in self._releases:
            url = f"{_dists(suite)}/InRelease"
            signed = self._get(url, limit=MAX_INRELEASE_BYTES, what=f"{suite}'s InRelease")
            release = deb822.Release(self._verified_text(suite, signed).decode("utf-8"))
            if suite.name not in (release.get("Codename"), release.get("Suite")):
                raise ReleaseError(
                    f"{url} is signed for suite {release.get('Codename')!r}, not {suite}: the mirror serves another "
                    "suite's Release under this name; use another mirror"
                )
            if valid_until := release.get("Valid-Until"):
                if _date(url, valid_until) < datetime.now(UTC):
                    raise ReleaseError(
                        f"{url} expired at {valid_until} (its Valid-Until): the mirror serves a stale copy of the "
                        "suite; use another mirror or run again later"
                    )
            self._releases[suite] = release
        return self._releases[suite]

    def packages(self, suite: Suite, arch: str) -> dict[str, BinaryPackage]:
        """{name: the newest entry of that name} of the suite's main component for Debian architecture `arch`, from
        the index whose sha256 the verified Release lists (Packages.xz, else Packages.gz)."""
        if (suite, arch) not in self._indexes:
            self._indexes[suite, arch] = _parse_packages(self._index_text(suite, arch), suite, arch)
        return self._indexes[suite, arch]

    def deb(self, package: BinaryPackage) -> Path:
        """The package's .deb in the cache, checked against the sha256 of its signed Packages entry."""
        return self._verified_file(
            self.cache_dir / "debs" / f"{package.sha256}.deb",
            package.url,
            package.sha256,
            package.size,
            what=f"{package.name} {package.version}'s .deb",
        )

    def changelog(self, package: BinaryPackage) -> str:
        """The Debian changelog the package's .deb ships (`usr/share/doc/<name>/changelog.Debian.gz`). A doc directory
        that links to another package's (libraries often share one binary's) is read in that package, which must be
        of the same source and version in the same suite. NoChangelog says why there is none to read."""
        current = package
        for _ in range(MAX_DOC_LINKS + 1):
            if current.size > self.max_deb_bytes:
                raise NoChangelog(
                    f"{current.name} {current.version}: its .deb is {current.size} bytes, over the "
                    f"{self.max_deb_bytes} bytes read for a changelog"
                )
            found = _doc_changelog(self.deb(current), current)
            if isinstance(found, str):
                return found
            owner = self.packages(current.suite, current.arch).get(found.package)
            if owner is None or (owner.source, owner.source_version) != (current.source, current.source_version):
                raise NoChangelog(
                    f"{current.name} {current.version}: its doc directory is {found.package}'s, which {current.suite} "
                    f"does not list as source {current.source} {current.source_version}"
                )
            current = owner
        raise NoChangelog(
            f"{package.name} {package.version}: its doc directory links on more than {MAX_DOC_LINKS} times"
        )

    def _index_text(self, suite: Suite, arch: str) -> str:
        release = self.release(suite)
        listed = {entry["name"]: entry for entry in release.get("SHA256", [])}
        by_hash = release.get("Acquire-By-Hash") == "yes"  # a path that does not change while the mirror updates
        for extension, decompress in _INDEXES:
            name = f"{COMPONENT}/binary-{arch}/Packages{extension}"
            if name not in listed:
                continue
            sha256, size = listed[name]["sha256"], int(listed[name]["size"])
            if not _SHA256.fullmatch(sha256):
                raise ReleaseError(f"{suite}'s Release gives {name} a malformed sha256 {sha256!r}: use another mirror")
            where = f"{posixpath.dirname(name)}/by-hash/SHA256/{sha256}" if by_hash else name
            url, path = f"{_dists(suite)}/{where}", self.cache_dir / "indexes" / sha256
            try:
                data = self._verified_file(path, url, sha256, size, what=f"{suite}'s {name}").read_bytes()
            except NotServed:
                continue  # listed, not served: the next compression
            return decompress(data).decode("utf-8")
        raise ReleaseError(
            f"{suite} serves no {COMPONENT}/binary-{arch}/Packages.xz or .gz that its Release lists: is {arch} one of "
            f"its architectures ({release.get('Architectures', 'none listed')})?"
        )

    def _verified_text(self, suite: Suite, signed: bytes) -> bytes:
        """What the InRelease signs, as gpgv wrote it out after checking a signature by a key of the keyring."""
        if not self.keyring.is_file():
            raise ReleaseError(
                f"Debian archive keyring {self.keyring} is missing: run .ci/bootstrap (or apt-get install "
                "debian-archive-keyring); the archive is never read unchecked"
            )
        if shutil.which("gpgv") is None:
            raise ReleaseError("gpgv is not installed (it checks the Debian archive's signature): run .ci/bootstrap")
        with tempfile.TemporaryDirectory(prefix="ac-release-gpgv-") as home:
            signed_path, text_path = Path(home) / "InRelease", Path(home) / "Release"
            signed_path.write_bytes(signed)
            argv = ["gpgv", "--homedir", home, "--keyring", str(self.keyring.resolve()), "--status-fd", "1"]
            result = proc.run([*argv, "--output", str(text_path), str(signed_path)], kind="gpgv", env=proc.tool_env())
            status = result.stdout.decode(errors="replace").splitlines()
            # Several keys sign Debian's Release files; one of the keyring's suffices (apt's rule), a bad one refuses.
            good = any(line.startswith("[GNUPG:] VALIDSIG ") for line in status)
            bad = any(line.startswith("[GNUPG:] BADSIG ") for line in status)
            if not good or bad or not text_path.is_file():
                raise ReleaseError(
                    f"{suite}'s InRelease from {suite.mirror} has no valid signature by a key of {self.keyring}: "
                    "the mirror or the network altered it, or the keyring is outdated (run .ci/bootstrap); "
                    "nothing of the suite is read"
                )
            return text_path.read_bytes()

    def _verified_file(self, path: Path, url: str, sha256: str, size: int, *, what: str) -> Path:
        """`path`, downloaded from `url` unless it already holds the file of that sha256."""
        if path.is_file() and sha256_file(path) == sha256:
            return path
        data = self._get(url, limit=size, what=what)
        if (got := sha256_bytes(data)) != sha256:
            raise ReleaseError(
                f"{what} from {url} has sha256 {got}, not the {sha256} the signed index gives: the mirror or the "
                "network altered it; run again or use another mirror"
            )
        atomic_write_bytes(path, data)
        return path

    def _get(self, url: str, *, limit: int, what: str) -> bytes:
        """The body of `url`; one longer than `limit` bytes is not the file asked for and is refused."""

        def fetch() -> bytes:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                body = response.read(limit + 1)
            if len(body) > limit:
                raise ReleaseError(f"{what} from {url} is over {limit} bytes, more than the archive says it is")
            return body

        try:
            return retry(fetch, what=f"download of {url}", attempts=self.attempts)
        except urllib.error.HTTPError as exc:
            refusal = NotServed if exc.code == 404 else ReleaseError
            raise refusal(
                f"{what}: {url} answered HTTP {exc.code} {exc.reason}: check the suite's name and its mirror"
            ) from exc


def _dists(suite: Suite) -> str:
    return f"{suite.mirror.rstrip('/')}/dists/{suite.name}"


def _date(url: str, text: str) -> datetime:
    try:
        date = parsedate_to_datetime(text)
    except (TypeError, ValueError) as exc:
        raise ReleaseError(f"{url} has a malformed date {text!r}: use another mirror") from exc
    return date if date.tzinfo else date.replace(tzinfo=UTC)


def _parse_packages(text: str, suite: Suite, arch: str) -> dict[str, BinaryPackage]:
    newest: dict[str, BinaryPackage] = {}
    for entry in deb822.Packages.iter_paragraphs(text.splitlines(keepends=True), use_apt_pkg=False):
        try:
            package = BinaryPackage(
                name=entry["Package"],
                version=entry["Version"],
                source=entry.source or entry["Package"],
                source_version=str(entry.source_version),
                filename=entry["Filename"],
                size=int(entry["Size"]),
                sha256=entry["SHA256"],
                suite=suite,
                arch=arch,
            )
        except (KeyError, ValueError) as exc:
            raise ReleaseError(
                f"{suite}'s Packages index for {arch} has an entry without a valid {exc}"
                f" ({entry.get('Package', 'no Package field')}): use another mirror"
            ) from exc
        if not _SHA256.fullmatch(package.sha256) or _unsafe_path(package.filename):
            raise ReleaseError(f"{suite}'s Packages entry of {package.name} is malformed: use another mirror")
        current = newest.get(package.name)
        if current is None or Version(package.version) > Version(current.version):
            newest[package.name] = package
    return newest


def _unsafe_path(path: str) -> bool:
    return path.startswith("/") or posixpath.normpath(path) != path or path.startswith("..")


def _doc_changelog(deb: Path, package: BinaryPackage) -> str | _Elsewhere:
    """The changelog in `package`'s own doc directory, or the package whose doc directory holds it instead."""
    doc = f"{DOC}/{package.name}"
    try:
        with DebFile(str(deb)) as debfile:
            data = debfile.data.tgz()
            members = {_member_path(member.name): member for member in data.getmembers()}
            directory = members.get(doc)
            if directory is not None and directory.issym():
                return _other_doc(package, doc, directory.linkname)
            for name in CHANGELOGS:
                member = members.get(f"{doc}/{name}")
                if member is not None and member.issym():
                    target = _link_target(f"{doc}/{name}", member.linkname)
                    if posixpath.dirname(target) != doc:
                        return _other_doc(package, doc, posixpath.dirname(target))
                    member = members.get(target)
                if member is not None and member.isfile():
                    with data.extractfile(member) as compressed:
                        return gzip.decompress(compressed.read()).decode("utf-8", errors="replace")
    except (DebError, ArError, tarfile.TarError, OSError, EOFError) as exc:
        raise NoChangelog(f"{package.name} {package.version}: its .deb cannot be read ({exc})") from exc
    raise NoChangelog(f"{package.name} {package.version}: its .deb has no {doc}/{' or '.join(CHANGELOGS)}")


def _other_doc(package: BinaryPackage, doc: str, link: str) -> _Elsewhere:
    target = _link_target(doc, link)
    if posixpath.dirname(target) != DOC:
        raise NoChangelog(
            f"{package.name} {package.version}: {doc} links to {target}, not to a package's doc directory"
        )
    return _Elsewhere(posixpath.basename(target))


def _member_path(name: str) -> str:
    return posixpath.normpath(name).lstrip("/")


def _link_target(path: str, link: str) -> str:
    """Where the symlink at `path` points, as a path of the package's tree (no leading slash)."""
    return _member_path(link if link.startswith("/") else posixpath.join(posixpath.dirname(path), link))
