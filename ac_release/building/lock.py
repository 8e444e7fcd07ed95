"""`invoke lock <line>`: regenerate a line's dependency lock and build toolchain, deterministically, with uv."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

from uv import find_uv_bin

from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_write_text
from ac_release.model.line import ReleaseLine


def _compile(
    line: ReleaseLine, requirements: list[str], output: Path, extra: list[str], prefer: Path | None = None
) -> None:
    with tempfile.TemporaryDirectory(prefix="ac-lock-") as tmp:
        # A fixed relative input name keeps the annotations ("via -r requirements.in") the same on every machine.
        (Path(tmp) / "requirements.in").write_text("\n".join(requirements) + "\n")
        produced = Path(tmp) / "out.txt"
        # uv prefers the pins it finds in its output file: a fresh file, or `prefer`'s pins (never the old output, so
        # that the same inputs give the same lock whatever was there before)
        if prefer is not None:
            shutil.copy(prefer, produced)
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
            f"invoke lock {line.lock_name or line.airflow}",
            *extra,
        ]
        env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1"}
        result = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise ReleaseError(
                f"uv could not resolve {output.name} for {line.lock_name or line.airflow}: "
                f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'no output'}"
            )
        text = produced.read_text()
    # uv names its temporary output in the header; the committed file names itself.
    text = re.sub(r"--output-file \S+", f"--output-file {output.name}", text)
    atomic_write_text(output, text)


def regenerate(line: ReleaseLine, toolchain: bool = True) -> list[Path]:
    """The lock of what the line (or a product version on it, ReleaseLine.with_pins) installs, and with `toolchain`
    the line's build toolchain."""
    requirements = [line.airflow_requirement, *line.provider_requirements, *line.packages, *line.lock_requirements]
    # Hashes of every file of every pin: the image and the wheel check install with `--require-hashes`, so a file
    # the index serves with other bytes, or a dependency missing from the lock, fails the install.
    line.lock_file.parent.mkdir(parents=True, exist_ok=True)
    # A product version's lock keeps the line's pins wherever its own requirements allow: its image installs only
    # the difference on top of the line's venv (images/Dockerfile.j2, `product`).
    prefer = line.line_lock_file if line.lock_file != line.line_lock_file else None
    _compile(line, requirements, line.lock_file, ["--generate-hashes"], prefer=prefer)
    if not toolchain:
        return [line.lock_file]
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


TOOLS_LOCK = Path("requirements") / "pipeline.txt"
TOOLS_PYTHON = "3.11"


def regenerate_tools(root: Path, upgrade: bool = False) -> Path:
    """`invoke lock-tools`: lock the pipeline's own dependencies (pyproject.toml with its `test` extra, and the
    build backend of the editable install) with hashes, for `.ci/bootstrap` to install with `--require-hashes`.

    Pins already in the lock are kept unless pyproject.toml needs others (or `upgrade`), so a regeneration after a
    new dependency changes only what it must."""
    pyproject = root / "pyproject.toml"
    output = root / TOOLS_LOCK
    with tempfile.TemporaryDirectory(prefix="ac-lock-tools-") as tmp:
        # Fixed relative names keep uv's annotations ("via ac-release (pyproject.toml)") the same on every machine.
        shutil.copy(pyproject, Path(tmp) / "pyproject.toml")
        build_system = tomllib.loads(pyproject.read_text())["build-system"]["requires"]
        (Path(tmp) / "build-system.in").write_text("\n".join(build_system) + "\n")
        produced = Path(tmp) / TOOLS_LOCK
        produced.parent.mkdir()
        if output.is_file() and not upgrade:
            shutil.copy(output, produced)  # uv keeps the pins it finds in its output file
        argv = [
            find_uv_bin(),
            "pip",
            "compile",
            "pyproject.toml",
            "build-system.in",
            "--extra",
            "test",
            "--generate-hashes",
            "--output-file",
            str(TOOLS_LOCK),
            "--quiet",
            "--python-version",
            TOOLS_PYTHON,
            "--python-platform",
            "x86_64-unknown-linux-gnu",
            "--custom-compile-command",
            "invoke lock-tools",
        ]
        env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1"}
        result = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no output"
            raise ReleaseError(f"uv could not resolve {TOOLS_LOCK} from pyproject.toml: {reason}")
        atomic_write_text(output, produced.read_text())
    return output


_ENTRY = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?:[ \t]*\\\n[ \t]+--hash=sha256:[0-9a-f]{64})*)", re.MULTILINE
)


def hashed_pins(text: str) -> dict[str, tuple[str, int]]:
    """{canonical name: (version, number of sha256 hashes)} of a lock written by `uv pip compile --generate-hashes`."""
    from packaging.utils import canonicalize_name

    return {canonicalize_name(m[1]): (m[2], m[3].count("--hash=")) for m in _ENTRY.finditer(text)}


def without_hashes(text: str) -> str:
    """The same pins without their `--hash` options: what a pip of 2022 takes as plain constraints (pip turns on
    --require-hashes as soon as one line has a hash, and then refuses the local wheels)."""
    return re.sub(r"[ \t]*\\\n[ \t]+--hash=sha256:[0-9a-f]{64}", "", text)
