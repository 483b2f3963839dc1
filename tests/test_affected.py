"""Which environments a change affects, on the fixture repository in tests/fixtures/affected/repo:

    stacks/app   <- dev, prod (prod has an Argo CD overlay path), broken (invalid config)
                    uses modules/network, modules/service (-> ./logging), a registry module
    stacks/edge  <- cdn, custom (var file in config/)
                    uses modules/cdn (-> ../dns), modules/loop-a <-> loop-b, network (.tf.json),
                    a commented-out modules/unused, a source outside the repository
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.affected import (
    AffectedSet, Impact, Reason, affected_environments, changed_policies, local_modules,
)
from gitops.config import Environment, list_environments, load_environment
from gitops.errors import ConfigError

REPO = Path(__file__).resolve().parent / "fixtures" / "affected" / "repo"


@pytest.fixture(scope="module")
def environments() -> dict[str, Environment]:
    loaded: dict[str, Environment] = {}
    for name in list_environments(REPO):
        try:
            loaded[name] = load_environment(REPO, name)
        except ConfigError:
            pass
    return loaded


def affected(paths: list[str], environments: dict[str, Environment],
             **kwargs: object) -> AffectedSet:
    return affected_environments(paths, environments, repo_root=REPO, **kwargs)  # type: ignore[arg-type]


def test_fixture_loads_every_environment_but_the_broken_one(environments):
    assert sorted(environments) == ["cdn", "custom", "dev", "prod"]


def test_local_modules_are_followed_transitively_and_cycles_end():
    assert local_modules("terraform/stacks/app", repo_root=REPO) == {
        "terraform/modules/network", "terraform/modules/service",
        "terraform/modules/service/logging"}
    assert local_modules("terraform/stacks/edge", repo_root=REPO) == {
        "terraform/modules/cdn", "terraform/modules/dns", "terraform/modules/loop-a",
        "terraform/modules/loop-b", "terraform/modules/network"}


def test_a_missing_stack_uses_no_modules():
    assert local_modules("terraform/stacks/nope", repo_root=REPO) == frozenset()
    assert local_modules("../escape", repo_root=REPO) == frozenset()


def test_a_change_in_an_environment_folder_affects_only_that_environment(environments):
    result = affected(["terraform/environments/dev/dev.tfvars"], environments)
    assert result.environments == ("dev",)
    assert result.impacts == (Impact("dev", "terraform/environments/dev/dev.tfvars",
                                     Reason.ENVIRONMENT),)
    assert result.unaffecting == ()


def test_a_var_file_outside_the_environment_folder_still_belongs_to_it(environments):
    result = affected(["config/custom.tfvars"], environments)
    assert result.environments == ("custom",)
    assert result.reasons("custom") == {Reason.ENVIRONMENT}


def test_a_change_in_a_stack_affects_every_environment_on_it(environments):
    result = affected(["terraform/stacks/app/variables.tf"], environments)
    assert result.environments == ("dev", "prod")
    assert all(i.reason is Reason.STACK for i in result.impacts)


def test_a_shared_module_affects_every_stack_that_uses_it(environments):
    result = affected(["terraform/modules/network/main.tf"], environments)
    assert result.environments == ("cdn", "custom", "dev", "prod")
    assert {i.reason for i in result.impacts} == {Reason.MODULE}


@pytest.mark.parametrize("path, envs", [
    ("terraform/modules/service/logging/main.tf", ("dev", "prod")),  # nested ./logging
    ("terraform/modules/dns/main.tf", ("cdn", "custom")),            # through modules/cdn
    ("terraform/modules/loop-b/main.tf", ("cdn", "custom")),          # through a cycle
])
def test_transitive_modules_affect_their_stacks(environments, path, envs):
    assert affected([path], environments).environments == envs


def test_an_overlay_affects_its_environment(environments):
    result = affected(["overlays/prod/kustomization.yaml", "overlays/dev/kustomization.yaml"],
                      environments)
    assert result.environments == ("dev", "prod")
    assert result.reasons("prod") == {Reason.OVERLAY}
    assert result.reasons("dev") == {Reason.OVERLAY}  # default overlays/<env>


@pytest.mark.parametrize("path", [
    "README.md", ".github/workflows/ci.yml", "docs/notes.md",
    "terraform/modules/unused/main.tf",         # only named in a comment
    "terraform/environments/gone/old.tfvars",   # no such environment
    "overlays/base/kustomization.yaml",
])
def test_other_paths_affect_nothing(environments, path):
    result = affected([path], environments)
    assert result.empty
    assert result.environments == ()
    assert result.unaffecting == (path,)


def test_a_mixed_change_lists_each_environment_once_with_its_reasons(environments):
    result = affected([
        "README.md",
        "terraform/environments/dev/environment.toml",
        "terraform/stacks/app/main.tf",
        "./terraform/modules/dns/main.tf",
        "terraform/modules/dns/main.tf",   # the same path twice counts once
    ], environments)
    assert result.environments == ("cdn", "custom", "dev", "prod")
    assert result.reasons("dev") == {Reason.ENVIRONMENT, Reason.STACK}
    assert [i.path for i in result.impacts_on("dev")] == [
        "terraform/environments/dev/environment.toml", "terraform/stacks/app/main.tf"]
    assert result.reasons("cdn") == {Reason.MODULE}
    assert result.unaffecting == ("README.md",)


def test_paths_outside_the_repository_are_dropped(environments):
    result = affected(["../terraform/stacks/app/main.tf", "/etc/passwd", "", "  "], environments)
    assert result == AffectedSet()


def test_an_unloadable_environment_is_still_affected_by_its_folder(environments):
    result = affected(["terraform/environments/broken/environment.toml"], environments,
                      unloadable=["broken"])
    assert result.environments == ("broken",)
    # Without being told, the folder is not an environment.
    assert affected(["terraform/environments/broken/environment.toml"], environments).empty


def test_another_environments_dir(environments):
    moved = {name: env.model_copy(update={"var_file": f"envs/{name}/{name}.tfvars"})
             for name, env in environments.items()}
    result = affected(["envs/prod/backend.hcl", "terraform/environments/prod/prod.tfvars"],
                      moved, environments_dir="envs")
    assert result.environments == ("prod",)
    assert result.unaffecting == ("terraform/environments/prod/prod.tfvars",)


def test_changed_policies_are_the_paths_under_the_policies_directory():
    paths = ["policies/cost_tags.rego", "./policies/env/prod/no_public_ingress.rego",
             "policies-old/x.rego", "README.md", "terraform/policies/y.rego"]
    assert changed_policies(paths, "policies/") == (
        "policies/cost_tags.rego", "policies/env/prod/no_public_ingress.rego")
    assert changed_policies(paths, "terraform/policies") == ("terraform/policies/y.rego",)
    assert changed_policies(paths, "../outside") == ()
