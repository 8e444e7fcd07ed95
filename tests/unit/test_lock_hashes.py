"""The line's lock pins every dependency of the image with the hashes of its files, and every install of it (the image
build, the wheel check) requires them: a downloaded file with other bytes cannot be installed."""

from __future__ import annotations

import hashlib
import re
import shutil
import tomllib

import pytest
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from ac_release.building.dockerfiles import expected_files
from ac_release.building.lock import files_path, hashed_hashes, hashed_pins, read_files, supported_tags, without_hashes
from ac_release.core.errors import ReleaseError
from ac_release.model.flavours import ARM64, line_platforms, load_matrix
from tests.helpers import REPO

LOCKS = sorted((REPO / "wheel").glob("*/constraints.txt")) + sorted((REPO / "wheel").glob("*/build-requirements.txt"))
# the locks of product versions with pins of their own (`invoke lock runtime-4.2.0`): products/<product>/<X.Y.Z>/
PRODUCT_LOCKS = sorted((REPO / "products").glob("*/*/constraints.txt"))


@pytest.mark.parametrize("lock", LOCKS + PRODUCT_LOCKS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_pin_of_the_lock_carries_hashes(lock):
    text = lock.read_text()
    pins = hashed_pins(text)
    requirement_lines = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert len(pins) == len(requirement_lines) > 0
    assert [name for name, (_, hashes) in pins.items() if hashes == 0] == []


def test_the_image_pip_is_locked_at_the_matrix_version():
    """The image installs `pip==<matrix pip>` with --require-hashes: its hashes must be in the line's lock."""
    for airflow, flavours in load_matrix(REPO / "images").items():
        pins = hashed_pins((REPO / "wheel" / airflow / "constraints.txt").read_text())
        assert {flavour.pip for flavour in flavours} == {pins["pip"][0]}, f"pip of line {airflow}"


def test_every_generated_dockerfile_installs_by_hash():
    """The line's lock into the line's venv, then the product version's lock over it (AC's is the line's)."""
    checked, onbuild = [], []
    for path, text in expected_files(REPO / "images").items():
        installs = [part.split("\n    && ", 1)[0] for part in text.split("/opt/build-tools/bin/uv pip install")[1:]]
        if not installs:
            onbuild.append(str(path.relative_to(REPO)))
            continue  # onbuild: installs nothing of its own
        checked.append(str(path.relative_to(REPO)))
        assert all("--require-hashes" in install for install in installs), path
        line, product = installs
        assert "--constraint /build/line-constraints.txt --requirement /build/line-requirements.txt" in line, path
        assert "--constraint /build/constraints.txt --requirement /build/requirements.txt" in product, path
        assert "--exact" in product, path  # the product's venv is its lock: what the line has and it has not goes
        # the two built wheels are pinned by the sha256 the manifest gives as build arguments
        assert re.search(r"apache-airflow \S+ \"\$\{AIRFLOW_WHEEL_SHA256\}\"", text), path
        assert '"${META_WHEEL_SHA256}"' in text, path
    # every flavour of every line of images/matrix.toml: its image checked, its onbuild image installing nothing
    flavours = [f"images/{f.airflow}/{f.name}" for lines in load_matrix(REPO / "images").values() for f in lines]
    assert len(flavours) >= 6  # 2.2.0 to 2.2.4 and 2.3.0, one flavour each
    assert sorted(checked) == sorted(f"{flavour}/Dockerfile" for flavour in flavours)
    assert sorted(onbuild) == sorted(f"{flavour}/onbuild/Dockerfile" for flavour in flavours)


def test_the_wheel_check_installs_by_hash():
    script = (REPO / "ac_release" / "building" / "wheelcheck.sh").read_text()
    assert "--require-hashes --constraint /lock/constraints.txt" in script


def test_the_bench_baseline_gets_the_same_pins_without_hashes():
    text = (REPO / "wheel" / "2.2.4" / "constraints.txt").read_text()
    plain = without_hashes(text)
    assert "--hash" not in plain
    assert {name: version for name, (version, _) in hashed_pins(plain).items()} == {
        name: version for name, (version, _) in hashed_pins(text).items()
    }
    assert "six==1.16.0\n    # via" in plain


# -- every platform of the line installs every pin of its one lock ------------------------------------------------

# The pins with no wheel for linux/arm64 (CPython 3.9, manylinux_2_31) but one for linux/amd64: compiled in the arm64
# build stage, under emulation ~10x slower than a native compile (/tmp/notes/arm64-findings.md): the benchmark's to
# show. A change here is a change of the locks' cost: update it with the lock.
ARM64_BUILT_FROM_SOURCE = {
    "2.2.4": ["pendulum==2.1.2", "psutil==5.9.0", "pyrsistent==0.18.1", "wrapt==1.13.3"],
    "2.3.0": ["pendulum==2.1.2", "psutil==5.9.0", "pyrsistent==0.18.1"],
    # the lines of 2021 also compile PyNaCl: 1.5.0 (2022-01-07), its first release with an arm64 wheel, is newer
    **dict.fromkeys(
        ("2.2.0", "2.2.1", "2.2.2", "2.2.3"),
        ["pendulum==2.1.2", "psutil==5.8.0", "pynacl==1.4.0", "pyrsistent==0.18.0"],
    ),
}
# The same of the product versions' locks, whose own pins add some: Runtime 4.2.0's providers pin
# snowflake-connector-python 2.7.1 (and pycryptodomex 3.14.1), with no wheel for linux/arm64 either.
ARM64_BUILT_FROM_SOURCE_PRODUCTS = {
    "runtime/4.2.0": [
        "pendulum==2.1.2",
        "psutil==5.9.0",
        "pycryptodomex==3.14.1",
        "pyrsistent==0.18.1",
        "snowflake-connector-python==2.7.1",
        "wrapt==1.13.3",
    ],
    "runtime/4.2.1": ARM64_BUILT_FROM_SOURCE["2.2.4"],
    "runtime/5.0.0": ARM64_BUILT_FROM_SOURCE["2.3.0"],
}


def _line_of(lock):
    """The release line a lock installs on: its directory's (wheel/2.2.4), or its product version's line
    (products/runtime/4.2.0: Runtime 4.2.0 is built on 2.2.4)."""
    if lock.is_relative_to(REPO / "products"):
        from ac_release.model.products import load_product

        product = load_product(REPO, lock.parent.parent.name)
        return product.version(f"{product.prefix}{lock.parent.name}").airflow_version
    return lock.parent.name


def test_every_product_version_lock_is_found():
    assert [str(lock.relative_to(REPO)) for lock in PRODUCT_LOCKS] == [
        f"products/runtime/{number}/constraints.txt" for number in ("4.2.0", "4.2.1", "5.0.0")
    ]
    assert [_line_of(lock) for lock in PRODUCT_LOCKS] == ["2.2.4", "2.2.4", "2.3.0"]


@pytest.mark.parametrize("lock", LOCKS + PRODUCT_LOCKS, ids=lambda p: str(p.relative_to(REPO)))
def test_each_pin_has_a_hashed_file_installable_on_each_platform_of_the_line(lock):
    """The companion the lock command writes names, per platform, the file each pin installs there; that file's
    hash is the lock's, and its name is a wheel of the pin whose tags the platform's CPython installs, or the pin's
    sdist. No network: the names are the companion's, the tags computed here."""
    airflow = _line_of(lock)
    python = tomllib.loads((REPO / "wheel" / airflow / "line.toml").read_text())["build_python"]
    platforms = [str(p) for p in line_platforms(load_matrix(REPO / "images"), airflow)]
    pins = hashed_hashes(lock.read_text())
    files = read_files(files_path(lock).read_text())
    assert list(files) == platforms, "the companion covers the line's platforms, in its order: run invoke lock"
    for platform in line_platforms(load_matrix(REPO / "images"), airflow):
        tags = set(supported_tags(platform, python))
        chosen = files[str(platform)]
        assert sorted(chosen) == sorted(pins), f"{platform}: the companion lists the lock's pins"
        for name, file in chosen.items():
            version, hashes = pins[name]
            where = f"{name}=={version} on {platform}"
            assert file.version == version and file.sha256 in hashes, where
            if file.sdist:
                sdist_name, sdist_version = parse_sdist_filename(file.filename)
                assert (canonicalize_name(sdist_name), sdist_version) == (name, Version(version)), where
            else:
                wheel_name, wheel_version, _, wheel_tags = parse_wheel_filename(file.filename)
                assert (wheel_name, wheel_version) == (name, Version(version)), where
                assert wheel_tags & tags, f"{where}: {file.filename} does not install there"


# every line whose images are built for linux/arm64 (a new line too: its entry above is part of adding it)
_MATRIX = load_matrix(REPO / "images")
ARM64_LINES = sorted(airflow for airflow in _MATRIX if ARM64 in line_platforms(_MATRIX, airflow))


@pytest.mark.parametrize("airflow", ARM64_LINES)
def test_the_pins_compiled_for_arm64_only_are_known(airflow):
    assert airflow in ARM64_BUILT_FROM_SOURCE, f"add line {airflow} to ARM64_BUILT_FROM_SOURCE with its lock"
    files = read_files(files_path(REPO / "wheel" / airflow / "constraints.txt").read_text())
    amd64, arm64 = files["linux/amd64"], files["linux/arm64"]
    only = sorted(f"{n}=={f.version}" for n, f in arm64.items() if f.sdist and not amd64[n].sdist)
    assert only == ARM64_BUILT_FROM_SOURCE[airflow]
    # the toolchain (setuptools, wheel, build, uv) has a wheel for every platform
    toolchain = read_files(files_path(REPO / "wheel" / airflow / "build-requirements.txt").read_text())
    assert [f.filename for files in toolchain.values() for f in files.values() if f.sdist] == []


@pytest.mark.parametrize("version", sorted(ARM64_BUILT_FROM_SOURCE_PRODUCTS))
def test_the_pins_compiled_for_arm64_only_of_each_product_version_are_known(version):
    files = read_files(files_path(REPO / "products" / version / "constraints.txt").read_text())
    amd64, arm64 = files["linux/amd64"], files["linux/arm64"]
    only = sorted(f"{n}=={f.version}" for n, f in arm64.items() if f.sdist and not amd64[n].sdist)
    assert only == ARM64_BUILT_FROM_SOURCE_PRODUCTS[version]


def _resolution(platform, pins, files=None):
    from ac_release.building.lock import PlatformFile, _Resolution

    digest = {name: hashlib.sha256(name.encode()).hexdigest() for name in pins}
    text = "".join(f"{name}=={version} \\\n    --hash=sha256:{digest[name]}\n" for name, version in pins.items())
    files = files or {n: PlatformFile(v, f"{n}-{v}-py3-none-any.whl", digest[n]) for n, v in pins.items()}
    return _Resolution(platform, text, files)


def test_pins_that_differ_between_platforms_are_refused_in_one_line_and_nothing_is_written(tmp_path, monkeypatch):
    from ac_release.building import lock as lock_module
    from ac_release.model.flavours import AMD64, ARM64
    from ac_release.model.line import load_line
    from ac_release.model.version import ACVersion

    shutil.copytree(REPO / "wheel" / "2.2.4", tmp_path / "2.2.4", ignore=shutil.ignore_patterns("patches"))
    before = {path.name: path.read_bytes() for path in (tmp_path / "2.2.4").iterdir()}
    line = load_line(tmp_path, ACVersion.parse("2.2.4-1"))
    resolved = {AMD64: {"psutil": "5.9.0", "six": "1.16.0"}, ARM64: {"psutil": "5.8.0", "six": "1.16.0"}}
    monkeypatch.setattr(
        lock_module,
        "_compile",
        lambda line, reqs, output, extra, platform, prefer=None: _resolution(platform, resolved[platform]),
    )
    with pytest.raises(ReleaseError) as error:
        lock_module.regenerate(line, (AMD64, ARM64))
    assert str(error.value) == (
        "constraints.txt of 2.2.4: uv resolves other pins for linux/arm64 than for linux/amd64 (psutil 5.9.0/5.8.0): "
        "pin them in line.toml [lock] requirements so that one lock serves every platform; nothing written"
    )
    assert {path.name: path.read_bytes() for path in (tmp_path / "2.2.4").iterdir()} == before
    # the same pins: one lock (amd64's text) and its companion, then the toolchain's
    resolved[ARM64]["psutil"] = "5.9.0"
    written = lock_module.regenerate(line, (AMD64, ARM64))
    assert [path.name for path in written] == [
        "constraints.txt",
        "constraints.files.txt",
        "build-requirements.txt",
        "build-requirements.files.txt",
    ]
    files = read_files((tmp_path / "2.2.4" / "constraints.files.txt").read_text())
    assert list(files) == ["linux/amd64", "linux/arm64"] and sorted(files["linux/arm64"]) == ["psutil", "six"]


def test_the_file_chosen_for_a_platform_is_its_best_wheel_else_the_sdist():
    from ac_release.building.lock import best_file
    from ac_release.model.flavours import AMD64, ARM64

    files = [
        ("psutil-5.9.0.tar.gz", "a" * 64),
        ("psutil-5.9.0-cp39-cp39-manylinux_2_12_x86_64.manylinux2010_x86_64.whl", "b" * 64),
        ("psutil-5.9.0-cp39-cp39-win_amd64.whl", "c" * 64),
        ("psutil-5.9.0-cp310-cp310-manylinux_2_17_aarch64.whl", "d" * 64),  # another Python
    ]
    assert best_file(files, "5.9.0", AMD64, "3.9").sha256 == "b" * 64
    assert best_file(files, "5.9.0", ARM64, "3.9").filename == "psutil-5.9.0.tar.gz"
    assert best_file(files, "5.9.0", ARM64, "3.9").sdist
    assert best_file(files[1:], "5.9.0", ARM64, "3.9") is None
    newer = ("psutil-5.9.0-cp39-cp39-manylinux_2_32_aarch64.whl", "e" * 64)  # needs a newer glibc than bullseye's
    assert best_file([newer], "5.9.0", ARM64, "3.9") is None


def test_the_cut_off_is_the_end_of_its_day_in_utc_whatever_the_machines_time_zone(tmp_path, monkeypatch):
    """uv reads a bare date as the end of that day in the machine's time zone: setuptools 60.1.1, uploaded at
    2021-12-28T20:16Z, is in 2.2.3's lock (cut off 2021-12-28) in UTC and was not in Tokyo. The lock passes the instant
    itself, the end of the cut-off day in UTC (what the committed locks were resolved with)."""
    import subprocess

    from ac_release.building import lock as lock_module
    from ac_release.model.flavours import AMD64
    from ac_release.model.line import read_line

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    asked = []

    def uv(argv, cwd):
        asked.append(argv)
        return subprocess.CompletedProcess(argv, 1, "", "stop here")

    monkeypatch.setattr(lock_module, "_uv", uv)
    line = read_line(REPO / "wheel", "2.2.3")
    with pytest.raises(ReleaseError, match="stop here"):
        lock_module._compile(line, ["apache-airflow==2.2.3"], tmp_path / "constraints.txt", [], AMD64)
    argv = asked[0]
    assert argv[argv.index("--exclude-newer") + 1] == "2021-12-29T00:00:00Z"
    assert lock_module.end_of_day_utc(line.tools_cutoff) == "2026-11-23T00:00:00Z"
