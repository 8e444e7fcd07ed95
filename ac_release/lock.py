"""`invoke lock <line>`: regenerate a line's dependency lock and build toolchain, deterministically, with uv."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from uv import find_uv_bin

from ac_release.errors import ReleaseError
from ac_release.fsutil import atomic_write_text
from ac_release.line import ReleaseLine


def _compile(line: ReleaseLine, requirements: list[str], output: Path, extra: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="ac-lock-") as tmp:
        # A fixed relative input name keeps the annotations ("via -r requirements.in") the same on every machine.
        (Path(tmp) / "requirements.in").write_text("\n".join(requirements) + "\n")
        produced = Path(tmp) / "out.txt"  # a fresh file: uv would otherwise prefer the pins already in it
        argv = [
            find_uv_bin(),  # the pinned uv of this environment, whether or not its bin/ is on PATH
            "pip",
            "compile",
            "requirements.in",
            "--output-file",
            str(produced),
            "--quiet",
            "--python-version",
            line.build_python,
            "--python-platform",
            "x86_64-manylinux_2_31",
            "--exclude-newer",
            line.lock_cutoff.isoformat(),
            "--custom-compile-command",
            f"invoke lock {line.airflow}",
            *extra,
        ]
        env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1"}
        result = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise ReleaseError(
                f"uv could not resolve {output.name} for {line.airflow}: "
                f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'no output'}"
            )
        text = produced.read_text()
    # uv names its temporary output in the header; the committed file names itself.
    text = re.sub(r"--output-file \S+", f"--output-file {output.name}", text)
    atomic_write_text(output, text)


def regenerate(line: ReleaseLine) -> list[Path]:
    requirements = [line.airflow_requirement, *line.provider_requirements, *line.lock_requirements]
    _compile(line, requirements, line.lock_file, [])
    tools_cutoff = line.tools_cutoff.isoformat()
    _compile(
        line,
        [*line.build_requirements, *line.build_tools],
        line.build_requirements_file,
        ["--generate-hashes", *[f"--exclude-newer-package={_name(tool)}={tools_cutoff}" for tool in line.build_tools]],
    )
    return [line.lock_file, line.build_requirements_file]


def _name(requirement: str) -> str:
    return re.split(r"[=<>!~\[; ]", requirement, maxsplit=1)[0]
