import pytest

from ac_release.config import Secret, load_settings
from ac_release.errors import ReleaseError
from tests.helpers import REPO, write_config


def test_repository_config_has_local_default_and_production():
    settings = load_settings(REPO / "release.toml")
    assert settings.default_target == "local"
    local, production = settings.target(None), settings.target("production")
    assert local.local_services and local.base_images == "debootstrap"
    assert local.index.url.startswith("http://127.0.0.1:")
    assert production.registries == ("quay.io/astronomer/ap-airflow", "docker.io/astronomerinc/ap-airflow")
    assert production.signing.instance == "public"
    assert production.signing.issuer == "https://token.actions.githubusercontent.com"
    assert production.signing.identity == (
        "https://github.com/astronomer/ap-airflow/.github/workflows/release.yml@refs/heads/main"
    )
    assert production.index.password.env == "AC_INDEX_PASSWORD"


def test_secret_file_readable_by_others_is_refused(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("hunter2\n")
    secret.chmod(0o644)
    with pytest.raises(ReleaseError) as error:
        Secret(file=secret).read()
    assert str(error.value) == f"secret file {secret} is readable by others: run `chmod 600 {secret}`"
    secret.chmod(0o600)
    assert Secret(file=secret).read() == "hunter2"


def test_missing_env_secret_names_the_variable_only(monkeypatch):
    monkeypatch.delenv("AC_TEST_SECRET", raising=False)
    with pytest.raises(ReleaseError) as error:
        Secret(env="AC_TEST_SECRET").read()
    assert str(error.value) == "secret not set: export AC_TEST_SECRET (the value is never printed)"
    monkeypatch.setenv("AC_TEST_SECRET", "s3cr3t-value")
    assert Secret(env="AC_TEST_SECRET").read() == "s3cr3t-value"


def test_test_config_points_everything_into_its_directory(tmp_path):
    settings = load_settings(write_config(tmp_path, pypi_port=1111, sigstore_port=2222))
    assert settings.dist_dir == tmp_path / "dist"
    assert settings.services.dir == tmp_path / "services"
    assert settings.target(None).index.url == "http://127.0.0.1:1111/"
    assert settings.root == REPO


def test_cache_dir_can_be_overridden_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AC_RELEASE_CACHE", str(tmp_path / "elsewhere"))
    assert load_settings(write_config(tmp_path)).cache_dir == tmp_path / "elsewhere"
