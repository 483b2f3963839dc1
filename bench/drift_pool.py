"""drift_pool: drift fanned out over the work pool: 1 worker vs 2, and 3 vs 24 environments.

Setup (not timed): the sandbox (moto, the GitHub emulator, blocks on the benchmark's Prefect
server), an infra repository of ``ENVIRONMENTS`` environments made as the tests make them
(``tests/infra_repo.py``: one folder each, an IAM user pair each on moto; never applied, so each
check plans every resource as a create: cheap, and the same work in every pass), the `gitops`
process pool and ``prefect deploy --all`` of the project's prefect.yaml.

Each pass starts its process workers (``--limit 1`` each), lets them come online, then times one
``drift(environments, fan_out=True)`` called in this process: it checks out the head, starts one
``drift-environment`` run per environment, which the workers take (a new Python process each, a
checkout, ``terraform init``, the two plans, the notify step), and waits for all of them. drift
itself runs here, not on a worker, so the workers' slots are all for environment runs.

* **one worker, 3 environments** and **one worker, 24 environments**: per-environment cost
  (wall / environments); growth = per-environment(24) / per-environment(3). Target <= 1.15
  (the fan-out, polling and combining cost nothing that grows with the count).
* **two workers, 24 environments**: speedup = one worker / two workers. Target >= 1.5 (ideal 2
  by workers; a run is mostly CPU: Python start-up, terraform and the provider, so on 2 cores
  anything else running takes from it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench._cpu import machine_seconds
from bench._prefect import prefect_server
from bench._report import Result, heading, say, secs

NAME = "drift_pool"
NEEDS_PREFECT = True
ENVIRONMENTS = 24
FEW = 3
GROWTH_TARGET = 1.15
SPEEDUP_TARGET = 1.5
REPO = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).with_name("prefect"))


def _prefect_env() -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_CLI_PROMPT": "false", "GITOPS_FLOWS_HOME": str(REPO),
            "PREFECT_WORKER_QUERY_SECONDS": "1", "PYTHONPATH": str(REPO)}


def _deploy() -> None:
    from deployments.sandbox.launcher import deploy_to_pool

    deploy_to_pool(REPO, _prefect_env())
    _pause_schedule()


def _pause_schedule() -> None:
    """Pause the drift deployment's hourly schedule (and drop the runs it made): a scheduled
    check of every environment must not land in a timed pass."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("drift/drift")
        client.pause_deployment(deployment.id)
        for run in client.read_flow_runs(deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[deployment.id]))):
            client.delete_flow_run(run.id)


@contextmanager
def _workers(count: int, logs: Path) -> Iterator[None]:
    """``count`` process workers on the pool, ``--limit 1`` each, stopped on exit."""
    from prefect.client.orchestration import get_client

    with ExitStack() as stack:
        names = []
        for i in range(count):
            name = f"bench-{count}-{i}"
            log = stack.enter_context(open(logs / f"{name}.log", "wb"))
            proc = subprocess.Popen([PREFECT, "worker", "start", "--pool", "gitops", "--type",
                                     "process", "--limit", "1", "--name", name], cwd=REPO,
                                    env=_prefect_env(), stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            stack.callback(lambda p=proc: (os.killpg(p.pid, 15), p.wait(timeout=30)))
            names.append(name)
        deadline = time.monotonic() + 60
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                online = {w.name for w in client.read_workers_for_work_pool("gitops")
                          if str(w.status).upper().endswith("ONLINE")}
                if set(names) <= online:
                    break
                time.sleep(0.5)
            else:
                raise RuntimeError(f"workers {names} did not come online")
        yield


def _timed_drift(names: list[str]) -> tuple[float, float]:
    """Wall time of one fanned-out drift check of ``names``, and cores other work used."""
    from flows.drift import drift

    machine, start = machine_seconds(), time.perf_counter()
    reports = drift(names, fan_out=True)
    wall = time.perf_counter() - start
    wrong = [(r.environment, str(r.status), r.reason) for r in reports
             if str(r.status) != "pending_changes"]
    if [r.environment for r in reports] != names or wrong:
        raise AssertionError(f"unexpected drift results: {wrong}")
    return wall, (machine_seconds() - machine) / wall


def _timed_pass(workers: int, names: list[str]) -> float:
    """One timed pass, printed as soon as it ends; its wall time."""
    wall, load = _timed_drift(names)
    say(f"{workers} worker(s), {len(names):2d} environments: {secs(wall)} "
        f"({secs(wall / len(names))} per environment; the machine was {load:.2f} cores busy)")
    return wall


def run() -> Result:
    from deployments.blocks import register_sandbox_blocks
    from deployments.sandbox.launcher import Sandbox, SandboxState
    from tests.infra_repo import InfraRepo

    result = Result(NAME)
    heading(NAME, f"drift fanned out over process workers: {ENVIRONMENTS} environments on 1 vs "
                  f"2 workers; per-environment cost at {FEW} vs {ENVIRONMENTS}")
    names = [f"pool-{i:02d}" for i in range(1, ENVIRONMENTS + 1)]
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="bench-drift-pool-") as tmp, prefect_server():
        box = Sandbox(Path(tmp) / "sandbox", source=REPO)
        try:
            start = time.perf_counter()
            os.environ.update(box.up(services=("moto", "github"), register_blocks=False))
            state = SandboxState.load(box.state_file)
            register_sandbox_blocks(None, moto_endpoint=state.services["moto"].url,
                                    tokens=state.tokens)
            repo = InfraRepo.isolated(Path(tmp) / "infra", tuple(names))
            repo.push(f"{ENVIRONMENTS} environments")
            os.environ["GITOPS_REPOSITORY_URL"] = repo.url
            _deploy()
            say(f"setup (sandbox, {ENVIRONMENTS} environments, prefect deploy --all; not timed): "
                f"{secs(time.perf_counter() - start)}")
            logs = Path(tmp)
            with _workers(1, logs):
                few = _timed_pass(1, names[:FEW])
                one = _timed_pass(1, names)
            with _workers(2, logs):
                two = _timed_pass(2, names)
        finally:
            box.down()
            os.environ.clear()
            os.environ.update(saved)

    result.check("per-environment growth 3 -> 24", (one / ENVIRONMENTS) / (few / FEW),
                 GROWTH_TARGET, unit="x")
    result.check("speedup 2 workers / 1", one / two, SPEEDUP_TARGET, at_most=False, unit="x")
    return result
