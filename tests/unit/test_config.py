from pathlib import Path

import pytest

from ac_release.core.errors import ReleaseError
from ac_release.model.config import Secret, Signer, load_settings
from tests.helpers import NIGHTLY_IDENTITY, PRODUCTION, RELEASE_IDENTITY, REPO, write_config

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


def test_repository_config_has_local_default_and_production():
    settings = load_settings(REPO / "release.toml")
    assert settings.default_target == "local"
    local, production = settings.target(None), settings.target("production")
    assert local.local_services and local.base_images == "debootstrap"
    assert local.index.url.startswith("http://127.0.0.1:")
    assert production.registries == ("quay.io/astronomer/ap-airflow", "docker.io/astronomerinc/ap-airflow")
    assert production.signing.instance == "public"
    assert production.signing.issuer == "https://token.actions.githubusercontent.com"
    assert production.signing.ambient and production.signing.identity is None
    release, nightly = production.signing.signer(nightly=False), production.signing.signer(nightly=True)
    assert release == Signer(RELEASE_IDENTITY, GITHUB_ISSUER, "astronomer/ap-airflow", "refs/heads/main")
    assert nightly == Signer(NIGHTLY_IDENTITY, GITHUB_ISSUER, "astronomer/ap-airflow", "refs/heads/main")
    # staging signs as production does; only its trust root differs
    assert settings.target("staging").signing.signer(nightly=False) == release
    assert not local.signing.ambient and local.signing.signer(nightly=True) == local.signing.signer(nightly=False)
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


# -- the schema of release.toml (issue 10, item 12): every refusal is one line naming the file and the dotted key --


def _config(tmp_path, *changes: tuple[str, str], append: str = "") -> Path:
    """The test config with each (old, new) replaced exactly once, plus `append`."""
    path = write_config(tmp_path, pypi_port=8765, sigstore_port=8766, registry_port=5000, cache_dir="cache")
    text = path.read_text() + PRODUCTION
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path.write_text(text + append)
    return path


def _refusal(path: Path) -> str:
    with pytest.raises(ReleaseError) as error:
        load_settings(path)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_valid_config_with_two_targets_loads(tmp_path):
    settings = load_settings(_config(tmp_path))
    assert sorted(settings.targets) == ["local", "production"]
    assert settings.target("production").registries == ("quay.io/astronomer/ap-airflow",)


BAD_VALUES = [
    (
        ('registries = ["127.0.0.1:5000/astronomer/ap-airflow"]', 'registries = "host/repo"'),
        'targets.local.registries: expected a list of "host[:port]/repository" strings, got a string',
    ),
    (
        ('registries = ["127.0.0.1:5000/astronomer/ap-airflow"]', "registries = []"),
        'targets.local.registries: expected a list of "host[:port]/repository" strings, got an empty list',
    ),
    (
        ('registries = ["127.0.0.1:5000/astronomer/ap-airflow"]', 'registries = ["--insecure-policy"]'),
        "targets.local.registries[0]: must not start with '-' (it would be read as an option), got '--insecure-policy'",
    ),
    (
        ('registries = ["127.0.0.1:5000/astronomer/ap-airflow"]', 'registries = ["ap-airflow"]'),
        'targets.local.registries[0]: expected "host[:port]/repository" (e.g. quay.io/astronomer/ap-airflow), '
        "got 'ap-airflow'",
    ),
    (
        ('registries = ["127.0.0.1:5000/astronomer/ap-airflow"]', 'registries = ["quay.io/astronomer/AP:latest"]'),
        'targets.local.registries[0]: expected "host[:port]/repository" (e.g. quay.io/astronomer/ap-airflow), '
        "got 'quay.io/astronomer/AP:latest'",
    ),
    (
        ('registries = ["127.0.0.1:5000/astronomer/ap-airflow"]', 'registries = ["127.0.0.1:99999/a"]'),
        'targets.local.registries[0]: expected "host[:port]/repository" (e.g. quay.io/astronomer/ap-airflow), '
        "got '127.0.0.1:99999/a'",
    ),
    (
        ('registries = ["127.0.0.1:5000/astronomer/ap-airflow"]', 'registries = ["user:pw@quay.io/a"]'),
        "targets.local.registries[0]: credentials do not belong in release.toml: use `docker login`",
    ),
    (
        ('git_remote = "origin"', 'git_remote = "--upload-pack=touch FILE"'),
        "targets.production.git_remote: must not start with '-' (it would be read as an option), "
        "got '--upload-pack=touch FILE'",
    ),
    (
        ('git_remote = "origin"', 'git_remote = "ext::sh -c touch% /tmp/x"'),
        "targets.production.git_remote: remote helpers (<transport>::<address>) are not allowed: name a remote, "
        "a path or an https/ssh URL",
    ),
    (
        ('git_remote = "origin"', 'git_remote = "https://user:token@github.com/a/b.git"'),
        "targets.production.git_remote: credentials do not belong in a URL: use a credential helper or an ssh key",
    ),
    (
        ('git_remote = "origin"', 'git_remote = "http://github.com/a/b.git"'),
        "targets.production.git_remote: a remote URL must use https or ssh, got 'http://github.com/a/b.git'",
    ),
    (
        ('host = "127.0.0.1"', 'host = "0.0.0.0"'),
        "services.host: the local services listen on loopback only (127.0.0.0/8, ::1 or localhost), got '0.0.0.0'",
    ),
    (
        ('host = "127.0.0.1"', 'host = "localhost.evil.com"'),
        "services.host: the local services listen on loopback only (127.0.0.0/8, ::1 or localhost), "
        "got 'localhost.evil.com'",
    ),
    (("pypi_port = 8765", "pypi_port = 99999999"), "services.pypi_port: expected a port from 1 to 65535, got 99999999"),
    (("pypi_port = 8765", "pypi_port = 0"), "services.pypi_port: expected a port from 1 to 65535, got 0"),
    (("pypi_port = 8765", 'pypi_port = "8765"'), "services.pypi_port: expected an integer, got a string"),
    (("pypi_port = 8765", "pypi_port = true"), "services.pypi_port: expected an integer, got a boolean"),
    (
        ("sigstore_port = 8766", "sigstore_port = 8765"),
        "services.sigstore_port: 8765 is already services.pypi_port: give each service its own port",
    ),
    (
        ('instance = "public"', 'instance = "staging"'),
        "targets.production.signing.instance: expected one of 'local', 'public', 'custom', got 'staging'",
    ),
    (
        ('instance = "public"', 'instance = "custom"'),
        "targets.production.signing.trust_config: missing: instance = 'custom' names its Sigstore with "
        'trust_config = "<ClientTrustConfig JSON>"',
    ),
    (
        ('instance = "public"', 'instance = "public"\ntrust_config = "trust.json"'),
        "targets.production.signing.trust_config: only instance = 'custom' reads a trust config; remove it",
    ),
    (
        ('base_images = "official"', 'base_images = "official"\nplatforms = "linux/arm64"'),
        'targets.production.platforms: expected a list of platforms from "linux/amd64", "linux/arm64", got a string',
    ),
    (
        ('base_images = "official"', 'base_images = "official"\nplatforms = []'),
        'targets.production.platforms: expected a list of platforms from "linux/amd64", "linux/arm64", got an empty '
        "list: name at least one",
    ),
    (
        ('base_images = "official"', 'base_images = "official"\nplatforms = ["linux/s390x"]'),
        "targets.production.platforms: unknown platform 'linux/s390x': expected a list of platforms from "
        '"linux/amd64", "linux/arm64"',
    ),
    (
        ('base_images = "official"', 'base_images = "official"\nplatforms = ["arm64"]'),
        "targets.production.platforms: unknown platform 'arm64': expected a list of platforms from "
        '"linux/amd64", "linux/arm64"',
    ),
    (
        ('base_images = "official"', 'base_images = "official"\nplatforms = ["linux/arm64", 64]'),
        'targets.production.platforms: expected a list of platforms from "linux/amd64", "linux/arm64", got an '
        "integer in the list",
    ),
    (
        ('base_images = "official"', 'base_images = "official"\nplatforms = ["linux/arm64", "linux/arm64"]'),
        "targets.production.platforms: 'linux/arm64' is listed twice: list each platform once",
    ),
    (
        ('base_images = "official"', 'base_images = "alpine"'),
        "targets.production.base_images: expected one of 'debootstrap', 'official', got 'alpine'",
    ),
    (
        ('url = "https://pip.example.com/"', 'url = "http://pip.example.com/"'),
        "targets.production.index.url: a remote index must use https, got 'http://pip.example.com/'",
    ),
    (
        ('url = "http://127.0.0.1:8765/"', 'url = "http://pip.example.com/"'),
        "targets.local.index.url: a remote index must use https, got 'http://pip.example.com/'",
    ),
    (
        ('url = "https://pip.example.com/"', 'url = "https://tok:s3cret@pip.example.com/"'),
        "targets.production.index.url: credentials do not belong in a URL: use password_env or password_file",
    ),
    (
        ('url = "https://pip.example.com/"', 'url = "ftp://pip.example.com/"'),
        "targets.production.index.url: expected an https:// URL, got 'ftp://pip.example.com/'",
    ),
    (
        ('issuer = "https://token.actions.githubusercontent.com"', 'issuer = "https://u:p@issuer.example.com"'),
        "targets.production.signing.issuer: credentials do not belong in a URL",
    ),
    (
        ('identity = "release@ac-release.local"', 'identity = "-release@ac-release.local"'),
        "targets.local.signing.identity: must not start with '-' (it would be read as an option), "
        "got '-release@ac-release.local'",
    ),
    (
        ('identity = "release@ac-release.local"', 'identity = "release"'),
        "targets.local.signing.identity: expected an email address, got 'release'",
    ),
    (
        ('repository = "astronomer/ap-airflow"\nreleases', 'identity = "https://github.com/x"\nreleases'),
        "targets.production.signing.identity: only the local instance signs as a fixed identity; this one signs as "
        'the workflow that runs: name it with repository = "OWNER/REPO", releases = "release.yml@refs/heads/main" '
        'and nightlies = "nightly.yml@refs/heads/main"',
    ),
    (
        ('releases = "release.yml@refs/heads/main"', 'releases = "release.yml"'),
        "targets.production.signing.releases: expected WORKFLOW_FILE@refs/heads/BRANCH (e.g. "
        "release.yml@refs/heads/main), got 'release.yml'",
    ),
    (
        ('nightlies = "nightly.yml@refs/heads/main"', 'nightlies = "release.yml@refs/heads/main"'),
        "targets.production.signing.nightlies: the same workflow as releases: a nightly's certificate would pass a "
        "release's gate",
    ),
    (
        ('issuer = "https://token.actions.githubusercontent.com"', 'issuer = "https://oidc.example.com"'),
        "targets.production.signing.issuer: GitHub Actions' tokens are issued by "
        "https://token.actions.githubusercontent.com, got 'https://oidc.example.com'",
    ),
    (
        (
            'identity = "release@ac-release.local"',
            'identity = "release@ac-release.local"\nreleases = "r.yml@refs/heads/main"',
        ),
        "targets.local.signing.releases: the local instance signs as its fixed identity, not a workflow's: remove it",
    ),
    (
        ('username = "__token__"', 'username = "a:b"'),
        "targets.production.index.username: expected a user name without ':', spaces or control characters, got 'a:b'",
    ),
    (
        ('password_env = "AC_INDEX_PASSWORD"', 'password_env = "AC INDEX"'),
        "targets.production.index.password_env: expected an environment variable name, got 'AC INDEX'",
    ),
    (
        ('password_env = "AC_INDEX_PASSWORD"', 'password_env = "AC_INDEX_PASSWORD"\npassword_file = "pw"'),
        "targets.production.index: set one of password_env and password_file, not both",
    ),
    (
        ('password_env = "AC_INDEX_PASSWORD"', ""),
        "targets.production.index: missing password_env or password_file",
    ),
    (
        ('docker = "auto"', 'docker = "--host=tcp://evil:2375"'),
        "docker: must not start with '-' (it would be read as an option), got '--host=tcp://evil:2375'",
    ),
    (
        ('docker = "auto"', 'docker = "docker --tls"'),
        "docker: expected \"auto\" or the path of a docker or podman CLI, got 'docker --tls'",
    ),
    (
        ("local_services = true", 'local_services = "yes"'),
        "targets.local.local_services: expected a boolean, got a string",
    ),
    (
        ("local_services = true", "local_services = false"),
        "targets.local.signing.instance: 'local' is the pipeline's own Sigstore: it needs local_services = true",
    ),
    (
        ('default_target = "local"', 'default_target = "staging"'),
        "default_target: 'staging' is not a target: choose one of local, production",
    ),
    (
        ('registries = ["127.0.0.1:5000/astronomer/ap-airflow"]', 'registry = "127.0.0.1:5000/a"'),
        "targets.local.registry: unknown key (known keys: base_images, dev, git_remote, index, local_services, "
        "platforms, registries, services, signing)",
    ),
    (
        ('host = "127.0.0.1"', 'hots = "127.0.0.1"'),
        "services.hots: unknown key (known keys: dev_pypi_port, dir, host, pypi_port, registry_port, sigstore_port)",
    ),
    (
        ('docker = "auto"', 'dockr = "auto"'),
        "dockr: unknown key (known keys: cache_dir, default_target, "
        "dist_dir, docker, extra_ca_bundle, root, services, targets)",
    ),
    (('docker = "auto"', "docker = 3"), "docker: expected a string, got an integer"),
    (
        ('cache_dir = "cache"', 'cache_dir = ""'),
        "cache_dir: expected a non-empty string",
    ),
    (
        ("[targets.production]", '[targets."-prod"]'),
        "targets.-prod: a target name is letters, digits, '.', '_' and '-', starting with a letter or digit",
    ),
    # -- issue 29, item 7 --
    (
        (
            'git_remote = "origin"',
            'git_remote = "origin"\n[targets.production.dev]\nindex_url = "https://PIP.example.com:443"\n'
            'registries = ["quay.io/astronomer/ap-airflow-dev"]',
        ),
        "targets.production.dev.index_url: 'https://PIP.example.com:443' is also targets.production.index.url: dev "
        "builds must never reach a release location; name a dev location of its own",
    ),
    (
        (
            'git_remote = "origin"',
            'git_remote = "origin"\n[targets.production.dev]\nindex_url = "https://pip.example.com/dev/"\n'
            'registries = ["QUAY.io:443/astronomer/ap-airflow"]',
        ),
        "targets.production.dev.registries[0]: 'QUAY.io:443/astronomer/ap-airflow' is also "
        "targets.production.registries: dev builds must never reach a release location; name a dev location of its own",
    ),
    (
        ('git_remote = "origin"', 'git_remote = "ssh://-oProxyCommand=touch%20x/a.git"'),
        "targets.production.git_remote: the remote's host starts with '-' (ssh or git would read it as an option): "
        "name a real host",
    ),
    (
        ('git_remote = "origin"', 'git_remote = "git@-oProxyCommand=touch%20x:a.git"'),
        "targets.production.git_remote: the remote's host starts with '-' (ssh or git would read it as an option): "
        "name a real host",
    ),
    (
        ('git_remote = "origin"', 'git_remote = "github.com:-a.git"'),
        "targets.production.git_remote: the remote's path starts with '-' (ssh or git would read it as an option): "
        "name a real path",
    ),
    (
        ('git_remote = "origin"', 'git_remote = "file:///etc"'),
        "targets.production.git_remote: a file:// remote must be inside the target's services directory: name a "
        "remote or an https/ssh URL",
    ),
    (
        ('url = "https://pip.example.com/"', 'url = "https://pip.example.com:0/"'),
        "targets.production.index.url: invalid port in 'https://pip.example.com:0/': a port is from 1 to 65535",
    ),
    (
        ('url = "https://pip.example.com/"', 'url = "https://pip.example.com/a b/"'),
        "targets.production.index.url: a URL has no whitespace: encode it (%20) or remove it, "
        "got 'https://pip.example.com/a b/'",
    ),
    (
        ('url = "https://pip.example.com/"', 'url = "https://pip.ex\u00e4mple.com/"'),
        "targets.production.index.url: the host of 'https://pip.ex\u00e4mple.com/' is not ASCII: write it in its "
        "punycode form (xn--...)",
    ),
    (
        ('docker = "auto"', 'docker = "sh"'),
        "docker: expected \"auto\" or the path of a docker or podman CLI, got 'sh'",
    ),
    (
        ('cache_dir = "cache"', 'cache_dir = "/"'),
        "cache_dir: '/' is the filesystem root: name a directory of the pipeline's own below it",
    ),
    (
        ('cache_dir = "cache"', 'cache_dir = "~"'),
        "cache_dir: '~' is the home directory: name a directory of the pipeline's own below it",
    ),
    (
        ('issuer = "https://oidc.ac-release.local"', 'issuer = "https://Token.Actions.GithubUserContent.com/"'),
        "targets.local.signing.issuer: the local instance mints its own tokens: it may not claim GitHub Actions' "
        "issuer (https://token.actions.githubusercontent.com); name one of its own, e.g. https://oidc.ac-release.local",
    ),
    (
        ('identity = "release@ac-release.local"', f'identity = "{RELEASE_IDENTITY}"'),
        f"targets.local.signing.identity: expected an email address, got '{RELEASE_IDENTITY}'",
    ),
    (
        (
            'registries = ["quay.io/astronomer/ap-airflow"]',
            'registries = [{repository = "quay.io/astronomer/ap-airflow", auth_hosts = ["-x"]}]',
        ),
        'targets.production.registries[0].auth_hosts: expected a list of host names, e.g. ["auth.docker.io"]',
    ),
]


@pytest.mark.parametrize(("change", "message"), BAD_VALUES, ids=[m.split(":")[0] for _, m in BAD_VALUES])
def test_bad_values_are_refused_naming_file_and_key(tmp_path, change, message):
    assert _refusal(_config(tmp_path, change)) == f"{tmp_path / 'release.toml'}: {message}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("default_target = [", "not valid TOML: "),
        ('default_target = "local"\nservices = 1\ntargets = "x"\n', "services: expected a table, got an integer"),
        ('default_target = "local"\n', "services: missing (compare with the repository's release.toml)"),
        (
            'default_target = "local"\n[services]\ndir = "s"\npypi_port = 1\nsigstore_port = 2\nregistry_port = 3\n',
            "targets: missing (compare with the repository's release.toml)",
        ),
        (
            'default_target = "local"\n[services]\ndir = "s"\npypi_port = 1\nsigstore_port = 2\nregistry_port = 3\n'
            "[targets.local]\n",
            "targets.local.index: missing (compare with the repository's release.toml)",
        ),
    ],
)
def test_malformed_files_are_one_line(tmp_path, text, message):
    path = tmp_path / "release.toml"
    path.write_text(text)
    assert _refusal(path).startswith(f"{path}: {message}")


def test_non_utf8_config_is_one_line(tmp_path):
    path = tmp_path / "release.toml"
    path.write_bytes(b'default_target = "\xff"\n')
    assert _refusal(path) == f"{path}:1: not UTF-8 (byte 0xff): save it as UTF-8"


def test_ipv6_and_localhost_service_hosts_are_loopback(tmp_path):
    for host in ("::1", "localhost", "127.0.0.2"):
        (tmp_path / host).mkdir()
        address = f"[{host}]" if ":" in host else host
        path = _config(
            tmp_path / host,
            ('host = "127.0.0.1"', f'host = "{host}"'),
            ('url = "http://127.0.0.1:8765/"', f'url = "http://{address}:8765/"'),  # derived: only the same value
            ('["127.0.0.1:5000/astronomer/ap-airflow"]', f'["{address}:5000/astronomer/ap-airflow"]'),
        )
        assert load_settings(path).services.host == host


@pytest.mark.parametrize(
    ("repository", "loopback"),
    [
        ("127.0.0.1:5000/a", True),
        ("127.9.9.9/a", True),
        ("localhost:5000/a/b", True),
        ("LOCALHOST/a", True),
        ("[::1]:5000/a", True),
        ("127.evil.com/x", False),
        ("localhost.evil.com/x", False),
        ("127.0.0.1.nip.io/x", False),
        ("quay.io/astronomer/ap-airflow", False),
        ("[::2]:5000/a", False),
        ("128.0.0.1/a", False),
    ],
)
def test_loopback_registry_compares_the_parsed_host(repository, loopback):
    from ac_release.model.config import is_loopback_registry

    assert is_loopback_registry(repository) is loopback


@pytest.mark.parametrize(
    ("repository", "flags"),
    [
        ("127.0.0.1:5000/a", ["--tls-verify=false"]),
        ("localhost/a", ["--tls-verify=false"]),
        ("127.evil.com/x", []),
        ("localhost.evil.com/x", []),
    ],
)
def test_tls_is_skipped_only_for_loopback_registries(repository, flags):
    from ac_release.clients.registry import _tls

    assert _tls(repository) == flags


def test_config_env_pointing_nowhere_or_at_a_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("AC_RELEASE_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ReleaseError) as error:
        load_settings()
    assert str(error.value) == (
        f"AC_RELEASE_CONFIG={tmp_path / 'missing.toml'} does not exist: point it at a release.toml or unset it"
    )
    monkeypatch.setenv("AC_RELEASE_CONFIG", str(tmp_path))
    with pytest.raises(ReleaseError) as error:
        load_settings()
    assert str(error.value) == f"AC_RELEASE_CONFIG={tmp_path} is a directory: point it at a release.toml file"
    monkeypatch.setenv("AC_RELEASE_CONFIG", "")
    with pytest.raises(ReleaseError) as error:
        load_settings()
    assert str(error.value) == "AC_RELEASE_CONFIG is set but empty: point it at a release.toml or unset it"


def test_cache_env_empty_or_a_file_is_refused(tmp_path, monkeypatch):
    path = write_config(tmp_path)
    monkeypatch.setenv("AC_RELEASE_CACHE", "")
    with pytest.raises(ReleaseError) as error:
        load_settings(path)
    assert str(error.value) == "AC_RELEASE_CACHE is set but empty: name a directory or unset it"
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("AC_RELEASE_CACHE", str(tmp_path / "file"))
    with pytest.raises(ReleaseError) as error:
        load_settings(path)
    assert str(error.value) == f"AC_RELEASE_CACHE={tmp_path / 'file'} is not a directory: name a directory or unset it"


def test_empty_target_name_is_refused_none_is_the_default(tmp_path):
    settings = load_settings(write_config(tmp_path))
    assert settings.target(None).name == "local"
    with pytest.raises(ReleaseError) as error:
        settings.target("")
    assert str(error.value) == "empty target name: choose one of local (or leave --target out for local)"


def test_a_refusal_never_quotes_a_secret_of_a_url(tmp_path):
    edits = [
        ('url = "https://pip.example.com/"', 'url = "https://pip.example.com/?token=s3cr3t"'),
        ('git_remote = "origin"', 'git_remote = "-https://user:s3cr3t@github.com/a/b.git"'),
        ('issuer = "https://token.actions.githubusercontent.com"', 'issuer = "ftp://u:s3cr3t@issuer.example.com"'),
    ]
    for number, edit in enumerate(edits):
        (tmp_path / str(number)).mkdir()
        message = _refusal(_config(tmp_path / str(number), edit))
        assert "s3cr3t" not in message, message
        assert "***" in message or "credentials do not belong in a URL" in message, message


# -- issue 29, item 7: the directories the pipeline writes, links, nesting, the remotes and URLs that stay valid --


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('dist_dir = "{dir}/dist"', 'dist_dir = "/"', "dist_dir: '/' is the filesystem root"),
        ('dist_dir = "{dir}/dist"', 'dist_dir = "$HOME/"', "dist_dir: '$HOME/' is the home directory"),
        ('dist_dir = "{dir}/dist"', f'dist_dir = "{REPO}"', "dist_dir: '{repo}' is the repository or a directory"),
        ('dir = "{dir}/services"', f'dir = "{REPO.parent}"', "services.dir: '{parent}' is the repository or a"),
    ],
)
def test_a_directory_holding_the_machines_the_users_or_the_repositorys_files_is_refused(tmp_path, old, new, message):
    path = _config(tmp_path, (old.replace("{dir}", str(tmp_path)), new))
    expected = message.replace("{repo}", str(REPO)).replace("{parent}", str(REPO.parent))
    assert _refusal(path).startswith(f"{path}: {expected}")


def test_a_symlink_loop_in_a_configured_directory_is_one_line_naming_the_key(tmp_path):
    (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
    path = _config(tmp_path, ('cache_dir = "cache"', 'cache_dir = "loop-a/cache"'))
    assert _refusal(path) == (
        f"{path}: cache_dir: cannot resolve 'loop-a/cache' (a symlink loop): fix or remove the link"
    )


@pytest.mark.parametrize("nested", ["x = " + "[" * 3000 + "]" * 3000, "x = " + "{a = " * 3000 + "1" + "}" * 3000])
def test_toml_nested_too_deeply_is_one_line(tmp_path, nested):
    path = tmp_path / "release.toml"
    path.write_text(nested + "\n")
    assert _refusal(path) == f"{path}: nested too deeply (arrays or inline tables in each other): flatten it"


@pytest.mark.parametrize(
    "remote",
    [
        "origin",
        "git@github.com:astronomer/ap-airflow.git",
        "ssh://git@github.com/astronomer/ap-airflow.git",
        "ssh://git@github.com:22/astronomer/ap-airflow.git",
        "https://github.com/astronomer/ap-airflow.git",
    ],
)
def test_remotes_in_use_stay_valid(tmp_path, remote):
    path = _config(tmp_path, ('git_remote = "origin"', f'git_remote = "{remote}"'))
    assert load_settings(path).target("production").git_remote == remote


def test_the_repository_config_names_docker_hubs_token_host_and_keeps_dev_apart():
    production = load_settings(REPO / "release.toml").target("production")
    assert [registry.access.auth_hosts for registry in production.registries] == [(), ("auth.docker.io",)]
    assert production.registries[1] == "docker.io/astronomerinc/ap-airflow"


def test_a_dev_registry_on_another_targets_release_location_is_refused(tmp_path):
    dev = (
        '[targets.production.dev]\nindex_url = "https://pip.example.com/dev/"\n'
        'registries = ["127.0.0.1:5000/astronomer/ap-airflow"]\n'
    )
    path = _config(tmp_path, append=dev)
    assert _refusal(path) == (
        f"{path}: targets.production.dev.registries[0]: '127.0.0.1:5000/astronomer/ap-airflow' is also "
        "targets.local.registries: dev builds must never reach a release location; name a dev location of its own"
    )


def test_a_target_may_narrow_the_platforms_and_keeps_all_without(tmp_path):
    from ac_release.model.flavours import AMD64, ARM64

    settings = load_settings(
        _config(
            tmp_path,
            ('base_images = "official"', 'base_images = "official"\nplatforms = ["linux/arm64", "linux/amd64"]'),
        )
    )
    assert settings.target("production").platforms == (ARM64, AMD64)
    assert settings.target("local").platforms is None  # no key: every platform of the line
    assert load_settings(REPO / "release.toml").target("production").platforms is None
    assert AMD64 < ARM64
