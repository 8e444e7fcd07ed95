"""The images' security audit against Debian's real archive: libssl1.1 at bullseye's point release (1.1.1w-0+deb11u1)
has a newer version in bullseye-security, whose own changelog names the CVEs it fixes. The three suites' InRelease
files are checked against Debian's keyring; the indexes (bullseye main amd64's Packages.xz is about 8 MB) and one .deb
(about 1.5 MB) are read through a cache of the test's own."""

from __future__ import annotations

import re
import shutil
import time

import pytest
from debian.debian_support import Version

from ac_release.clients.debian_archive import DebianArchive
from ac_release.model.debian import KEYRING, debian_arch
from ac_release.model.flavours import AMD64
from ac_release.supply_chain.debian_updates import ArchiveView, installed_from_sbom, pending, with_fixed_cves
from tests.integration.conftest import require

pytestmark = pytest.mark.integration

INSTALLED = "1.1.1w-0+deb11u1"
SBOM = {
    "components": [{"purl": "pkg:deb/debian/libssl1.1@1.1.1w-0%2Bdeb11u1?arch=amd64&distro=debian-11&upstream=openssl"}]
}
FIXED_AFTER = "CVE-2024-0727"  # in the changelog's 1.1.1w-0+deb11u2 entry
FIXED_BEFORE = "CVE-2023-3817"  # in its 1.1.1v-0~deb11u1 entry, older than the installed version


def test_libssl_of_the_point_release_has_a_security_update_naming_its_cves(tmp_path, figure):
    require(KEYRING.is_file(), f"{KEYRING} (debian-archive-keyring)")
    require(shutil.which("gpgv") is not None, "gpgv")
    started = time.monotonic()
    archive = DebianArchive(tmp_path / "cache")

    view = ArchiveView.read(archive, "bullseye", debian_arch(AMD64))
    [libssl] = with_fixed_cves(pending(installed_from_sbom(SBOM), view), archive)

    assert (libssl.installed.name, libssl.installed.version, libssl.installed.source) == (
        "libssl1.1",
        INSTALLED,
        "openssl",
    )
    assert libssl.available.suite.name == "bullseye-security"
    assert Version(libssl.available.version) > Version(INSTALLED)
    assert libssl.reason is None and libssl.cves, libssl.to_json()
    assert all(re.fullmatch(r"CVE-\d{4}-\d{4,}", cve) for cve in libssl.cves)
    assert FIXED_AFTER in libssl.cves and FIXED_BEFORE not in libssl.cves
    assert len(list((tmp_path / "cache" / "debs").iterdir())) == 1  # one .deb: libssl1.1's
    figure(
        f"Debian audit of libssl1.1 {INSTALLED} -> {libssl.available.version}: {len(libssl.cves)} CVEs, "
        f"{time.monotonic() - started:.0f} s (3 suites' indexes and one .deb downloaded)"
    )
