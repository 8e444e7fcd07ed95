"""`invoke lock <line>`: regenerate a line's dependency lock and build toolchain, deterministically, with uv."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from uv import find_uv_bin

from ac_release.core.errors import ReleaseError
from ac_release.core.fsutil import atomic_write_text
from ac_release.model.flavours import AMD64, Platform
from ac_release.model.line import ReleaseLine


def _uv(argv: list[str], cwd: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1"}
    # the pinned uv of this environment, whether or not its bin/ is on PATH
    return subprocess.run([find_uv_bin(), *argv], cwd=cwd, env=env, capture_output=True, text=True)


def end_of_day_utc(day: dt.date) -> str:
    """A cut-off day as uv's `--exclude-newer` instant: the end of that day in UTC (files uploaded on it are in). uv
    reads a bare date as the end of the day in the machine's time zone, so a lock made in Tokyo would leave out what
    a lock made in UTC keeps."""
    return f"{day + dt.timedelta(days=1):%Y-%m-%d}T00:00:00Z"


def _last_line(result: subprocess.CompletedProcess) -> str:
    return result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no output"


@dataclass(frozen=True)
class _Resolution:
    """One platform's resolution: the lock's text and the file each pin installs there."""

    platform: Platform
    text: str
    files: dict[str, PlatformFile]  # by canonical name


def _compile(
    line: ReleaseLine,
    requirements: list[str],
    output: Path,
    extra: list[str],
    platform: Platform,
    prefer: Path | None = None,
) -> _Resolution:
    with tempfile.TemporaryDirectory(prefix="ac-lock-") as tmp:
        # A fixed relative input name keeps the annotations ("via -r requirements.in") the same on every machine.
        (Path(tmp) / "requirements.in").write_text("\n".join(requirements) + "\n")
        produced = Path(tmp) / "out.txt"
        # uv prefers the pins it finds in its output file: a fresh file, or `prefer`'s pins (never the old output, so
        # that the same inputs give the same lock whatever was there before)
        if prefer is not None:
            shutil.copy(prefer, produced)
        common = [
            "--quiet",
            "--python-version",
            line.build_python,
            "--python-platform",
            platform.uv_platform,
            "--exclude-newer",
            end_of_day_utc(line.lock_cutoff),
            *extra,
        ]
        name = line.lock_name or line.airflow
        argv = ["pip", "compile", "requirements.in", "--output-file", str(produced), *common]
        result = _uv([*argv, "--generate-hashes", "--custom-compile-command", f"invoke lock {name}"], tmp)
        if result.returncode != 0:
            raise ReleaseError(f"uv could not resolve {output.name} of {name} for {platform}: {_last_line(result)}")
        text = produced.read_text()
        # The same pins again (constrained to them), as a PEP 751 lock: it names the files uv would install on the
        # platform, with their hashes, which the requirements format does not say.
        (Path(tmp) / "pins.txt").write_text(without_hashes(text))
        argv = ["pip", "compile", "requirements.in", "--constraint", "pins.txt", "--format", "pylock.toml"]
        result = _uv([*argv, "--output-file", "pylock.toml", *common], tmp)
        if result.returncode != 0:
            raise ReleaseError(
                f"uv could not list the files of {output.name} of {name} for {platform}: {_last_line(result)}"
            )
        files = platform_files(tomllib.loads((Path(tmp) / "pylock.toml").read_text()), platform, line.build_python)
    # uv names its temporary output in the header; the committed file names itself.
    return _Resolution(platform, re.sub(r"--output-file \S+", f"--output-file {output.name}", text), files)


def _lock(
    line: ReleaseLine,
    requirements: list[str],
    output: Path,
    extra: list[str],
    platforms: Sequence[Platform],
    prefer: Path | None = None,
) -> dict[Path, str]:
    """One lock for every platform, resolved for each, when the pins are the same everywhere and the first
    platform's hashes cover every platform's files; and its companion: the file each pin installs on each platform.
    {path: text}, written by the caller once every lock is resolved."""
    resolutions = [_compile(line, requirements, output, extra, platform, prefer) for platform in platforms]
    first = resolutions[0]
    pins = hashed_hashes(first.text)
    for other in resolutions[1:]:
        theirs = hashed_hashes(other.text)
        differing = sorted(
            name
            for name in pins.keys() | theirs.keys()
            if name not in pins or name not in theirs or pins[name][0] != theirs[name][0]
        )
        if differing:
            shown = ", ".join(f"{n} {_shown(pins.get(n))}/{_shown(theirs.get(n))}" for n in differing[:6])
            raise ReleaseError(
                f"{output.name} of {line.lock_name or line.airflow}: uv resolves other pins for {other.platform} "
                f"than for {first.platform} ({shown}{', ...' if len(differing) > 6 else ''}): pin them in "
                f"line.toml [lock] requirements so that one lock serves every platform; nothing written"
            )
        if missing := sorted(name for name in theirs if not theirs[name][1] <= pins[name][1]):
            raise ReleaseError(
                f"{output.name} of {line.lock_name or line.airflow}: the hashes for {first.platform} lack files of "
                f"{other.platform} ({', '.join(missing[:6])}), so the lock would not install there: check uv's "
                f"--generate-hashes; nothing written"
            )
    for resolution in resolutions:
        if resolution.files.keys() != pins.keys():
            raise ReleaseError(
                f"{output.name} of {line.lock_name or line.airflow}: uv's file list for {resolution.platform} names "
                f"other packages than its lock ({', '.join(sorted(resolution.files.keys() ^ pins.keys())[:6])}); "
                f"nothing written"
            )
    files = files_text(output.name, line.lock_name or line.airflow, [(r.platform, r.files) for r in resolutions])
    return {output: first.text, files_path(output): files}


def _shown(pin: tuple[str, frozenset[str]] | None) -> str:
    return pin[0] if pin else "(none)"


def regenerate(line: ReleaseLine, platforms: Sequence[Platform] = (AMD64,), toolchain: bool = True) -> list[Path]:
    """The lock of what the line (or a product version on it, ReleaseLine.with_pins) installs, and with `toolchain`
    the line's build toolchain, for every platform of the line's images (images/matrix.toml): one lock, the same
    pins everywhere, the hashes of every platform's files."""
    requirements = [line.airflow_requirement, *line.provider_requirements, *line.packages, *line.lock_requirements]
    # Hashes of every file of every pin: the image and the wheel check install with `--require-hashes`, so a file
    # the index serves with other bytes, or a dependency missing from the lock, fails the install.
    line.lock_file.parent.mkdir(parents=True, exist_ok=True)
    # A product version's lock keeps the line's pins wherever its own requirements allow: its image installs only
    # the difference on top of the line's venv (images/Dockerfile.j2, `product`).
    prefer = line.line_lock_file if line.lock_file != line.line_lock_file else None
    written = _lock(line, requirements, line.lock_file, [], platforms, prefer=prefer)
    if toolchain:
        tools_cutoff = end_of_day_utc(line.tools_cutoff)
        written |= _lock(
            line,
            [*line.build_requirements, *line.build_tools],
            line.build_requirements_file,
            [f"--exclude-newer-package={_name(tool)}={tools_cutoff}" for tool in line.build_tools],
            platforms,
        )
    for path, text in written.items():  # nothing is written before every platform of every lock agrees
        atomic_write_text(path, text)
    return list(written)


# -- the file each pin installs on each platform ----------------------------------------------------------------

FILES_SUFFIX = ".files"  # constraints.txt -> constraints.files.txt


@dataclass(frozen=True, order=True)
class PlatformFile:
    """The file a pin installs on a platform: its best wheel there, or its sdist (built at image build time)."""

    version: str
    filename: str
    sha256: str

    @property
    def sdist(self) -> bool:
        return not self.filename.endswith(".whl")


def files_path(lock: Path) -> Path:
    return lock.with_name(f"{lock.stem}{FILES_SUFFIX}{lock.suffix}")


def supported_tags(platform: Platform, python: str) -> list:
    """The wheel tags a CPython `python` on the images' glibc (2.31) installs on `platform`, best first."""
    from packaging.tags import compatible_tags, cpython_tags

    arch = platform.machine
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    platforms = []
    for minor in range(31, 4, -1):
        platforms.append(f"manylinux_2_{minor}_{arch}")
        if minor in legacy and (arch == "x86_64" or minor == 17):
            platforms.append(f"{legacy[minor]}_{arch}")
    platforms.append(f"linux_{arch}")
    version = tuple(int(part) for part in python.split("."))
    interpreter = f"cp{version[0]}{version[1]}"
    return [*cpython_tags(version, platforms=platforms), *compatible_tags(version, interpreter, platforms)]


def best_file(
    candidates: Iterable[tuple[str, str]], version: str, platform: Platform, python: str
) -> PlatformFile | None:
    """Of (file name, sha256) pairs, the wheel installed first on the platform, else the sdist, else None."""
    from packaging.utils import parse_wheel_filename

    ranks = {tag: rank for rank, tag in enumerate(supported_tags(platform, python))}
    wheels, sdists = [], []
    for filename, sha256 in candidates:
        if filename.endswith(".whl"):
            rank = min((ranks[tag] for tag in parse_wheel_filename(filename)[3] if tag in ranks), default=None)
            if rank is not None:
                wheels.append((rank, filename, sha256))
        elif filename.endswith((".tar.gz", ".zip")):
            sdists.append((filename, sha256))
    if wheels:
        _, filename, sha256 = min(wheels)
        return PlatformFile(version, filename, sha256)
    return PlatformFile(version, *min(sdists)) if sdists else None


def platform_files(pylock: dict, platform: Platform, python: str) -> dict[str, PlatformFile]:
    """{canonical name: the file installed on the platform} of a PEP 751 lock that uv wrote for the platform."""
    from packaging.utils import canonicalize_name

    files = {}
    for package in pylock.get("packages", []):
        entries = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        candidates = [(_file_name(entry), entry["hashes"]["sha256"]) for entry in entries]
        chosen = best_file(candidates, package["version"], platform, python)
        if chosen is None:
            raise ReleaseError(
                f"{package['name']}=={package['version']} has no file installable on {platform}: pin another version "
                f"in line.toml [lock] requirements"
            )
        files[canonicalize_name(package["name"])] = chosen
    return files


def _file_name(entry: dict) -> str:
    """A PEP 751 file's name: `name`, else the last segment of its URL."""
    return entry.get("name") or urllib.parse.unquote(entry["url"].rsplit("/", 1)[-1])


def files_text(lock_name: str, name: str, resolutions: list[tuple[Platform, dict[str, PlatformFile]]]) -> str:
    lines = [
        f"# The file each pin of {lock_name} installs on each platform of the line's images: its best wheel there, or",
        f"# its sdist, compiled at image build time. Written with the lock by `invoke lock {name}`: the lock's hashes",
        "# do not name their files. One line a pin and platform: <platform> <name>==<version> <file> sha256:<hash>",
    ]
    first = resolutions[0][1]
    for platform, files in resolutions:
        built = sorted(f"{n}=={f.version}" for n, f in files.items() if f.sdist)
        lines.append(f"# {platform}: sdist only, built at image build time: {' '.join(built) or 'none'}")
        if files is not first:
            only = sorted(f"{n}=={f.version}" for n, f in files.items() if f.sdist and not first[n].sdist)
            lines.append(f"# {platform}: no wheel here but one for {resolutions[0][0]}: {' '.join(only) or 'none'}")
    for platform, files in resolutions:
        for package, chosen in sorted(files.items()):
            lines.append(f"{platform} {package}=={chosen.version} {chosen.filename} sha256:{chosen.sha256}")
    return "\n".join(lines) + "\n"


_FILE_LINE = re.compile(r"^(\S+/\S+) (\S+)==(\S+) (\S+) sha256:([0-9a-f]{64})$")


def read_files(text: str) -> dict[str, dict[str, PlatformFile]]:
    """{platform: {canonical name: file}} of a lock's companion (files_text)."""
    files: dict[str, dict[str, PlatformFile]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("#") or not line:
            continue
        match = _FILE_LINE.match(line)
        if match is None:
            raise ReleaseError(f"line {number} of a lock's file list is malformed: run `invoke lock <line>`")
        files.setdefault(match[1], {})[match[2]] = PlatformFile(match[3], match[4], match[5])
    return files


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


def hashed_hashes(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """{canonical name: (version, its sha256 hashes)} of a lock written by `uv pip compile --generate-hashes`."""
    from packaging.utils import canonicalize_name

    return {
        canonicalize_name(m[1]): (m[2], frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})", m[3])))
        for m in _ENTRY.finditer(text)
    }


def without_hashes(text: str) -> str:
    """The same pins without their `--hash` options: what a pip of 2022 takes as plain constraints (pip turns on
    --require-hashes as soon as one line has a hash, and then refuses the local wheels)."""
    return re.sub(r"[ \t]*\\\n[ \t]+--hash=sha256:[0-9a-f]{64}", "", text)
