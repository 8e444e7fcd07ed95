"""`invoke services.*`: the embedded services a target runs here, and a GitHub Actions job's environment served by
them. The services' libraries load only when a command uses them."""

from __future__ import annotations

from ac_release.core.errors import ReleaseError
from ac_release.model.config import load_settings


def services_of(target: str | None):
    """The services the target runs here (`local`'s, `staging`'s); a target without any is refused."""
    from ac_release.services.manager import LocalServices

    chosen = load_settings().target(target)
    if chosen.services is None:
        raise ReleaseError(f"target {chosen.name} runs no services here: its index and registries are remote")
    return LocalServices(chosen.services)


def up(target: str | None) -> None:
    services_of(target).up()


def down(target: str | None) -> None:
    services_of(target).down()


def print_status(target: str | None) -> None:
    for name, state in services_of(target).status().items():
        print(f"{name:10} {state}")


def print_actions_env(target: str, job: dict, environment: str | None, lifetime: int) -> None:
    """The `export` lines of a GitHub Actions job whose identity token the target's own Sigstore serves."""
    from ac_release.services.actions_env import export_lines

    for line in export_lines(load_settings(), target, job, environment, lifetime):
        print(line)
