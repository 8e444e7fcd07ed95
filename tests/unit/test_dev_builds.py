"""Dev builds and nightlies: the version grammar and its PEP 440 spellings, the nightly's image tags, the dev
locations of each target of the repository's release.toml, the tag and promote decisions for a dev build, the
changelog's next build and the inputs digest a nightly compares."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from ac_release.building import build_inputs
from ac_release.commands.nightly import parse_date, parse_line
from ac_release.core.errors import ReleaseError
from ac_release.model.changelog import dev_build_entry_in, next_build_in, parse
from ac_release.model.config import IndexSettings, RegistryAccess, Secret, SigningSettings, load_settings
from ac_release.model.flavours import flavours_of
from ac_release.model.names import BUILD_INPUTS, release_files
from ac_release.model.version import ACVersion
from ac_release.stages import promote, tag
from ac_release.world.context import ReleaseContext
from tests.helpers import PRODUCTION, REPO, git, write_config

NIGHTLY = "2.2.4-2-dev2026120101"


@pytest.mark.parametrize(
    ("text", "meta", "wheel", "image"),
    [
        (NIGHTLY, "2.2.4.post2.dev2026120101", "2.2.4+astro.2.dev2026120101", "2.2.4-nightly-20261201"),
        (
            "2.2.4-2-dev2026120102",
            "2.2.4.post2.dev2026120102",
            "2.2.4+astro.2.dev2026120102",
            "2.2.4-nightly-20261201.2",
        ),
        (
            "2.2.4-3-dev2027022899",
            "2.2.4.post3.dev2027022899",
            "2.2.4+astro.3.dev2027022899",
            "2.2.4-nightly-20270228.99",
        ),
        ("2.2.4-2-dev", "2.2.4.post2.dev0", "2.2.4+astro.2.dev", "2.2.4-2-dev"),
        ("2.2.4-1", "2.2.4.post1", "2.2.4+astro.1", "2.2.4-1"),
    ],
)
def test_versions_and_their_spellings(text, meta, wheel, image):
    version = ACVersion.parse(text)
    assert (str(version), version.meta_version, version.wheel_version, version.image_tag) == (text, meta, wheel, image)
    assert str(Version(meta)) == meta and str(Version(wheel)) == wheel  # PEP 440's own normal forms
    assert "+" not in version.image_tag


def test_a_nightly_is_a_dev_build_of_its_day_and_sequence():
    version = ACVersion.parse(NIGHTLY)
    assert (version.dev, version.build, version.nightly_date, version.sequence) == (True, 2, "20261201", 1)
    assert ACVersion.nightly_of("2.2.4", 2, dt.date(2026, 12, 1), 1) == version
    with pytest.raises(ReleaseError, match="at most 99 nightlies a day"):
        ACVersion.nightly_of("2.2.4", 2, dt.date(2026, 12, 1), 100)


@pytest.mark.parametrize(
    "text",
    [
        "2.2.4-2-dev2026023101",
        "2.2.4-2-dev2026120100",
        "2.2.4-2-dev2026130101",
        "2.2.4-1-dev0001010101",  # read as 1010101, which prints back as ...-dev1010101
        "2.2.4-1-dev0999123101",
        "2.2.4-1-dev9999123101",
        "2.2.4-1-dev1999123101",
        "2.2.4-1-dev2100010101",
    ],
)
def test_a_nightly_needs_a_real_day_of_its_years_and_a_sequence_from_01(text):
    with pytest.raises(ReleaseError) as error:
        ACVersion.parse(text)
    assert str(error.value) == (
        f"invalid AC version {text!r}: a nightly is X.Y.Z-N-devYYYYMMDDKK with a real date of the years 2000 to "
        f"2099 and a sequence KK from 01 to 99, e.g. 2.2.4-2-dev2026120101"
    )


@pytest.mark.parametrize("text", ["2.2.4-1-dev2000010101", "2.2.4-1-dev2099123199"])
def test_a_nightly_of_the_first_and_last_day_reads_back_the_same(text):
    assert str(ACVersion.parse(text)) == text


@pytest.mark.parametrize("day", [dt.date(1, 1, 1), dt.date(999, 12, 31), dt.date(9999, 12, 31)])
def test_no_nightly_is_made_for_a_day_outside_its_years(day):
    with pytest.raises(ReleaseError, match=rf"a nightly of {day} is out of range: nightlies are dated from 2000"):
        ACVersion.nightly_of("2.2.4", 2, day, 1)


@pytest.mark.parametrize(
    "text", ["2.2.4-2-dev20261201", "2.2.4-2-dev202612010", "2.2.4-2-dev20261201011", "2.2.4-2-nightly"]
)
def test_other_dev_spellings_are_refused_naming_the_forms(text):
    with pytest.raises(ReleaseError, match=r"X\.Y\.Z-N-devYYYYMMDDKK \(nightly\)"):
        ACVersion.parse(text)


def test_pip_sorts_a_dev_build_below_its_release_and_never_matches_it_for_the_release():
    release, plain, nightly = (Version(ACVersion.parse(t).meta_version) for t in ("2.2.4-2", "2.2.4-2-dev", NIGHTLY))
    assert plain < nightly < release and Version("2.2.4.post1") < plain
    assert plain.is_prerelease and nightly.is_prerelease and not release.is_prerelease
    pinned = SpecifierSet("==2.2.4.post2")
    assert plain not in pinned and nightly not in pinned and release in pinned
    assert list(pinned.filter([plain, nightly])) == []  # not even as the only candidate
    post1 = Version("2.2.4.post1")
    assert list(SpecifierSet(">=2.2.4.post1").filter([post1, nightly])) == [post1]  # a release beats a dev build
    assert list(SpecifierSet(f"=={nightly}").filter([nightly], prereleases=True)) == [nightly]


def test_a_nightly_has_its_dated_immutable_tags_and_no_floating_one():
    (flavour,) = flavours_of(REPO / "images", "2.2.4")
    for text, prefix in ((NIGHTLY, "2.2.4-nightly-20261201"), ("2.2.4-2-dev2026120102", "2.2.4-nightly-20261201.2")):
        version = ACVersion.parse(text)
        assert flavour.tags(version) == [prefix, f"{prefix}-bullseye"]
        assert flavour.tags(version, "onbuild") == [f"{prefix}-onbuild", f"{prefix}-bullseye-onbuild"]
        assert flavour.floating_tags(version) == flavour.floating_tags(version, "onbuild") == []


def test_a_dev_build_publishes_its_inputs_among_its_release_files():
    assert BUILD_INPUTS in release_files(ACVersion.parse(NIGHTLY), "astronomer-certified")
    assert BUILD_INPUTS not in release_files(ACVersion.parse("2.2.4-1"), "astronomer-certified")


def test_dev_locations_of_each_target_of_the_repositorys_release_toml(monkeypatch):
    monkeypatch.delenv("AC_RELEASE_CONFIG", raising=False)
    settings = load_settings(REPO / "release.toml")
    production = settings.target("production").for_dev_build()
    assert production.index == IndexSettings(
        "https://pip.astronomer.io/dev/", "__token__", Secret(env="AC_INDEX_PASSWORD")
    )  # the release index's token
    assert production.registries == ("quay.io/astronomer/ap-airflow-dev", "docker.io/astronomerinc/ap-airflow-dev")
    assert [r.access for r in production.registries] == [RegistryAccess(), RegistryAccess()]  # `docker login`'s

    local = settings.target("local").for_dev_build()
    # the same login as the release index (http://127.0.0.1:8765/)
    assert local.index == IndexSettings(
        "http://127.0.0.1:8767/", "ac-release", Secret(file=REPO / ".services" / "pypi" / "password")
    )
    assert local.registries == ("127.0.0.1:5000/astronomer/ap-airflow-dev",)
    assert [r.access for r in local.registries] == [RegistryAccess(tls_verify=False)]

    services = Path.home() / ".local" / "state" / "ac-release" / "staging"  # the staging services' dir
    dev = settings.target("staging").for_dev_build()
    assert dev.index == IndexSettings(
        "https://127.0.0.1:8777/", "__token__", Secret(env="AC_INDEX_PASSWORD"), services / "tls" / "ca" / "ca.crt"
    )
    assert dev.registries == ("127.0.0.1:5010/astronomer/ap-airflow-dev", "127.0.0.1:5011/astronomerinc/ap-airflow-dev")
    assert [r.access for r in dev.registries] == [  # the release registries' credentials
        RegistryAccess(True, services / "tls" / "ca", "ac-release+staging", Secret(env="AC_QUAY_PASSWORD")),
        RegistryAccess(True, services / "tls" / "ca", "acreleasestaging", Secret(env="AC_HUB_PASSWORD")),
    ]
    assert dev.git_remote == str(services / "git" / "ac-release.git")
    assert dev.signing == SigningSettings(
        "custom",
        "https://token.actions.githubusercontent.com",
        repository="astronomer/ap-airflow",
        releases="release.yml@refs/heads/main",
        nightlies="nightly.yml@refs/heads/main",
        trust_config=services / "sigstore" / "trust_config.json",
    )


def test_a_dev_build_context_goes_to_the_dev_locations_and_reads_releases_from_the_release_repository(tmp_path):
    config = write_config(tmp_path, pypi_port=8765, registry_port=5000, dev_index=True)
    config.write_text(re.sub(r"(?m)^dev_pypi_port = \d+$", "dev_pypi_port = 8767", config.read_text(), count=1))
    settings = load_settings(config)
    ctx = ReleaseContext.create(NIGHTLY, settings)
    assert ctx.target.registries == ("127.0.0.1:5000/astronomer/ap-airflow-dev",)
    assert ctx.release_target.registries == ("127.0.0.1:5000/astronomer/ap-airflow",)
    assert (ctx.target.index.url, ctx.release_target.index.url) == ("http://127.0.0.1:8767/", "http://127.0.0.1:8765/")
    release = ReleaseContext.create("2.2.4-1", settings)
    assert release.target is release.release_target


def test_a_target_without_dev_locations_refuses_a_dev_build(tmp_path):
    settings = load_settings(write_config(tmp_path))
    with pytest.raises(ReleaseError) as error:
        ReleaseContext.create("2.2.4-2-dev", settings)
    assert (
        str(error.value)
        == "target local has no dev locations for a dev build: add dev_pypi_port to its services in release.toml"
    )


@pytest.mark.parametrize(
    ("dev", "message"),
    [
        (
            'index_url = "http://pip.example.com/dev/"\nregistries = ["quay.io/a/b-dev"]',
            "targets.production.dev.index_url: a remote index must use https, got 'http://pip.example.com/dev/'",
        ),
        (
            'index_url = "https://pip.example.com/dev/"',
            "targets.production.dev.registries: missing (compare with the repository's release.toml)",
        ),
        (
            'index_url = "https://pip.example.com/dev/"\nregistries = ["quay.io/a/b-dev"]\nusername = "x"',
            "targets.production.dev.username: unknown key (known keys: index_url, registries)",
        ),
    ],
)
def test_a_malformed_dev_table_is_refused_naming_the_key(tmp_path, dev, message):
    path = write_config(tmp_path)
    path.write_text(path.read_text() + PRODUCTION + f"\n[targets.production.dev]\n{dev}\n")
    with pytest.raises(ReleaseError) as error:
        load_settings(path)
    assert str(error.value) == f"{path}: {message}"


def test_a_target_with_services_derives_its_dev_locations(tmp_path):
    path = write_config(tmp_path)
    path.write_text(
        path.read_text()
        + '\n[targets.local.dev]\nindex_url = "https://pip.example.com/dev/"\nregistries = ["quay.io/a/b"]\n'
    )
    with pytest.raises(ReleaseError) as error:
        load_settings(path)
    assert str(error.value).endswith(
        "targets.local.dev: derived from the target's services (dev_pypi_port, `<repository>-dev`): remove it"
    )


def test_the_tag_stage_skips_a_dev_build_and_promote_says_it_moves_nothing(tmp_path):
    ctx = ReleaseContext.create(NIGHTLY, load_settings(write_config(tmp_path, dev_index=True)))
    (step,) = tag.decide(ctx)
    assert (step.action, step.target) == ("skip", f"v2.2.4-2-dev2026120101@{tmp_path / 'services/git/ac-release.git'}")
    assert step.reason.startswith("no release tag for dev builds")
    (step,) = promote.decide(ctx)
    assert (step.action, step.reason) == ("skip", "a dev build moves no floating tag")


CHANGELOG = """# Astronomer Certified 2.2.4

## 2.2.4-2, {date}

### Bug Fixes
- A fix.

## 2.2.4-1, 2026-11-22

### Bug Fixes
- The first build.
"""


@pytest.mark.parametrize(("date", "build"), [("TBD", 2), ("2026-11-30", 3)])
def test_the_next_build_is_the_tbd_one_or_the_one_after_the_newest_dated(tmp_path, date, build):
    (tmp_path / "2.2.4.md").write_text(CHANGELOG.format(date=date))
    assert next_build_in(parse(tmp_path / "2.2.4.md", "2.2.4"), "2.2.4") == build


def test_a_dev_build_takes_the_notes_of_its_build_dated_or_not(tmp_path):
    (tmp_path / "2.2.4.md").write_text(CHANGELOG.format(date="TBD"))
    entries = parse(tmp_path / "2.2.4.md", "2.2.4")
    assert dev_build_entry_in(entries, ACVersion.parse(NIGHTLY)).version == "2.2.4-2"
    assert dev_build_entry_in(entries, ACVersion.parse("2.2.4-3-dev")) is None


def _repo(root: Path) -> Path:
    for name in ("wheel/2.2.4/line.toml", "images/matrix.toml", "ac_release/x.py", "changelog/2.2.4.md", "README.md"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    (root / "pyproject.toml").write_text("[project]\n")
    subprocess.run(["git", "init", "--quiet", str(root)], check=True)
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "--quiet", "-m", "c")
    return root


def _commit_change(root: Path, name: str) -> None:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text("changed")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "--quiet", "-m", "c")


def test_the_inputs_digest_follows_the_inputs_only(tmp_path):
    root = _repo(tmp_path)
    first = build_inputs.digest(root, "2.2.4")
    _commit_change(root, "README.md")
    _commit_change(root, "changelog/2.2.5.md")
    assert build_inputs.digest(root, "2.2.4") == first  # not an input of the line
    for name in ("wheel/2.2.4/patches/0002-x.patch", "images/matrix.toml", "ac_release/x.py", "pyproject.toml"):
        _commit_change(root, name)
        changed = build_inputs.digest(root, "2.2.4")
        assert changed != first, name
        first = changed
    record = build_inputs.record_bytes(root, ACVersion.parse(NIGHTLY))
    assert build_inputs.recorded_digest(record) == first == build_inputs.digest(root, "2.2.4")
    assert build_inputs.recorded_digest(b"not json") is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["2.2"], "invalid release line '2.2': expected the Airflow version X.Y.Z, e.g. 2.2.4"),
        (
            ["2.2.4", "--date", "2026-02-30"],
            "invalid --date '2026-02-30': expected a calendar date YYYY-MM-DD, e.g. 2026-12-01 (nightlies are dated "
            "from 2000 to 2099)",
        ),
        (
            ["2.2.4", "--date", "0999-12-31"],
            "invalid --date '0999-12-31': expected a calendar date YYYY-MM-DD, e.g. 2026-12-01 (nightlies are dated "
            "from 2000 to 2099)",
        ),
        (
            ["2.2.4", "--date", "9999-12-31"],
            "invalid --date '9999-12-31': expected a calendar date YYYY-MM-DD, e.g. 2026-12-01 (nightlies are dated "
            "from 2000 to 2099)",
        ),
        (["2.2.4", "--target", "nowhere"], "unknown target 'nowhere': choose one of local"),
    ],
)
def test_invoke_nightly_refuses_bad_input_in_one_line(tmp_path, args, message):
    config = write_config(tmp_path, dev_index=True, cache_dir=tmp_path / "cache")  # not made: nothing may be
    env = {**os.environ, "AC_RELEASE_CONFIG": str(config), "AC_RELEASE_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), "nightly", *args, "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert (result.returncode, result.stdout, result.stderr.splitlines()) == (1, "", [f"error: {message}"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release.toml"]


def test_parse_line_and_date():
    assert parse_line("2.2.4") == "2.2.4"
    assert parse_date("2026-12-01") == dt.date(2026, 12, 1)
    assert parse_date(None) == dt.datetime.now(dt.UTC).date()


def test_preflight_wants_a_clean_tree_but_no_dated_entry_for_a_dev_build(tmp_path):
    from ac_release.stages.preflight import check_committed_inputs

    root = tmp_path / "repo"
    for name in ("wheel", "images", "changelog", "products"):
        shutil.copytree(REPO / name, root / name)
    changelog = root / "changelog" / "2.2.4.md"
    text = changelog.read_text()
    changelog.write_text(text.replace("## 2.2.4-1,", "## 2.2.4-2, TBD\n\n### Bug Fixes\n- A fix.\n\n## 2.2.4-1,", 1))
    subprocess.run(["git", "init", "--quiet", str(root)], check=True)
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "--quiet", "-m", "c")
    settings = load_settings(write_config(tmp_path, root=root, dev_index=True))
    check_committed_inputs(ReleaseContext.create("2.2.4-2-dev", settings, releasing=True))
    check_committed_inputs(ReleaseContext.create(NIGHTLY, settings, releasing=True))
    with pytest.raises(ReleaseError, match=r"2\.2\.4-2 is dated 'TBD': set the release date"):
        check_committed_inputs(ReleaseContext.create("2.2.4-2", settings, releasing=True))
    (root / "images" / "stray").write_text("x")
    with pytest.raises(ReleaseError, match=r"the git tree has uncommitted changes \(\?\? images/stray\)"):
        check_committed_inputs(ReleaseContext.create(NIGHTLY, settings, releasing=True))
