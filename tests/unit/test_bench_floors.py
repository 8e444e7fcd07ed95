"""The benchmark's floors (issue 15): read from the cold release's own BuildKit log and JUnit reports, summed with the
stages that have none, and printed whole."""

from __future__ import annotations

import io
from dataclasses import replace

from rich.console import Console

from ac_release.bench import release as bench_release
from ac_release.bench.floors import (
    DEPENDENCY_STEP,
    Floor,
    above_floors,
    buildkit_step_seconds,
    measure_floors,
    slowest_test,
)
from ac_release.model.config import load_settings
from ac_release.stages.push import pushed_line, pushed_seconds
from tests.helpers import REPO
from tests.unit.test_bench_release import FIGURES, STAGES

# What `docker build --progress=plain` writes (steps interleave; a cached step has no DONE line).
BUILD_LOG = """#9 [build 3/6] RUN python3.9 -m venv /opt/build-tools
#12 [build 6/6] RUN --mount=type=cache,target=/root/.cache/uv \\
#12 0.412 Resolved 402 packages
#9 DONE 7.9s
#12 [line 3/3] RUN --mount=type=cache     && uv pip install --quiet --requirement /build/line-requirements.txt
#12 DONE 41.3s
#13 [stage-2 1/5] COPY --from=build /opt/airflow /opt/airflow
#13 DONE 6.2s
"""

REPORT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="2">
<testcase classname="tests.smoke.test_image" name="test_pip_check" time="12.5"/>
<testcase classname="tests.smoke.test_database" name="test_db_init" time="48.25"/>
</testsuite></testsuites>"""


def test_the_dependency_step_is_read_from_buildkits_own_timing():
    assert buildkit_step_seconds(BUILD_LOG, "uv pip install") == 41.3
    assert buildkit_step_seconds(BUILD_LOG, "COPY --from=build") == 6.2
    cached = "#12 [build 6/6] RUN uv pip install -r x\n#12 CACHED\n"
    assert buildkit_step_seconds(cached, "uv pip install") is None  # it did not run: no floor, not zero
    assert buildkit_step_seconds(BUILD_LOG, "apt-get install") is None


def test_the_slowest_test_of_every_report(tmp_path):
    (tmp_path / "a.xml").write_text(REPORT)
    (tmp_path / "b.xml").write_text(REPORT.replace('time="48.25"', 'time="3"'))
    assert slowest_test([tmp_path / "b.xml", tmp_path / "a.xml"]) == ("tests.smoke.test_database::test_db_init", 48.25)
    assert slowest_test([]) is None


def test_floors_come_from_the_scratch_releases_logs(tmp_path):
    config = bench_release.scratch_config(load_settings(REPO / "release.toml"), tmp_path, "bench-x", "debootstrap")
    settings = load_settings(config)
    logs = settings.cache_dir / "logs"
    logs.mkdir(parents=True)
    (logs / "2.2.4-1-bench-x-images-bullseye-base.log").write_text(BUILD_LOG)
    (logs / "2.2.4-1-bench-x-images-bullseye-onbuild.log").write_text("#3 [1/1] FROM base\n#3 DONE 0.1s\n")
    (logs / "2.2.4-1-bench-x-smoke-bullseye-database.xml").write_text(REPORT)
    (logs / "2.2.4-1-other-smoke-bullseye.xml").write_text(REPORT.replace("48.25", "99"))  # another target's
    floors = measure_floors(settings, "2.2.4-1", "bench-x")  # nothing pushed: no scan
    assert [(f.stage, f.seconds) for f in floors] == [("images", 41.3), ("test", 48.2)]
    pushes = "\n".join(
        pushed_line(f"127.0.0.1:5000/astronomer/ap-airflow:{tag}", "sha256:" + digit * 64, seconds)
        for tag, digit, seconds in (
            ("2.2.4-1", "a", 28.94),
            ("2.2.4-1-bullseye", "a", 0.06),
            ("2.2.4-1-onbuild", "b", 0.1),
        )
    )
    release_log = f"push: 127.0.0.1:5000/astronomer/ap-airflow:2.2.4-1\n{pushes}\n✓ push (30.2 s)\n"
    floors = measure_floors(settings, "2.2.4-1", "bench-x", release_log)
    assert (floors[-1].stage, floors[-1].seconds) == ("push", 28.9)
    assert floors[-1].what == "the push that sent the image's layers, 127.0.0.1:5000/astronomer/ap-airflow:2.2.4-1"


def test_every_docker_push_of_a_log_is_read_back_whole():
    digest = "sha256:" + "0123456789abcdef" * 4
    line = pushed_line("registry.example:5000/astronomer/ap-airflow:2.2.4-1-bullseye-onbuild", digest, 1234.56)
    assert line.endswith(f"pushed in 1234.6 s ({digest})")
    assert pushed_seconds(f"noise\n{line}\npush: x:y\n") == {
        "registry.example:5000/astronomer/ap-airflow:2.2.4-1-bullseye-onbuild": 1234.6
    }
    assert pushed_seconds(line.replace(digest, digest[:20])) == {}  # a cut line is no figure


def test_the_sum_counts_stages_without_a_floor_whole():
    floors = [Floor("images", 40.0, "x"), Floor("test", 50.0, "y")]
    floor, above = above_floors(STAGES, floors)
    assert floor == round(sum(STAGES.values()) - 80.5 - 120.0 + 40.0 + 50.0, 1)
    assert above == round(80.5 - 40.0 + 120.0 - 50.0, 1)


def test_the_floors_print_whole_in_a_log():
    figures = replace(FIGURES, floors=(Floor("test", 50.0, "its slowest test, tests.smoke.x::test_y"),))
    out = io.StringIO()
    bench_release.print_release(Console(file=out, force_terminal=False, width=40), figures, REPO / "x.json")
    lines = out.getvalue().splitlines()
    assert "floor of stage test: 50.0 s of its 120.0 s: its slowest test, tests.smoke.x::test_y" in lines
    total = sum(STAGES.values()) - 120.0 + 50.0
    assert (
        f"sum of the floors (stages without one counted whole): {total:.1f} s = {total / 263.4:.2f}x the baseline; "
        f"the stages are 70.0 s above it" in lines
    )


def test_every_generated_dockerfile_installs_its_dependencies_in_the_one_step_the_floor_reads():
    """The images floor finds its step by DEPENDENCY_STEP: a template that renamed it would lose the floor silently."""
    dockerfiles = [path for path in (REPO / "images").rglob("Dockerfile") if "onbuild" not in path.parts]
    dockerfiles = [path for path in dockerfiles if path.parent.name != "postgres"]
    assert dockerfiles
    for path in dockerfiles:
        assert path.read_text().count(DEPENDENCY_STEP) == 1, path
