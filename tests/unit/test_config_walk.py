"""release.toml is walked once: each table is validated and built into its typed object where the walk reads it
(config.py and config_schema.py walked the same TOML twice, once to check it and once to build the settings)."""

from __future__ import annotations

import tomllib
from collections import Counter

import pytest

from ac_release.core.errors import ReleaseError
from ac_release.model.config import load_settings
from tests.helpers import REPO, write_config


def _dotted(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _counting(value, reads: Counter, key: str):
    if isinstance(value, dict):
        return _CountingTable(value, reads, key)
    if isinstance(value, list):
        return [_counting(item, reads, f"{key}[{number}]") for number, item in enumerate(value)]
    return value


class _CountingTable(dict):
    """A parsed TOML table that counts, by dotted key, each read of a table or an array out of it."""

    def __init__(self, data: dict, reads: Counter, key: str = ""):
        super().__init__({name: _counting(value, reads, _dotted(key, name)) for name, value in data.items()})
        self._reads, self._key = reads, key

    def __getitem__(self, name):
        value = super().__getitem__(name)
        if isinstance(value, dict | list):
            self._reads[_dotted(self._key, name)] += 1
        return value

    def get(self, name, default=None):
        return self[name] if name in self else default

    def items(self):
        return [(name, self[name]) for name in self]

    def values(self):
        return [self[name] for name in self]


def test_each_table_of_release_toml_is_read_once(monkeypatch):
    """Was: `check` read every table to validate it, then `load_settings` read them all again to build."""
    reads: Counter = Counter()
    parse = tomllib.loads
    monkeypatch.setattr(tomllib, "loads", lambda text: _CountingTable(parse(text), reads))
    settings = load_settings(REPO / "release.toml")
    assert set(settings.targets) == {"local", "staging", "production"}
    walked = {"services", "targets", "targets.staging.services.registries", "targets.production.dev.registries"}
    assert walked <= set(reads), sorted(reads)
    assert {key: count for key, count in reads.items() if count > 1} == {}


@pytest.mark.parametrize("value", ["5", "true", "1.5", "2020-01-01"])
def test_an_index_of_a_target_with_services_that_is_no_table_is_one_line(tmp_path, value):
    """Was: a TypeError ("argument of type 'int' is not iterable") when a target with services of its own had an
    index that was not a table."""
    path = write_config(tmp_path, staging=True)
    text = path.read_text()
    index = '[targets.staging.index]\nusername = "__token__"\npassword_env = "AC_INDEX_PASSWORD"\n'
    assert text.count(index) == 1
    text = text.replace(index, "").replace("[targets.staging]\n", f"[targets.staging]\nindex = {value}\n")
    path.write_text(text)
    with pytest.raises(ReleaseError) as error:
        load_settings(path)
    kind = {"5": "an integer", "true": "a boolean", "1.5": "a float", "2020-01-01": "a date"}[value]
    assert str(error.value) == f"{path}: targets.staging.index: expected a table, got {kind}"


def test_a_fault_of_shape_is_reported_before_a_value_the_services_derive(tmp_path):
    """The walk meets the local target's index URL (derived from [services]) before the staging target's bad port:
    the port, a fault of the file's shape, is still the one refused."""
    path = write_config(tmp_path, staging=True)
    text = path.read_text()
    text = text.replace('url = "http://127.0.0.1:', 'url = "http://localhost:', 1)
    text = text.replace("tls = true\npypi_port = ", 'tls = true\npypi_port = "x"\n#', 1)
    path.write_text(text)
    with pytest.raises(ReleaseError) as error:
        load_settings(path)
    assert str(error.value) == f"{path}: targets.staging.services.pypi_port: expected an integer, got a string"
