"""Static checks of a Terraform stack's source, for stacks whose providers cannot run here.

The AWS application stack (``terraform/stacks/expense-app``) cannot be planned on a machine
without the AWS provider, so what matters most is checked on its text:

* :func:`check_default_tags`: the cost tags (``Environment``, ``Application``, ``Owner``) come from
  every ``provider "aws"`` block's ``default_tags``, and no resource or module call blanks one of
  them or sets ``tags_all``;
* :func:`check_variables_match`: two stacks (the sandbox and the AWS one) declare the same input
  variables, so one tfvars file per environment serves either;
* :func:`check_tfvars`: a tfvars file sets only variables a stack declares.

:func:`load_stack` parses a root module's ``*.tf`` files with python-hcl2 and, transitively, the
local modules it calls (``source = "./..."`` or ``"../..."``); registry and Git sources are listed
in :attr:`Stack.external_sources`, not followed. Checks return :class:`Finding` values (an empty
list means clean); a stack that cannot be read raises :class:`gitops.errors.ConfigError`.
Everything here is pure except reading the files.

Limits: tag values are judged on their literal text. ``Owner = ""`` is caught in a map literal
and inside an expression (``merge(var.tags, { Owner = "" })``); a blank value that reaches a tag
through a variable or a local (``Owner = var.owner`` with ``owner = ""``) is not: the plan-time tag
policy (:mod:`gitops.policy`, on ``tags_all``) catches those.

Command line::

    python -m gitops.static_checks terraform/stacks/expense-app \\
        [--same-variables-as terraform/stacks/sandbox] \\
        [--tfvars terraform/environments/dev/dev.tfvars]

prints one line per finding and exits 1 if there is any (2 if a stack cannot be read).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import hcl2
from hcl2.utils import SerializationOptions
from lark.exceptions import LarkError

from gitops.errors import ConfigError
from gitops.policy import REQUIRED_TAGS

__all__ = [
    "Block",
    "Finding",
    "Module",
    "Stack",
    "check_default_tags",
    "check_tfvars",
    "check_variables_match",
    "load_stack",
    "load_tfvars",
    "main",
]

_OPTIONS = SerializationOptions(with_comments=False)
_LOCAL_SOURCE = re.compile(r"^\.\.?/")


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in a stack's source: the file, the Terraform address, what is wrong."""

    path: Path
    address: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.address}: {self.message}"


@dataclass(frozen=True, slots=True)
class Block:
    """One top-level block of a ``.tf`` file (``resource "aws_vpc" "this" {...}`` etc.).

    ``labels`` are unquoted; ``body`` is python-hcl2's view of the block: string literals keep their
    quotes (``'"10.0.0.0/16"'``), expressions are ``"${...}"``, nested blocks are lists of dicts.
    """

    kind: str
    labels: tuple[str, ...]
    body: Mapping[str, Any]
    path: Path


@dataclass(frozen=True, slots=True)
class Module:
    """One module instance of a stack: the root (address ``""``) or a call (``module.web``)."""

    address: str
    directory: Path
    blocks: tuple[Block, ...]

    def of_kind(self, kind: str) -> tuple[Block, ...]:
        """The blocks of one kind (``resource``, ``provider``, ``module``, ``variable``...)."""
        return tuple(block for block in self.blocks if block.kind == kind)

    def address_of(self, local: str) -> str:
        """The full address of ``local`` (``aws_vpc.this``) inside this module instance."""
        return f"{self.address}.{local}" if self.address else local


@dataclass(frozen=True, slots=True)
class Stack:
    """A root module and every local module it calls, transitively (root first)."""

    directory: Path
    modules: tuple[Module, ...]
    external_sources: tuple[tuple[str, str], ...] = ()
    """``(module address, source)`` of calls to registry/Git modules, which are not read."""

    @property
    def root(self) -> Module:
        """The root module."""
        return self.modules[0]

    @property
    def variables(self) -> Mapping[str, Block]:
        """The root module's input variables by name."""
        return MappingProxyType({block.labels[0]: block for block in self.root.of_kind("variable")})

    @property
    def variable_names(self) -> frozenset[str]:
        """Names of the root module's input variables."""
        return frozenset(self.variables)


# --- Reading -----------------------------------------------------------------------------------


def _unquote(text: str) -> str:
    """A label or key without its surrounding double quotes."""
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return text[1:-1]
    return text


def _clean(value: Any) -> Any:
    """python-hcl2 output without its ``__is_block__``/comment markers, keys unquoted."""
    if isinstance(value, dict):
        return {_unquote(k): _clean(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


def _parse_file(path: Path) -> dict[str, Any]:
    """The raw python-hcl2 document of one HCL file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as ex:
        raise ConfigError(f"cannot read {path}: {ex}") from ex
    try:
        return hcl2.loads(text, serialization_options=_OPTIONS)
    except LarkError as ex:
        raise ConfigError(f"cannot parse {path}: {ex}") from ex


def _blocks_of(document: Mapping[str, Any], path: Path) -> list[Block]:
    """Every top-level block of a parsed file, in file order per kind."""
    found: list[Block] = []

    def walk(kind: str, node: Any, labels: tuple[str, ...]) -> None:
        if isinstance(node, dict) and node.get("__is_block__"):
            found.append(Block(kind, labels, MappingProxyType(_clean(node)), path))
        elif isinstance(node, dict):
            for key, child in node.items():
                walk(kind, child, (*labels, _unquote(key)))

    for kind, entries in document.items():
        if kind.startswith("__") or not isinstance(entries, list):
            continue  # a top-level attribute: not valid in a .tf file, nothing to check
        for entry in entries:
            walk(kind, entry, ())
    return found


def _read_module(directory: Path, address: str) -> Module:
    if not directory.is_dir():
        raise ConfigError(f"module {address or '(root)'}: {directory} is not a directory")
    files = sorted(directory.glob("*.tf"))
    if not files:
        raise ConfigError(f"module {address or '(root)'}: no .tf files in {directory}")
    blocks: list[Block] = []
    for path in files:
        blocks.extend(_blocks_of(_parse_file(path), path))
    return Module(address, directory, tuple(blocks))


def load_stack(stack_dir: str | os.PathLike[str]) -> Stack:
    """Parse the root module in ``stack_dir`` and every local module it calls, transitively.

    Raises :class:`ConfigError` when a file cannot be read or parsed, a local module directory is
    missing, or local modules call each other in a cycle.
    """
    root_dir = Path(stack_dir)
    modules: list[Module] = []
    external: list[tuple[str, str]] = []

    def visit(directory: Path, address: str, chain: tuple[Path, ...]) -> None:
        real = directory.resolve()
        if real in chain:
            raise ConfigError(f"module {address}: {directory} calls itself through its own modules")
        module = _read_module(directory, address)
        modules.append(module)
        for call in module.of_kind("module"):
            name = call.labels[0] if call.labels else "?"
            child_address = module.address_of(f"module.{name}")
            source = _literal(call.body.get("source"))
            if source is None:
                raise ConfigError(f"{call.path}: module {child_address} has no literal source")
            if not _LOCAL_SOURCE.match(source):
                external.append((child_address, source))
                continue
            child_dir = Path(os.path.normpath(directory / source))
            visit(child_dir, child_address, (*chain, real))

    visit(root_dir, "", ())
    return Stack(root_dir, tuple(modules), tuple(external))


def load_tfvars(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The variables a ``.tfvars`` file sets (values as python-hcl2 gives them)."""
    document = _parse_file(Path(path))
    return {key: _clean(value) for key, value in document.items() if not key.startswith("__")}


# --- Values ------------------------------------------------------------------------------------


def _literal(value: Any) -> str | None:
    """The text of a plain string literal (no interpolation), else None."""
    if not isinstance(value, str) or len(value) < 2 or not (value[0] == value[-1] == '"'):
        return None
    inner = value[1:-1]
    if "${" in inner or "%{" in inner:
        return None
    return inner


def _is_blank_literal(value: Any) -> bool:
    literal = _literal(value)
    return literal is not None and not literal.strip()


def _blank_keys_in_expression(expression: str, keys: Iterable[str]) -> list[str]:
    """Required keys an expression's object literals set to ``""``: ``merge(x, { Owner = "" })``."""
    return [key for key in keys
            if re.search(rf'(?<![\w.-])"?{re.escape(key)}"?\s*[=:]\s*"\s*"(?=\s*[,}})\n]|\s*$)',
                         expression)]


def _blank_tag_keys(tags: Any, keys: Sequence[str]) -> list[str]:
    """Required keys a ``tags`` value sets to an empty (or blank) string literal."""
    if isinstance(tags, dict):
        return [key for key in keys if key in tags and _is_blank_literal(tags[key])]
    if isinstance(tags, str):
        return _blank_keys_in_expression(tags, keys)
    return []


# --- Checks ------------------------------------------------------------------------------------


def _provider_address(module: Module, block: Block) -> str:
    alias = _literal(block.body.get("alias"))
    name = block.labels[0] if block.labels else "?"
    return module.address_of(f"provider.{name}" + (f".{alias}" if alias else ""))


def _check_provider(module: Module, block: Block, required: Sequence[str]) -> list[Finding]:
    address = _provider_address(module, block)
    alias = _literal(block.body.get("alias"))
    what = 'provider "aws"' + (f' (alias "{alias}")' if alias else "")

    def finding(message: str) -> Finding:
        return Finding(block.path, address, message)

    raw = block.body.get("default_tags")
    default_tags = [raw] if isinstance(raw, dict) else list(raw or [])
    if not default_tags:
        return [finding(f"{what} has no default_tags block: resources created through it miss "
                        f"the {', '.join(required)} tags")]
    findings: list[Finding] = []
    for entry in default_tags:
        tags = entry.get("tags") if isinstance(entry, dict) else None
        if tags is None:
            findings.append(finding(f"{what}: default_tags sets no tags"))
        elif not isinstance(tags, dict):
            findings.append(finding(
                f"{what}: default_tags.tags is an expression ({tags}); write the "
                f"{', '.join(required)} tags as a map literal so they can be checked"))
        else:
            for key in required:
                if key not in tags:
                    findings.append(finding(f"{what}: default_tags has no {key} tag"))
                elif _is_blank_literal(tags[key]):
                    findings.append(finding(f"{what}: default_tags sets {key} to an empty string"))
                elif tags[key] is None:
                    findings.append(finding(f"{what}: default_tags sets {key} to null"))
    return findings


def _check_tag_overrides(module: Module, block: Block, local_address: str,
                         required: Sequence[str]) -> list[Finding]:
    findings: list[Finding] = []
    address = module.address_of(local_address)
    for key in _blank_tag_keys(block.body.get("tags"), required):
        findings.append(Finding(block.path, address,
                                f'sets tags.{key} = "", blanking the default {key} tag'))
    if block.kind == "resource" and "tags_all" in block.body:
        findings.append(Finding(block.path, address,
                                "sets tags_all, which the provider computes from default_tags and "
                                "tags: set tags instead"))
    return findings


def check_default_tags(stack: Stack, required: Sequence[str] = REQUIRED_TAGS) -> list[Finding]:
    """Findings that break "every AWS resource gets the cost tags from the provider".

    * every ``provider "aws"`` block, in any module and with or without an alias, has
      ``default_tags { tags = {...} }`` with each ``required`` key set to something other than an
      empty string literal;
    * a stack with ``aws_*`` resources configures the default (unaliased) ``provider "aws"`` in
      its root module (otherwise that provider has no default_tags at all);
    * no resource or module call sets a required key of ``tags`` to an empty string literal, and
      no resource sets ``tags_all``.
    """
    findings: list[Finding] = []
    for module in stack.modules:
        for block in module.of_kind("provider"):
            if block.labels[:1] == ("aws",):
                findings.extend(_check_provider(module, block, required))
        for block in module.of_kind("resource"):
            findings.extend(_check_tag_overrides(module, block, ".".join(block.labels), required))
        for block in module.of_kind("module"):
            findings.extend(_check_tag_overrides(module, block, f"module.{block.labels[0]}",
                                                 required))

    uses_aws = any(block.labels[:1] and block.labels[0].startswith("aws_")
                   for module in stack.modules for block in module.of_kind("resource"))
    default_provider = [block for block in stack.root.of_kind("provider")
                        if block.labels[:1] == ("aws",) and "alias" not in block.body]
    if uses_aws and not default_provider:
        findings.append(Finding(stack.directory, "provider.aws",
                                'the stack has aws_* resources but its root module configures no '
                                'default provider "aws": nothing sets default_tags'))
    return findings


def check_variables_match(stack_a: Stack, stack_b: Stack, *,
                          strict: bool = False) -> list[Finding]:
    """Findings for root variables that keep one tfvars file from serving both stacks.

    A variable declared in one stack only is a finding unless it has a default (the AWS stack's
    ``region``): a shared tfvars file need not set it. ``strict=True`` requires the same names
    exactly. A variable sensitive in one stack only is a finding too.
    """
    findings: list[Finding] = []
    a, b = stack_a.variables, stack_b.variables
    for mine, theirs, here, there in ((a, b, stack_a, stack_b), (b, a, stack_b, stack_a)):
        for name in sorted(mine.keys() - theirs.keys()):
            if strict or "default" not in mine[name].body:
                findings.append(Finding(mine[name].path, f"var.{name}",
                                        f"declared in {here.directory} but not in {there.directory}"
                                        + ("" if strict else " (and has no default)")))
    for name in sorted(a.keys() & b.keys()):
        if bool(a[name].body.get("sensitive")) != bool(b[name].body.get("sensitive")):
            findings.append(Finding(a[name].path, f"var.{name}",
                                    f"sensitive in one of {stack_a.directory} and "
                                    f"{stack_b.directory} only"))
    return findings


def check_tfvars(tfvars: str | os.PathLike[str], stack: Stack) -> list[Finding]:
    """Findings for variables the tfvars file sets that the stack does not declare."""
    path = Path(tfvars)
    declared = stack.variable_names
    return [Finding(path, f"var.{name}", f"set here but not declared by {stack.directory}")
            for name in sorted(load_tfvars(path)) if name not in declared]


# --- Command line ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Check a stack; print each finding; return 1 if any, 2 if a stack cannot be read."""
    parser = argparse.ArgumentParser(prog="python -m gitops.static_checks",
                                     description="Static checks of a Terraform stack.")
    parser.add_argument("stack", help="root module directory, e.g. terraform/stacks/expense-app")
    parser.add_argument("--same-variables-as", metavar="STACK", action="append", default=[],
                        help="another stack that must declare the same variables (repeatable)")
    parser.add_argument("--tfvars", metavar="FILE", action="append", default=[],
                        help="a tfvars file that may set only declared variables (repeatable)")
    args = parser.parse_args(argv)

    try:
        stack = load_stack(args.stack)
        findings = check_default_tags(stack)
        for other in args.same_variables_as:
            findings.extend(check_variables_match(stack, load_stack(other)))
        for tfvars in args.tfvars:
            findings.extend(check_tfvars(tfvars, stack))
    except ConfigError as ex:
        print(f"error: {ex}", file=sys.stderr)
        return 2
    for finding in findings:
        print(finding)
    checked = len(stack.modules)
    print(f"{len(findings)} finding(s) in {args.stack} ({checked} module instance(s) read)",
          file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
