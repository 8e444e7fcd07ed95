import pytest
from packaging.version import Version

from ac_release.core.errors import ReleaseError
from ac_release.model.version import ACVersion
from ac_release.world.released_images import release_tag_version


def test_release_spellings_are_derived_from_one_input():
    version = ACVersion.parse("2.2.4-1")
    assert str(version) == "2.2.4-1"
    assert version.airflow_version == "2.2.4"
    assert version.wheel_version == "2.2.4+astro.1"
    assert version.meta_version == "2.2.4.post1"
    assert version.git_tag == "v2.2.4-1"


def test_dev_build_spellings():
    version = ACVersion.parse("2.2.4-2-dev")
    assert version.dev
    assert version.wheel_version == "2.2.4+astro.2.dev"
    assert version.meta_version == "2.2.4.post2.dev0"
    # a dev build sorts before the release of the same build number
    assert Version(version.meta_version) < Version(ACVersion.parse("2.2.4-2").meta_version)


def test_build_numbers_order_numerically():
    assert Version(ACVersion.parse("2.2.4-10").meta_version) > Version(ACVersion.parse("2.2.4-9").meta_version)
    assert ACVersion.parse("2.2.4-10") > ACVersion.parse("2.2.4-9")


@pytest.mark.parametrize(
    "text",
    [
        "2.2.4",
        "2.2.4-0",
        "2.2.4-01",
        "v2.2.4-1",
        "2.2.4-1;id",
        "2.2.4-1 -dev",
        "",
        "2.2.4-1\n",
        " 2.2.4-1",
        "2.2-1",
        "2.2.4-1-rc1",
        "2.2.4.post1",
        "02.2.4-1",
        "2.2.4-1-DEV",
        "２.2.4-1",
    ],
)
def test_everything_else_is_refused_naming_the_accepted_forms(text):
    with pytest.raises(ReleaseError) as error:
        ACVersion.parse(text)
    message = str(error.value)
    assert message == (
        f"invalid AC version {text!r}: expected X.Y.Z-N (release, N >= 1 without leading zeros), "
        f"X.Y.Z-N-dev (dev) or X.Y.Z-N-devYYYYMMDDKK (nightly), e.g. 2.2.4-1"
    )


@pytest.mark.parametrize(
    ("tag", "release"),
    [
        ("2.2.4-1", "2.2.4-1"),
        ("2.2.3-12", "2.2.3-12"),
        ("2.2.4", None),
        ("2.2.4-1-onbuild", None),
        ("2.2.4-1-bullseye", None),
        ("2.2.4-2-dev", None),
        ("2.2.4-bullseye", None),
        ("latest", None),
    ],
)
def test_only_default_flavour_release_tags_are_upgrade_starting_points(tag, release):
    found = release_tag_version(tag)
    assert (str(found) if found else None) == release


def test_numbers_up_to_four_digits_are_accepted():
    version = ACVersion.parse("9999.9999.9999-9999")
    assert (version.airflow_version, version.build) == ("9999.9999.9999", 9999)


@pytest.mark.parametrize("text", ["2.2.4-10000", "2.2.4-99999999999999999999999", "10000.2.4-1", "2.22222.4-1"])
def test_numbers_of_more_than_four_digits_are_refused(text):
    with pytest.raises(ReleaseError) as error:
        ACVersion.parse(text)
    assert str(error.value) == (
        f"invalid AC version {text!r}: X, Y, Z and N have at most 4 digits each (N from 1 to 9999), e.g. 2.2.4-1"
    )


@pytest.mark.parametrize("text", ["2.2.4-" + "1" * 4400, "2" * 4400 + ".2.4-1", "2.2.4-1" + " " * 5000])
def test_huge_input_is_one_short_line(text):
    with pytest.raises(ReleaseError) as error:
        ACVersion.parse(text)
    message = str(error.value)
    assert len(message) < 200 and "\n" not in message
    assert message.startswith(f"invalid AC version {text[:32]!r}… ({len(text)} characters): ")
