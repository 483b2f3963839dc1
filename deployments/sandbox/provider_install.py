"""Install the sandbox provider into a local filesystem mirror and point Terraform at it.

No provider can be downloaded here, so the sandbox's Python provider is installed as an executable
wrapper script in a filesystem mirror::

    mirror = Path("~/.cache/gitops/providers").expanduser()
    install_provider(mirror)
    write_cli_config(Path("terraform.rc"), mirror)

and Terraform is pointed at the CLI config with the environment variable
``TF_CLI_CONFIG_FILE=/abs/path/terraform.rc``. ``terraform init`` then installs
``deployments/sandbox`` from the mirror and every other provider the usual way.

The wrapper runs ``<python> -I -m deployments.sandbox.provider`` with the absolute interpreter it was
installed with (the venv's, where the package is installed), so it works from any directory.
``-I`` (isolated mode) keeps the working directory, ``PYTHON*`` variables and the user's site
folder off ``sys.path``: terraform starts providers in the checkout of the code being planned,
and a file there (``deployments/__init__.py``, ``tf.py``...) must never shadow the provider.
``.terraform.lock.hcl`` pins the hash of the wrapper script, not of the Python source: editing the
provider's code needs no re-init, re-installing with another interpreter does.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
import tempfile
from pathlib import Path

PROVIDER_ADDRESS = "registry.terraform.io/gitops/sandbox"
PROVIDER_VERSION = "0.1.0"
PLATFORM = "linux_amd64"
EXECUTABLE_NAME = f"terraform-provider-sandbox_v{PROVIDER_VERSION}"
#: The provider namespace served from the mirror (never looked up in a registry).
MIRRORED_NAMESPACE = "registry.terraform.io/gitops/*"


def provider_path(mirror_dir: Path) -> Path:
    """Where the wrapper script lives inside `mirror_dir` (the unpacked mirror layout)."""
    return Path(mirror_dir) / PROVIDER_ADDRESS / PROVIDER_VERSION / PLATFORM / EXECUTABLE_NAME


def wrapper_script(python: str) -> str:
    """The text of the wrapper script that execs the provider with interpreter `python`."""
    return (
        "#!/bin/sh\n"
        "# Terraform provider registry.terraform.io/gitops/sandbox, written by gitops-flows.\n"
        f"exec {shlex.quote(python)} -I -m deployments.sandbox.provider \"$@\"\n"
    )


def install_provider(mirror_dir: Path, python: str = sys.executable) -> Path:
    """Write the provider's wrapper script into `mirror_dir`; return its path. Idempotent.

    The file is rewritten only when its content changes, so the hash pinned in an existing
    ``.terraform.lock.hcl`` stays valid across re-installs with the same interpreter.
    """
    python = os.path.abspath(python)
    path = provider_path(mirror_dir)
    text = wrapper_script(python)
    if not (path.is_file() and path.read_text() == text):
        _write_atomically(path, text)
    mode = path.stat().st_mode
    wanted = mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH | stat.S_IRUSR
    if mode != wanted:
        path.chmod(wanted)
    return path


def write_cli_config(path: Path, mirror_dir: Path) -> Path:
    """Write a Terraform CLI config installing ``gitops/*`` providers from `mirror_dir` only.

    Point Terraform at it with ``TF_CLI_CONFIG_FILE=<path>`` (the pipeline writes its own per run,
    from ``GITOPS_PROVIDER_MIRROR``; this one is for the tests and for running terraform by hand).
    """
    from gitops.terraform import write_cli_config as write

    return write(Path(path), mirror=Path(mirror_dir).resolve(), include=[MIRRORED_NAMESPACE])


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o755 if path.name == EXECUTABLE_NAME else 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
