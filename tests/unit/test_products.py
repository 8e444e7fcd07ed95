"""Products as data (products/<name>.toml): what a product version names, how its images are tagged, where its
repositories are, what its meta wheel pins, and that a line build is built and signed once for every product."""

from __future__ import annotations

import shutil

import pytest
from packaging.version import Version
from rich.console import Console

from ac_release.building.lock import hashed_pins
from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import sha256_file
from ac_release.model.catalog import Declared
from ac_release.model.config import load_settings
from ac_release.model.flavours import load_matrix
from ac_release.model.names import line_build_names
from ac_release.model.products import load_product, parse_version, products
from ac_release.model.records import Artifact, WheelRecord
from ac_release.stages import publish, sign, wheel
from ac_release.world.context import ReleaseContext, flavours
from tests.helpers import REPO, write_config
from tests.unit.test_cli import _invoke
from tests.unit.test_decisions import World


def _ctx(tmp_path, version: str) -> ReleaseContext:
    return ReleaseContext.create(version, load_settings(write_config(tmp_path)), console=Console(quiet=True))


def test_a_runtime_version_names_its_line_build_which_ac_installs_too():
    runtime, ac = parse_version("runtime-4.2.0", REPO), parse_version("2.2.4-1", REPO)
    assert (runtime.product, runtime.airflow, runtime.build) == ("runtime", Version("2.2.4"), 1)
    assert runtime.wheel_version == ac.wheel_version == "2.2.4+astro.1"
    assert (runtime.meta_version, runtime.image_tag, runtime.git_tag) == ("4.2.0", "4.2.0", "runtime-v4.2.0")
    assert (runtime.dist_name, runtime.changelog_name) == ("runtime-4.2.0", "runtime-4.2")
    assert parse_version("runtime-4.2.1", REPO).wheel_version == "2.2.4+astro.1"  # a patch with no new Airflow build
    five = parse_version("runtime-5.0.0", REPO)  # a line of its own
    assert (five.airflow, five.build, five.wheel_version, five.series) == (Version("2.3.0"), 1, "2.3.0+astro.1", "5.0")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "runtime-4.2.9",
            "no Astro Runtime version 'runtime-4.2.9': declared ones are runtime-4.2.0, runtime-4.2.1, runtime-5.0.0",
        ),
        ("runtime-04.2.0", "no Astro Runtime version 'runtime-04.2.0'"),
        ("runtime-4.2", "no Astro Runtime version 'runtime-4.2'"),
        ("4.2.0", "invalid AC version '4.2.0'"),  # never guessed from the shape of a number
        ("v2.2.4-1", "; or runtime-X.Y.Z for Astro Runtime"),
    ],
)
def test_a_version_is_named_unambiguously_or_refused_in_one_line(text, expected):
    with pytest.raises(ReleaseError) as refused:
        parse_version(text, REPO)
    assert expected in str(refused.value) and "\n" not in str(refused.value)


def test_every_product_is_declared_in_data():
    assert {p.name: (p.title, p.meta_project, p.repository) for p in products(REPO)} == {
        "certified": ("Astronomer Certified", "astronomer-certified", "ap-airflow"),
        "runtime": ("Astro Runtime", "astro-runtime", "astro-runtime"),
    }


def test_runtime_tags_follow_seed_004_and_ac_tags_are_unchanged(tmp_path):
    runtime, ac = _ctx(tmp_path, "runtime-4.2.0"), _ctx(tmp_path, "2.2.4-1")
    (flavour,) = flavours(runtime)
    assert [flavour.tags(runtime.version, v) for v in ("onbuild", "base")] == [["4.2.0"], ["4.2.0-base"]]
    assert [flavour.floating_tags(runtime.version, v) for v in ("onbuild", "base")] == [["4.2"], ["4.2-base"]]
    five = _ctx(tmp_path, "runtime-5.0.0")  # another line: its own tags, its own floating group
    (flavour,) = flavours(five)
    assert [flavour.tags(five.version, v) for v in ("onbuild", "base")] == [["5.0.0"], ["5.0.0-base"]]
    assert [flavour.floating_tags(five.version, v) for v in ("onbuild", "base")] == [["5.0"], ["5.0-base"]]
    (flavour,) = flavours(ac)
    assert flavour.tags(ac.version, "base") == ["2.2.4-1", "2.2.4-1-bullseye"]
    assert flavour.tags(ac.version, "onbuild") == ["2.2.4-1-onbuild", "2.2.4-1-bullseye-onbuild"]
    assert flavour.floating_tags(ac.version, "onbuild") == ["2.2.4-onbuild", "2.2.4-bullseye-onbuild"]


def test_a_line_with_several_pythons_gives_each_its_python_tags_and_the_default_the_plain_ones(tmp_path):
    images = tmp_path / "images"
    shutil.copytree(REPO / "images", images)
    matrix = (images / "matrix.toml").read_text()
    second = '    { distro = "bullseye", python = "3.10", name = "bullseye-python3.10" },\n'
    (images / "matrix.toml").write_text(matrix.replace('python = "3.9" },\n', 'python = "3.9" },\n' + second))
    tagging = load_product(REPO, "runtime").tagging
    default, other = (f.with_tagging(tagging) for f in load_matrix(images)["2.2.4"])
    version = parse_version("runtime-4.2.0", REPO)
    assert default.tags(version, "onbuild") == ["4.2.0", "4.2.0-python-3.9"]
    assert default.tags(version, "base") == ["4.2.0-base", "4.2.0-python-3.9-base"]
    assert other.tags(version, "base") == ["4.2.0-python-3.10-base"]
    assert other.floating_tags(version, "onbuild") == ["4.2-python-3.10"]


def test_a_products_repositories_are_beside_acs_on_every_registry_of_the_target(tmp_path):
    settings = load_settings(REPO / "release.toml")
    runtime, ac = (ReleaseContext.create(v, settings, "staging") for v in ("runtime-4.2.0", "2.2.4-1"))
    assert len(ac.target.registries) == 2  # staging's two registries, each with its own credentials
    assert [r.rsplit("/", 1) for r in runtime.target.registries] == [
        [r.rsplit("/", 1)[0], "astro-runtime"] for r in ac.target.registries
    ]
    assert [r.access for r in runtime.target.registries] == [r.access for r in ac.target.registries]
    production = settings.target("production")
    beside = production.for_repository("ap-airflow", "astro-runtime")
    assert beside.registries == ("quay.io/astronomer/astro-runtime", "docker.io/astronomerinc/astro-runtime")
    assert beside.dev.registries == (
        "quay.io/astronomer/astro-runtime-dev",
        "docker.io/astronomerinc/astro-runtime-dev",
    )
    assert runtime.release_target_of(load_product(REPO, "certified")).registries == ac.target.registries


def test_a_runtime_version_installs_its_own_pins_and_its_meta_wheel_pins_them(tmp_path):
    runtime, ac = _ctx(tmp_path, "runtime-4.2.0"), _ctx(tmp_path, "2.2.4-1")
    assert runtime.line.lock_file == REPO / "products" / "runtime" / "4.2.0" / "constraints.txt"
    assert ac.line.lock_file == REPO / "wheel" / "2.2.4" / "constraints.txt"
    assert runtime.line.providers["google"] == "4.0.0" and ac.line.providers["google"] == "6.4.0"
    assert "astronomer-providers==1.0.0" in runtime.line.meta_pins
    assert "apache-airflow-providers-google==4.0.0" in runtime.line.meta_pins
    assert ac.line.meta_pins == ()  # AC's meta wheel pins the Airflow build alone, as before
    # what decides the Airflow wheel's bytes is the line's, whatever the product
    assert (runtime.line.sdist, runtime.line.patches, runtime.line.build_requirements_file) == (
        ac.line.sdist,
        ac.line.patches,
        ac.line.build_requirements_file,
    )
    assert runtime.artifact_names == sorted(
        [*line_build_names(runtime.version), "astro_runtime-4.2.0-py3-none-any.whl"]
    )


@pytest.mark.parametrize(
    ("number", "airflow", "pip"),
    [("4.2.0", "2.2.4", "22.0.3"), ("4.2.1", "2.2.4", "22.0.3"), ("5.0.0", "2.3.0", "22.0.4")],
)
def test_every_runtime_lock_holds_its_versions_pins_with_hashes(number, airflow, pip):
    product = load_product(REPO, "runtime")
    version = product.version(f"runtime-{number}")
    pins = hashed_pins((REPO / "products" / "runtime" / number / "constraints.txt").read_text())
    wanted = dict(requirement.split("==") for requirement in product.line_of(_line(airflow), version).meta_pins)
    assert {name: pins[name][0] for name in wanted} == wanted
    assert all(hashes > 0 for _, hashes in pins.values())
    assert pins["apache-airflow"][0] == airflow and pins["pip"][0] == pip


def _line(airflow: str = "2.2.4"):
    from ac_release.model.line import load_line

    return load_line(REPO / "wheel", parse_version(f"{airflow}-1", REPO))


def test_runtime_changelog_entries_are_found_by_their_product_version():
    declared = Declared.under(REPO)
    for number in ("4.2.0", "4.2.1", "5.0.0"):
        entry = declared.release_entry(declared.parse_version(f"runtime-{number}"))
        assert entry.version == f"runtime-{number}" and "Dependencies" in entry.sections


def test_the_highest_patch_of_a_minor_chooses_the_floating_tags():
    from ac_release.world import released_images as released

    tags = ["4.2.0", "4.2.0-base", "4.2.1-base", "4.2.10", "4.3.0", "4.2.2-python-3.9", "runtime-4.2.9"]
    version = parse_version("runtime-4.2.1", REPO)
    assert released.highest_released_build(tags, version, "4.2.1") == 10
    assert released.highest_released_build(tags, version, "4.2.1-base") == 1
    assert released.highest_released_build(tags, parse_version("2.2.4-1", REPO), "2.2.4-1") == 0


def test_the_first_runtime_release_reuses_the_line_build_ac_made_and_its_signatures(tmp_path, monkeypatch):
    ac = World(tmp_path, monkeypatch).built().signed()
    runtime = ReleaseContext.create("runtime-4.2.0", ac.settings, console=Console(quiet=True))
    made = {name: ac.ctx.dist / name for name in line_build_names(runtime.version)}

    steps = {step.target: step for step in wheel.decide(runtime)}
    assert {target: step.action for target, step in steps.items()} == {
        **{f"dist/runtime-4.2.0/{name}": "reuse" for name in made},
        "dist/runtime-4.2.0/astro_runtime-4.2.0-py3-none-any.whl": "build",
    }
    assert all("made by 2.2.4-1" in steps[f"dist/runtime-4.2.0/{name}"].reason for name in made)
    # the dry run, before the wheel stage ran, plans the later stages as the run then does them
    ac.published()
    planned = {step.target: step.action for step in sign.decide(runtime)}
    assert [planned[f"runtime-4.2.0/sigstore/local/{name}.sigstore.json"] for name in sorted(made)] == ["reuse"] * 2
    assert planned["runtime-4.2.0/sigstore/local/astro_runtime-4.2.0-py3-none-any.whl.sigstore.json"] == "sign"
    on_index = {step.target.rsplit("/", 1)[-1]: step.action for step in publish.decide(runtime) if "/" in step.target}
    assert {name: on_index[name] for name in runtime.artifact_names} == {
        **dict.fromkeys(made, "skip"),
        "astro_runtime-4.2.0-py3-none-any.whl": "upload",
    }

    # once the runtime release holds the same bytes, its signatures are AC's, verified, never made again
    artifacts = {}
    for name in runtime.artifact_names:
        path = runtime.dist / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(made[name].read_bytes() if name in made else b"meta")
        artifacts[name] = Artifact(sha256_file(path), path.stat().st_size)
    runtime.manifest.put(WheelRecord(wheel.input_fingerprint(runtime), artifacts, {}, "env", 0))
    actions = {step.target: step.action for step in sign.decide(runtime)}
    assert {t for t, a in actions.items() if a == "reuse"} == {
        f"runtime-4.2.0/sigstore/local/{name}{suffix}"
        for name in made
        for suffix in (".sigstore.json", ".publish.attestation", ".slsa.attestation")
    }
    assert {t for t, a in actions.items() if a == "sign"} == {
        f"runtime-4.2.0/sigstore/local/astro_runtime-4.2.0-py3-none-any.whl{suffix}"
        for suffix in (".sigstore.json", ".publish.attestation", ".slsa.attestation")
    }
    meta = "astro_runtime-4.2.0-py3-none-any.whl"
    runtime.bundles.mkdir(parents=True)
    for suffix in (".sigstore.json", ".publish.attestation", ".slsa.attestation"):  # as if the run signed it
        (runtime.bundles / f"{meta}{suffix}").write_text("{}")
    sign.act(runtime, sign.decide(runtime))
    for name in made:
        assert (runtime.bundles / f"{name}.sigstore.json").read_bytes() == (
            ac.ctx.bundles / f"{name}.sigstore.json"
        ).read_bytes()


def test_a_line_build_whose_bytes_changed_where_it_was_made_is_built_again(tmp_path, monkeypatch):
    ac = World(tmp_path, monkeypatch).built()
    (ac.ctx.dist / line_build_names(ac.ctx.version)[0]).write_bytes(b"other bytes")
    runtime = ReleaseContext.create("runtime-4.2.0", ac.settings, console=Console(quiet=True))
    assert {step.action for step in wheel.decide(runtime)} == {"build"}


def test_invoke_lock_takes_a_product_version_and_refuses_anything_else(tmp_path):
    result = _invoke(tmp_path, "lock", "runtime-9.9.9")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: no release line 'runtime-9.9.9': expected "
        f"{REPO / 'wheel' / 'runtime-9.9.9' / 'line.toml'}, or a product version with pins of its own "
        "(e.g. runtime-4.2.0)"
    ]


def test_the_meta_wheel_is_built_again_when_its_product_versions_pins_change(tmp_path, monkeypatch):
    world = World(tmp_path, monkeypatch, version="runtime-4.2.0").built()
    assert {step.action for step in wheel.decide(world.ctx)} == {"keep"}
    product = world.ctx.settings.root / "products" / "runtime.toml"
    product.write_text(product.read_text().replace('google = "4.0.0"', 'google = "4.1.0"'))
    changed = ReleaseContext.create("runtime-4.2.0", world.settings, console=Console(quiet=True))
    assert "apache-airflow-providers-google==4.1.0" in changed.line.meta_pins
    steps = wheel.decide(changed)
    assert {step.action for step in steps} == {"build"}
    assert all(step.reason.startswith("inputs changed since it was built") for step in steps)


@pytest.mark.parametrize(("version", "expected"), [("runtime-4.2.1", "4.2.0"), ("runtime-5.0.0", "4.2.1")])
def test_a_runtime_release_upgrades_from_the_newest_earlier_runtime_release(tmp_path, monkeypatch, version, expected):
    """Found by the image tag it was pushed under (`4.2.1`), not by its name on the command line (`runtime-4.2.1`):
    the upgrade test of every Runtime release after the first was skipped as `no earlier release`."""
    from ac_release.clients.registry import RemoteImage, RemotePlatforms
    from ac_release.world.released_images import previous_release

    world = World(tmp_path, monkeypatch, version)
    repository = world.ctx.release_target.registries[0]
    assert repository.endswith("/astro-runtime")
    # 4.2.0 released before platforms (one image manifest), 4.2.1 an index: its linux/amd64 image is the one
    world.tags[(repository, "4.2.0")] = RemoteImage(f"sha256:{'0' * 64}", f"sha256:{'c' * 64}")
    world.indexes[(repository, "4.2.1")] = RemotePlatforms(f"sha256:{'e' * 64}", {"linux/amd64": f"sha256:{'1' * 64}"})
    found = previous_release(world.ctx)
    assert found is not None and (str(found.version), found.digest) == (
        f"runtime-{expected}",
        f"sha256:{expected[-1] * 64}",
    )


def test_the_first_release_of_each_runtime_minor_names_every_provider_it_downgrades_from_ac():
    """Seed 001's Runtime rows are older than AC 2.2.4's: a user moving from the newest AC line with providers (at or
    below the minor's Airflow) gets older providers, and the minor's first release says so, one by one."""
    declared = Declared.under(REPO)
    runtime = declared.products["runtime"]
    for minor in runtime.minors:
        first = min((Version(v) for v in runtime.versions if v.startswith(f"{minor}.")), default=None)
        assert first is not None, f"minor {minor} has no version"
        line = runtime.versions[str(first)].line
        ac_lines = [a for a in declared.lines if Version(a) <= Version(line) and declared.lines[a].providers]
        ac = declared.lines[max(ac_lines, key=Version)]
        downgrades = [
            f"{name} {ac.providers[name]} -> {version}"
            for name, version in sorted(runtime.minors[minor].items())
            if name in ac.providers and Version(version) < Version(ac.providers[name])
        ]
        assert downgrades, f"Runtime {minor} downgrades nothing from AC {ac.airflow}: drop its upgrade note"
        (entry,) = [e for e in declared.entries(f"runtime-{minor}") if e.version == f"runtime-{first}"]
        notes = " ".join(" ".join(entry.sections.get("Upgrade Notes", ())).split())
        assert f"AC {ac.airflow}-1" in notes
        missing = [item for item in downgrades if item not in notes]
        assert not missing, f"runtime-{first}'s Upgrade Notes do not name {missing}"
