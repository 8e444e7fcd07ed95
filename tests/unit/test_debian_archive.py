"""clients/debian_archive and supply_chain/debian_updates on a small Debian archive made here: its InRelease files
clear-signed by a throwaway key, its .deb files built by dpkg-deb, served on 127.0.0.1 (nothing goes further).

The archive (module fixture `archive_tree`), mirror `debian` and mirror `debian-security`:
  bullseye           libfoo1 1.2-3 (source foo), bar 1.0-1, baz 3.0-1, libbin1 5.0-1+b1 (`Source: binsrc (5.0-1)`)
  bullseye-updates   bar 2.0-1, whose .deb has no doc directory (only Packages.gz listed)
  bullseye-security  libfoo1 and libfoo-modules 1.2-3+deb11u2 (source foo; libfoo-modules' doc directory is a link
                     to libfoo1's), libother 0.5-1+deb11u1 (source other, its doc directory a link to libfoo1's);
                     indexes fetched by hash
gpg, gpgv and dpkg-deb are prerequisites (.ci/bootstrap installs them): without them these tests fail, never skip.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import lzma
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from ac_release.clients.debian_archive import DebianArchive, NoChangelog
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import sha256_bytes
from ac_release.model.debian import DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR, Suite, debian_arch, suites
from ac_release.model.flavours import ARM64
from ac_release.supply_chain.debian_updates import (
    ArchiveView,
    Installed,
    fixed_cves,
    installed_from_sbom,
    pending,
    with_fixed_cves,
)

TOOLS = ("gpg", "gpgv", "dpkg-deb")
TRAILER = " -- Test Maintainer <test@example.invalid>  Mon, 01 Jan 2024 00:00:00 +0000\n"


def changelog(source: str, *entries: tuple[str, tuple[str, ...]]) -> str:
    return "\n".join(
        f"{source} ({version}) bullseye-security; urgency=high\n\n"
        + "".join(f"  * {change}\n" for change in changes)
        + f"\n{TRAILER}"
        for version, changes in entries
    )


FOO_CHANGELOG = changelog(
    "foo",
    ("1.2-3+deb11u2", ("Fix CVE-2024-10001: a heap overflow.", "CVE-2024-0003 (a second fix of CVE-2024-0003).")),
    ("1.2-3+deb11u1", ("Fix CVE-2024-0002.",)),
    ("1.2-3", ("Fix CVE-2023-0001.",)),
    ("1.2-2", ("Fix CVE-2022-0009.",)),
)


@dataclass(frozen=True)
class Deb:
    name: str
    version: str
    source: str | None = None  # the Source field, when not the package's own name and version
    changelog: str | None = None  # usr/share/doc/<name>/changelog.Debian.gz
    doc_link: str | None = None  # usr/share/doc/<name> as a symlink to this


SUITES = {
    "bullseye": (
        "debian",
        [
            Deb("libfoo1", "1.2-3", "foo", changelog("foo", ("1.2-3", ("Fix CVE-2023-0001.",)))),
            Deb("bar", "1.0-1"),
            Deb("baz", "3.0-1", changelog=changelog("baz", ("3.0-1", ("Initial release.",)))),
            Deb("libbin1", "5.0-1+b1", "binsrc (5.0-1)", changelog("binsrc", ("5.0-1", ("New upstream.",)))),
        ],
    ),
    "bullseye-updates": ("debian", [Deb("bar", "2.0-1")]),
    "bullseye-security": (
        "debian-security",
        [
            Deb("libfoo1", "1.2-3+deb11u2", "foo", FOO_CHANGELOG),
            Deb("libfoo-modules", "1.2-3+deb11u2", "foo", doc_link="libfoo1"),
            Deb("libother", "0.5-1+deb11u1", "other", doc_link="libfoo1"),
        ],
    ),
}
PLAIN_GZ_ONLY = {"bullseye-updates"}
BY_HASH = {"bullseye-security"}


def run(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, **kwargs)
    assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr.decode(errors='replace')}"
    return result


@dataclass(frozen=True)
class Signer:
    home: Path
    fingerprint: str

    @classmethod
    def new(cls, home: Path, name: str) -> Signer:
        home.mkdir(mode=0o700)
        gpg = ("gpg", "--homedir", str(home), "--batch")
        run(
            *gpg, "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", name, "ed25519", "sign", "never"
        )
        listing = run(*gpg, "--with-colons", "--list-secret-keys").stdout.decode()
        return cls(home, next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")))

    def sign(self, text: str) -> bytes:
        argv = ("gpg", "--homedir", str(self.home), "--batch", "--local-user", self.fingerprint, "--clearsign")
        return run(*argv, input=text.encode()).stdout

    def export(self, keyring: Path) -> Path:
        keyring.write_bytes(run("gpg", "--homedir", str(self.home), "--export", self.fingerprint).stdout)
        return keyring

    def stop(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"], capture_output=True)


def build_deb(work: Path, deb: Deb) -> bytes:
    root = work / f"{deb.name}_{deb.version}"
    (root / "DEBIAN").mkdir(parents=True)
    source = f"Source: {deb.source}\n" if deb.source else ""
    (root / "DEBIAN" / "control").write_text(
        f"Package: {deb.name}\nVersion: {deb.version}\n{source}Architecture: amd64\n"
        "Maintainer: Test Maintainer <test@example.invalid>\nDescription: a test package\n"
    )
    doc = root / "usr" / "share" / "doc" / deb.name
    if deb.doc_link:
        doc.parent.mkdir(parents=True)
        doc.symlink_to(deb.doc_link)
    elif deb.changelog:
        doc.mkdir(parents=True)
        (doc / "changelog.Debian.gz").write_bytes(gzip.compress(deb.changelog.encode(), mtime=0))
    out = work / f"{deb.name}_{deb.version}_amd64.deb"
    run("dpkg-deb", "-Zxz", "--root-owner-group", "--build", str(root), str(out))
    return out.read_bytes()


def paragraph(deb: Deb, filename: str, data: bytes) -> str:
    source = f"Source: {deb.source}\n" if deb.source else ""
    return (
        f"Package: {deb.name}\n{source}Version: {deb.version}\nArchitecture: amd64\nFilename: {filename}\n"
        f"Size: {len(data)}\nSHA256: {sha256_bytes(data)}\nDescription: a test package\n"
    )


def release_text(suite: str, indexes: dict[str, bytes], *, codename: str | None = None, extra: str = "") -> str:
    hashes = "".join(f" {sha256_bytes(data)} {len(data)} {name}\n" for name, data in indexes.items())
    return (
        f"Origin: Test\nLabel: Test\nSuite: {suite}\nCodename: {codename or suite}\n"
        f"Date: Mon, 01 Jan 2024 00:00:00 UTC\nArchitectures: amd64\nComponents: main\n"
        + ("Acquire-By-Hash: yes\n" if suite in BY_HASH else "")
        + f"{extra}SHA256:\n{hashes}"
    )


def write_suite(root: Path, work: Path, suite: str, signer: Signer) -> None:
    mirror, debs = SUITES[suite]
    paragraphs = []
    for deb in debs:
        data = build_deb(work / suite, deb)
        filename = f"pool/main/{deb.name}_{deb.version}_amd64.deb"
        (root / mirror / filename).parent.mkdir(parents=True, exist_ok=True)
        (root / mirror / filename).write_bytes(data)
        paragraphs.append(paragraph(deb, filename, data))
    packages = "\n".join(paragraphs).encode()
    compressed = {".gz": gzip.compress(packages, mtime=0)}
    if suite not in PLAIN_GZ_ONLY:
        compressed[".xz"] = lzma.compress(packages)
    dists = root / mirror / "dists" / suite
    indexes = {}
    for extension, data in compressed.items():
        name = f"main/binary-amd64/Packages{extension}"
        indexes[name] = data
        path = dists / name if suite not in BY_HASH else dists / "main/binary-amd64/by-hash/SHA256" / sha256_bytes(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (dists / "InRelease").write_bytes(signer.sign(release_text(suite, indexes)))


@pytest.fixture(scope="module")
def signers(tmp_path_factory):
    if missing := [tool for tool in TOOLS if shutil.which(tool) is None]:
        pytest.fail(f"{', '.join(missing)} missing: run .ci/bootstrap (it installs gpg, gpgv and dpkg); never skipped")
    home = tmp_path_factory.mktemp("gnupg")
    made = [Signer.new(home / "archive", "Test Archive <archive@example.invalid>")]
    made.append(Signer.new(home / "stranger", "Stranger <stranger@example.invalid>"))
    yield made
    for signer in made:
        signer.stop()


@pytest.fixture(scope="module")
def archive_tree(tmp_path_factory, signers):
    root, work = tmp_path_factory.mktemp("archive"), tmp_path_factory.mktemp("debs")
    for suite in SUITES:
        write_suite(root, work, suite, signers[0])
    return root


@pytest.fixture(scope="module")
def keyring(tmp_path_factory, signers):
    return signers[0].export(tmp_path_factory.mktemp("keyring") / "archive.gpg")


class Server:
    """An HTTP server of one directory on 127.0.0.1 that records the paths asked for."""

    def __init__(self, directory: Path):
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, format, *args):
                requests.append(self.path)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=directory))
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def suites(self) -> dict[str, Suite]:
        base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        return {name: Suite(name, f"{base}/{mirror}") for name, (mirror, _) in SUITES.items()}

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve(monkeypatch):
    """serve(directory) -> Server; stopped after the test. No proxy: 127.0.0.1 is reached directly."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    started: list[Server] = []
    yield lambda directory: started.append(Server(directory)) or started[-1]
    for server in started:
        server.stop()


@pytest.fixture
def tree(tmp_path, archive_tree) -> Path:
    """A copy of the archive this test may alter."""
    return Path(shutil.copytree(archive_tree, tmp_path / "archive", symlinks=True))


def test_suites_and_architectures_of_a_distro():
    assert [(suite.name, suite.mirror, suite.security) for suite in suites("bullseye")] == [
        ("bullseye", DEBIAN_MIRROR, False),
        ("bullseye-updates", DEBIAN_MIRROR, False),
        ("bullseye-security", DEBIAN_SECURITY_MIRROR, True),
    ]
    assert (debian_arch("linux/amd64"), debian_arch(ARM64)) == ("amd64", "arm64")
    with pytest.raises(ReleaseError, match="not a Debian codename"):
        suites("bullseye/../x")


def test_indexes_are_read_once_verified(serve, archive_tree, keyring, tmp_path):
    server = serve(archive_tree)
    suite = server.suites()
    archive = DebianArchive(tmp_path / "cache", keyring=keyring)
    bullseye = archive.packages(suite["bullseye"], "amd64")
    assert {name: package.version for name, package in bullseye.items()} == {
        "libfoo1": "1.2-3",
        "bar": "1.0-1",
        "baz": "3.0-1",
        "libbin1": "5.0-1+b1",
    }
    assert (bullseye["libbin1"].source, bullseye["libbin1"].source_version) == ("binsrc", "5.0-1")
    assert (bullseye["baz"].source, bullseye["baz"].source_version) == ("baz", "3.0-1")
    assert bullseye["libfoo1"].url == f"{suite['bullseye'].mirror}/pool/main/libfoo1_1.2-3_amd64.deb"
    assert archive.packages(suite["bullseye-updates"], "amd64")["bar"].version == "2.0-1"  # Packages.gz only
    security = archive.packages(suite["bullseye-security"], "amd64")
    assert sorted(security) == ["libfoo-modules", "libfoo1", "libother"]
    assert any("/by-hash/SHA256/" in path for path in server.requests)
    assert [path for path in server.requests if path.endswith("/Packages.xz")] == [
        "/debian/dists/bullseye/main/binary-amd64/Packages.xz"
    ]

    again = DebianArchive(tmp_path / "cache", keyring=keyring)  # a new run: the InRelease afresh, the index cached
    before = len(server.requests)
    assert again.packages(suite["bullseye"], "amd64") == bullseye
    assert server.requests[before:] == ["/debian/dists/bullseye/InRelease"]


def test_a_listed_xz_index_that_is_not_served_falls_back_to_gz(serve, tree, keyring, tmp_path):
    (tree / "debian/dists/bullseye/main/binary-amd64/Packages.xz").unlink()
    suite = serve(tree).suites()["bullseye"]
    assert DebianArchive(tmp_path / "cache", keyring=keyring).packages(suite, "amd64")["libfoo1"].version == "1.2-3"


def test_a_suite_the_mirror_does_not_serve_is_refused_in_one_line(serve, archive_tree, keyring, tmp_path):
    mirror = serve(archive_tree).suites()["bullseye"].mirror
    with pytest.raises(ReleaseError, match=r"^bookworm's InRelease: \S+/dists/bookworm/InRelease answered HTTP 404"):
        DebianArchive(tmp_path / "cache", keyring=keyring).packages(Suite("bookworm", mirror), "amd64")


def _evil_index(tree: Path) -> tuple[str, str]:
    """Replace bullseye's Packages.xz by one that offers libfoo1 9.9; return its Release lines (genuine, evil)."""
    index = tree / "debian/dists/bullseye/main/binary-amd64/Packages.xz"
    genuine = index.read_bytes()
    evil = lzma.compress(lzma.decompress(genuine).replace(b"Version: 1.2-3\n", b"Version: 9.9\n"))
    index.write_bytes(evil)
    line = " {} {} main/binary-amd64/Packages.xz"
    return line.format(sha256_bytes(genuine), len(genuine)), line.format(sha256_bytes(evil), len(evil))


def _edited_signed_text(tree, signers):
    genuine, evil = _evil_index(tree)
    inrelease = tree / "debian/dists/bullseye/InRelease"
    inrelease.write_text(inrelease.read_text().replace(genuine, evil))


def _unsigned_text_first(tree, signers):
    genuine, evil = _evil_index(tree)
    inrelease = tree / "debian/dists/bullseye/InRelease"
    inrelease.write_text(f"Codename: bullseye\nSHA256:\n{evil}\n\n" + inrelease.read_text())


def _signed_by_another_key(tree, signers):
    genuine, evil = _evil_index(tree)
    text = release_text("bullseye", {}).replace("SHA256:\n", f"SHA256:\n{evil}\n")
    (tree / "debian/dists/bullseye/InRelease").write_bytes(signers[1].sign(text))


def _not_signed(tree, signers):
    genuine, evil = _evil_index(tree)
    text = release_text("bullseye", {}).replace("SHA256:\n", f"SHA256:\n{evil}\n")
    (tree / "debian/dists/bullseye/InRelease").write_text(text)


def _genuine_hashes(tree) -> str:
    inrelease = (tree / "debian/dists/bullseye/InRelease").read_text()
    return inrelease.split("SHA256:\n", 1)[1].split("-----BEGIN PGP SIGNATURE-----")[0].strip("\n") + "\n"


def _another_suites_release(tree, signers):
    text = release_text("bullseye", {}, codename="bookworm").replace("Suite: bullseye", "Suite: stable")
    (tree / "debian/dists/bullseye/InRelease").write_bytes(signers[0].sign(text + _genuine_hashes(tree)))


def _expired(tree, signers):
    text = release_text("bullseye", {}, extra="Valid-Until: Tue, 02 Jan 2024 00:00:00 UTC\n")
    (tree / "debian/dists/bullseye/InRelease").write_bytes(signers[0].sign(text + _genuine_hashes(tree)))


# The unsigned text before the signed part offers the evil index: only what gpgv verified is read, so the genuine
# hash (or size) refuses the evil index.
@pytest.mark.parametrize(
    ("tamper", "refusal"),
    [
        (_edited_signed_text, "no valid signature"),
        (_unsigned_text_first, r"Packages\.xz from \S+ (has sha256|is over)"),
        (_signed_by_another_key, "no valid signature"),
        (_not_signed, "no valid signature"),
        (_another_suites_release, "signed for suite 'bookworm', not bullseye"),
        (_expired, "expired at"),
    ],
    ids=["edited", "unsigned-text-first", "another-key", "not-signed", "another-suite", "expired"],
)
def test_an_inrelease_not_signed_as_it_is_served_is_refused(serve, tree, signers, keyring, tmp_path, tamper, refusal):
    tamper(tree, signers)
    suite = serve(tree).suites()["bullseye"]
    with pytest.raises(ReleaseError, match=refusal) as refused:
        DebianArchive(tmp_path / "cache", keyring=keyring).packages(suite, "amd64")
    assert "\n" not in str(refused.value) and "bullseye" in str(refused.value)


def test_a_packages_index_that_is_not_the_one_the_release_lists_is_refused(serve, tree, keyring, tmp_path):
    _flip_last_byte(tree / "debian/dists/bullseye/main/binary-amd64/Packages.xz")
    suite = serve(tree).suites()["bullseye"]
    with pytest.raises(
        ReleaseError, match=r"bullseye's main/binary-amd64/Packages.xz from \S+ has sha256 [0-9a-f]{64}"
    ):
        DebianArchive(tmp_path / "cache", keyring=keyring).packages(suite, "amd64")
    assert not list((tmp_path / "cache" / "indexes").glob("*"))


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_deb_that_is_not_the_one_the_index_lists_is_refused(serve, tree, keyring, tmp_path):
    _flip_last_byte(tree / "debian-security/pool/main/libfoo1_1.2-3+deb11u2_amd64.deb")
    archive = DebianArchive(tmp_path / "cache", keyring=keyring)
    libfoo1 = archive.packages(serve(tree).suites()["bullseye-security"], "amd64")["libfoo1"]
    with pytest.raises(ReleaseError, match=r"libfoo1 1.2-3\+deb11u2's .deb from .* has sha256"):
        archive.deb(libfoo1)
    assert not (tmp_path / "cache" / "debs" / f"{libfoo1.sha256}.deb").exists()


def test_a_cached_deb_that_no_longer_matches_is_downloaded_again(serve, archive_tree, keyring, tmp_path):
    archive = DebianArchive(tmp_path / "cache", keyring=keyring)
    libfoo1 = archive.packages(serve(archive_tree).suites()["bullseye-security"], "amd64")["libfoo1"]
    path = archive.deb(libfoo1)
    path.write_bytes(b"damaged")
    assert archive.deb(libfoo1) == path and sha256_bytes(path.read_bytes()) == libfoo1.sha256


def test_a_doc_directory_linked_to_another_package_of_its_source_is_read_there(serve, archive_tree, keyring, tmp_path):
    archive = DebianArchive(tmp_path / "cache", keyring=keyring)
    security = archive.packages(serve(archive_tree).suites()["bullseye-security"], "amd64")
    assert archive.changelog(security["libfoo-modules"]) == FOO_CHANGELOG == archive.changelog(security["libfoo1"])
    with pytest.raises(NoChangelog, match="its doc directory is libfoo1's, which bullseye-security does not list as"):
        archive.changelog(security["libother"])  # another source's directory: not its changelog


def test_fixed_cves_are_those_after_the_installed_version_up_to_the_new_one():
    assert fixed_cves(FOO_CHANGELOG, "1.2-3", "1.2-3+deb11u2") == ("CVE-2024-0002", "CVE-2024-0003", "CVE-2024-10001")
    assert fixed_cves(FOO_CHANGELOG, "1.2-3", "1.2-3+deb11u1") == ("CVE-2024-0002",)
    assert fixed_cves(FOO_CHANGELOG, "1.2-2", "1.2-3") == ("CVE-2023-0001",)
    assert fixed_cves(FOO_CHANGELOG, "1.2-3+deb11u2", "1.2-3+deb11u2") == ()


def test_installed_packages_are_read_from_syft_purls():
    sbom = {
        "bomFormat": "CycloneDX",
        "components": [
            {"purl": "pkg:deb/debian/libssl1.1@1.1.1w-0%2Bdeb11u1?arch=amd64&distro=debian-11&upstream=openssl"},
            {"purl": "pkg:deb/debian/zlib1g@1%3A1.2.11.dfsg-2?arch=amd64&distro=debian-11&upstream=zlib"},
            {"purl": "pkg:deb/debian/libkrb5-3@1.18.3-6%2Bb1?arch=amd64&upstream=krb5%401.18.3-6&distro=debian-11"},
            {"purl": "pkg:deb/debian/tzdata@2024a-0%2Bdeb11u1?arch=all&distro=debian-11"},
            {"purl": "pkg:pypi/apache-airflow@2.2.4"},
            {"name": "no purl"},
        ],
    }
    assert installed_from_sbom(sbom) == [
        Installed("libkrb5-3", "1.18.3-6+b1", "amd64", "krb5", "1.18.3-6"),
        Installed("libssl1.1", "1.1.1w-0+deb11u1", "amd64", "openssl", "1.1.1w-0+deb11u1"),
        Installed("tzdata", "2024a-0+deb11u1", "all", "tzdata", "2024a-0+deb11u1"),
        Installed("zlib1g", "1:1.2.11.dfsg-2", "amd64", "zlib", "1:1.2.11.dfsg-2"),
    ]


SBOM = {
    "components": [
        {"purl": f"pkg:deb/debian/{purl}&distro=debian-11"}
        for purl in (
            "libfoo1@1.2-3?arch=amd64&upstream=foo",
            "libfoo-modules@1.2-3?arch=amd64&upstream=foo",
            "bar@1.0-1?arch=amd64",
            "baz@3.0-1?arch=amd64",  # current: not pending
            "qux@1.0-1?arch=amd64",  # in no suite
            "libother@0.5-1?arch=amd64&upstream=other",
        )
    ]
}


def test_the_audit_names_the_cves_each_pending_update_fixes(serve, archive_tree, keyring, tmp_path, monkeypatch):
    server = serve(archive_tree)
    archive = DebianArchive(tmp_path / "cache", keyring=keyring)
    view = ArchiveView("amd64", {suite: archive.packages(suite, "amd64") for suite in server.suites().values()})
    read = []
    changelog = archive.changelog
    monkeypatch.setattr(archive, "changelog", lambda package: read.append(package.name) or changelog(package))

    audit = with_fixed_cves(pending(installed_from_sbom(SBOM), view), archive)

    foo_cves = ["CVE-2024-0002", "CVE-2024-0003", "CVE-2024-10001"]
    assert [(item.to_json()["package"], item.to_json()["suite"], item.to_json()["cves"]) for item in audit] == [
        ("bar", "bullseye-updates", None),
        ("libfoo-modules", "bullseye-security", foo_cves),
        ("libfoo1", "bullseye-security", foo_cves),
        ("libother", "bullseye-security", None),
    ]
    reasons = {item.installed.name: item.reason for item in audit}
    assert reasons["bar"] == "bar 2.0-1: its .deb has no usr/share/doc/bar/changelog.Debian.gz or changelog.gz"
    assert "libother 0.5-1+deb11u1: its doc directory is libfoo1's" in reasons["libother"]
    assert reasons["libfoo1"] is None and reasons["libfoo-modules"] is None
    assert read == ["bar", "libfoo-modules", "libother"]  # foo 1.2-3+deb11u2's changelog read once for both
    assert [path for path in server.requests if "libfoo1_" in path] == [
        "/debian-security/pool/main/libfoo1_1.2-3+deb11u2_amd64.deb"
    ]
    assert audit[1].to_json() == {
        "package": "libfoo-modules",
        "arch": "amd64",
        "installed": "1.2-3",
        "available": "1.2-3+deb11u2",
        "suite": "bullseye-security",
        "source": "foo",
        "source_version": "1.2-3+deb11u2",
        "cves": foo_cves,
        "reason": None,
    }


def test_a_deb_over_the_cap_is_not_downloaded_for_its_changelog(serve, archive_tree, keyring, tmp_path):
    archive = DebianArchive(tmp_path / "cache", keyring=keyring, max_deb_bytes=100)
    view = ArchiveView(
        "amd64", {suite: archive.packages(suite, "amd64") for suite in serve(archive_tree).suites().values()}
    )
    audit = with_fixed_cves(pending(installed_from_sbom(SBOM), view), archive)
    assert {item.cves for item in audit} == {None}
    assert "its .deb is" in audit[1].reason and "over the 100 bytes read for a changelog" in audit[1].reason
    assert not (tmp_path / "cache" / "debs").exists()


def test_a_package_of_another_architecture_is_refused(serve, archive_tree, keyring, tmp_path):
    installed = [Installed("libfoo1", "1.2-3", "arm64", "foo", "1.2-3")]
    with pytest.raises(ReleaseError, match="installed for arm64, the archive is read for amd64"):
        pending(installed, ArchiveView("amd64", {}))


def test_only_the_given_keyring_counts(serve, archive_tree, signers, keyring, tmp_path, monkeypatch):
    """The archive's key trusted in the caller's own GnuPG home (gpgv's default keyring) does not make a keyring
    without it accept the archive."""
    gnupg = tmp_path / "home" / ".gnupg"
    gnupg.mkdir(parents=True, mode=0o700)
    shutil.copy(keyring, gnupg / "trustedkeys.gpg")
    monkeypatch.setenv("HOME", str(gnupg.parent))
    monkeypatch.setenv("GNUPGHOME", str(gnupg))
    stranger = signers[1].export(tmp_path / "stranger.gpg")
    suite = serve(archive_tree).suites()["bullseye"]
    with pytest.raises(ReleaseError, match="no valid signature"):
        DebianArchive(tmp_path / "cache", keyring=stranger).packages(suite, "amd64")


def test_a_changelog_the_mirror_does_not_serve_is_read_from_another_architectures_package(
    serve, tree, archive_tree, keyring, tmp_path
):
    """bullseye-security's arm64 pool answered 404 while its index listed the packages: the same source version's
    changelog is read from the other architecture's .deb instead; without one, the package says why, the rest go on."""
    for deb in (tree / "debian-security" / "pool" / "main").glob("libfoo*"):
        deb.unlink()
    archive = DebianArchive(tmp_path / "cache", keyring=keyring)
    broken = serve(tree).suites().values()
    view = ArchiveView("amd64", {suite: archive.packages(suite, "amd64") for suite in broken})
    alone = {item.installed.name: item for item in with_fixed_cves(pending(installed_from_sbom(SBOM), view), archive)}
    assert alone["libfoo1"].cves is None and "404" in alone["libfoo1"].reason
    intact = serve(archive_tree).suites().values()
    other = ArchiveView("amd64", {suite: archive.packages(suite, "amd64") for suite in intact})
    audit = with_fixed_cves(pending(installed_from_sbom(SBOM), view), archive, [other])
    found = {item.installed.name: item.cves for item in audit}
    assert found["libfoo1"] == found["libfoo-modules"] == ("CVE-2024-0002", "CVE-2024-0003", "CVE-2024-10001")
