"""The stages the release builds ahead, before its wheels exist (image_build.py PREPARED_STAGES), must take nothing
of the release: a wheel, the lock, a version or a label moved into one of them would be built from another release's
inputs, or miss the cache the images stage looks for."""

from __future__ import annotations

import re

from ac_release.building.image_build import PREPARED_STAGES
from tests.helpers import REPO

# What a prepared stage may take from the build context and the build arguments.
CONTEXT_FILES = {"build-requirements.txt"}
ARGS_WITH_DEFAULTS = {"ASTRONOMER_USER", "ASTRONOMER_UID"}


def _stages(dockerfile: str) -> dict[str, str]:
    """{stage name: its text} of a multi-stage Dockerfile."""
    parts = re.split(r"^(?=FROM )", dockerfile, flags=re.M)
    return {m[1]: part for part in parts if (m := re.match(r"FROM \S+ AS (\S+)", part))}


def _closure(stages: dict[str, str], name: str) -> set[str]:
    """`name` and every stage it is built FROM or copies from."""
    text = stages[name]
    used = set(re.findall(r"^FROM (\S+)", text, re.M)) | set(re.findall(r"--from=(\S+)", text))
    return {name}.union(*(_closure(stages, other) for other in used if other in stages))


def _dockerfiles():
    paths = [p for p in (REPO / "images").rglob("Dockerfile") if "onbuild" not in p.parts and "postgres" not in p.parts]
    assert paths
    return paths


def test_every_prepared_stage_exists_and_takes_nothing_of_the_release():
    for path in _dockerfiles():
        stages = _stages(path.read_text())
        assert set(PREPARED_STAGES) <= set(stages), path
        for name in set().union(*(_closure(stages, stage) for stage in PREPARED_STAGES)):
            text = stages[name]
            copied = {m[1] for m in re.finditer(r"^COPY (?!--from)(\S+)", text, re.M)}
            assert copied <= CONTEXT_FILES, (path, name, copied)
            assert set(re.findall(r"^ARG (\w+)", text, re.M)) <= ARGS_WITH_DEFAULTS, (path, name)
            assert "wheels/" not in text and "constraints.txt" not in text, (path, name)


def test_the_dependency_steps_build_on_the_prepared_toolchain():
    for path in _dockerfiles():
        stages = _stages(path.read_text())
        installing = [name for name, text in stages.items() if "uv pip install" in text]
        assert installing == ["line", "product"], path
        for name in installing:
            assert "toolchain" in _closure(stages, name), path
            assert name not in PREPARED_STAGES


# What the line's stages may take: the line build's Airflow wheel, the line's lock, the toolchain, the image scripts.
LINE_CONTEXT = {
    "build-requirements.txt",
    "line-constraints.txt",
    "wheels/${AIRFLOW_WHEEL}",
    "include/entrypoint",
    "include/clean-airflow-logs",
}
LINE_ARGS = {*ARGS_WITH_DEFAULTS, "AIRFLOW_PIP_VERSION", "AIRFLOW_WHEEL", "AIRFLOW_WHEEL_SHA256", "AIRFLOW_VERSION"}


def test_the_line_stages_take_nothing_of_a_product():
    """`airflow` (the runtime with the line's venv) is what every product image of a line build is FROM: a product's
    lock, meta wheel, version or footer in it would give each product its own copy of the line's layers."""
    for path in _dockerfiles():
        stages = _stages(path.read_text())
        for name in _closure(stages, "airflow"):
            text = stages[name]
            copied = {m[1] for m in re.finditer(r"^COPY (?!--from)(\S+)", text, re.M)}
            assert copied <= LINE_CONTEXT, (path, name, copied)
            assert set(re.findall(r"^ARG (\w+)", text, re.M)) <= LINE_ARGS, (path, name)
            assert "META_" not in text and "UI_FOOTER" not in text and "AC_VERSION" not in text, (path, name)
        final = re.split(r"^(?=FROM )", path.read_text(), flags=re.M)[-1]
        assert final.startswith("FROM airflow\n"), path
