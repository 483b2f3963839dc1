"""The sandbox's Terraform provider, ``registry.terraform.io/gitops/sandbox`` 0.1.0, built on ``tf``.

It manages the objects of a `SandboxCloud` (JSON files in a directory) through the real Terraform
plugin protocol (v6), so the pipeline really plans, applies and detects drift on the sandbox stack.

Provider configuration::

    provider "sandbox" {
      root         = "/path/to/cloud"          # optional; default: $SANDBOX_CLOUD_DIR
      default_tags = { Owner = "team-x" }      # optional; merged under each resource's tags
    }

Resources: ``sandbox_network``, ``sandbox_service``, ``sandbox_load_balancer``,
``sandbox_database``. Each has ``tags`` and a computed ``tags_all`` (default_tags merged with tags,
the resource wins) that is known at plan time, as with the AWS provider, so a tag policy can check
effective tags on the plan. ``read`` returns what the cloud holds: an out-of-band change shows up as
drift, an object deleted out of band is planned for re-creation.

Serve it with ``python -m deployments.sandbox.provider`` (what the wrapper written by
`deployments.sandbox.provider_install.install_provider` runs).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Optional

from tf.iface import (
    Config,
    CreateContext,
    DataSource,
    DeleteContext,
    PlanContext,
    Provider,
    ReadContext,
    Resource,
    State,
    UpdateContext,
)
from tf.schema import Attribute, Schema
from tf.types import Map, Number, String, Unknown
from tf.utils import Diagnostics

from gitops.errors import SandboxObjectNotFound
from deployments.sandbox.cloud import SandboxCloud
from deployments.sandbox.provider_install import PROVIDER_ADDRESS
CLOUD_DIR_ENV = "SANDBOX_CLOUD_DIR"


def _is_known(value: Any) -> bool:
    """True unless `value` is (or contains, one level down) an unknown plan value."""
    if value is Unknown:
        return False
    if isinstance(value, Mapping):
        return all(v is not Unknown for v in value.values())
    return True


def merge_tags(default_tags: Mapping[str, str] | None, tags: Mapping[str, str] | None) -> dict[str, str]:
    """Effective tags: `default_tags` overlaid with the resource's `tags` (the resource wins)."""
    return {**dict(default_tags or {}), **dict(tags or {})}


class SandboxProvider(Provider):
    """The provider: configuration (cloud root, default tags) and the resource types."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._cloud: SandboxCloud | None = None
        self.default_tags: dict[str, str] | Any = {}

    # -- Provider protocol ------------------------------------------------------------------

    def get_model_prefix(self) -> str:
        return "sandbox_"

    def full_name(self) -> str:
        return PROVIDER_ADDRESS

    def get_provider_schema(self, diags: Diagnostics) -> Schema:
        return Schema(
            attributes=[
                Attribute(
                    "root",
                    String(),
                    optional=True,
                    description=f"Directory holding the sandbox cloud; default ${CLOUD_DIR_ENV}.",
                ),
                Attribute(
                    "default_tags",
                    Map(String()),
                    optional=True,
                    description="Tags merged under every resource's tags (the resource wins).",
                ),
            ]
        )

    def validate_config(self, diags: Diagnostics, config: Config) -> None:
        root = config.get("root")
        if root is not None and root is not Unknown and not str(root).strip():
            diags.add_error("Invalid sandbox root", "`root` must not be empty.", path=["root"])

    def configure_provider(self, diags: Diagnostics, config: Config) -> None:
        root = config.get("root") or self._environ.get(CLOUD_DIR_ENV)
        if not root or root is Unknown:
            diags.add_error(
                "No sandbox cloud directory",
                f"Set `root` in the provider \"sandbox\" block or the {CLOUD_DIR_ENV} "
                "environment variable to the directory holding the sandbox cloud.",
            )
            return
        self._cloud = SandboxCloud(Path(root))
        default_tags = config.get("default_tags")
        self.default_tags = default_tags if default_tags is not None else {}

    def get_data_sources(self) -> list[type[DataSource]]:
        return []

    def get_resources(self) -> list[type[Resource]]:
        return [NetworkResource, ServiceResource, LoadBalancerResource, DatabaseResource]

    # -- used by the resources --------------------------------------------------------------

    @property
    def cloud(self) -> SandboxCloud:
        """The configured cloud; fails if Terraform did not configure the provider first."""
        if self._cloud is None:
            raise RuntimeError("the sandbox provider is not configured")
        return self._cloud

    def effective_tags(self, tags: Mapping[str, str] | None | Any) -> dict[str, str] | Any:
        """`tags_all` for a resource with `tags`; Unknown while anything it needs is unknown."""
        if not _is_known(tags) or not _is_known(self.default_tags):
            return Unknown
        return merge_tags(self.default_tags, tags)


class _SandboxResource(Resource):
    """Shared CRUD over `SandboxCloud`: subclasses declare their fields and computed values."""

    kind: ClassVar[str]
    #: Attributes sent to / read from the cloud as they are.
    fields: ClassVar[tuple[str, ...]]
    #: Computed attributes the cloud assigns at create and keeps for the object's life.
    generated: ClassVar[tuple[str, ...]] = ()
    #: Extra schema attributes (besides id, tags, tags_all).
    attributes: ClassVar[tuple[Attribute, ...]]

    def __init__(self, provider: SandboxProvider) -> None:
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return cls.kind

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=0,
            attributes=[
                Attribute("id", String(), computed=True, description="Id assigned by the cloud."),
                *cls.attributes,
                Attribute("tags", Map(String()), optional=True, description="Tags of this resource."),
                Attribute(
                    "tags_all",
                    Map(String()),
                    computed=True,
                    description="Effective tags: provider default_tags merged with tags.",
                ),
            ],
        )

    # -- hooks for subclasses ---------------------------------------------------------------

    def generate(self, obj_id: str, planned: State) -> dict[str, Any]:
        """Values of `generated` attributes for a new object."""
        return {}

    def to_cloud(self, planned: State) -> dict[str, Any]:
        """Cloud attributes (besides tags) for the planned state."""
        return {f: planned.get(f) for f in self.fields}

    def from_cloud(self, obj: Mapping[str, Any], current: State) -> dict[str, Any]:
        """State attributes (besides id and tags) read from a cloud object."""
        return {f: obj.get(f) for f in (*self.fields, *self.generated)}

    def check(self, diags: Diagnostics, config: Config) -> None:
        """Validate attribute values; values may be None or Unknown."""

    # -- Resource protocol ------------------------------------------------------------------

    def validate(self, diags: Diagnostics, type_name: str, config: Config) -> None:
        super().validate(diags, type_name, config)
        if not diags.has_errors():
            self.check(diags, config)

    def plan(self, ctx: PlanContext, current: Optional[State], planned: State) -> Optional[State]:
        planned["tags_all"] = self.provider.effective_tags(planned.get("tags"))
        if current is None:
            for name in ("id", *self.generated):
                planned[name] = Unknown
        return planned

    def create(self, ctx: CreateContext, planned: State) -> Optional[State]:
        tags_all = merge_tags(self.provider.default_tags, planned.get("tags"))
        cloud = self.provider.cloud
        try:
            self.before_create(ctx.diagnostics, planned)
            if ctx.diagnostics.has_errors():
                return None
            obj = cloud.create(self.kind, {**self.to_cloud(planned), "tags": tags_all})
            obj = cloud.update(self.kind, obj["id"], {**obj, **self.generate(obj["id"], planned)})
        except (OSError, SandboxObjectNotFound) as exc:
            ctx.diagnostics.add_error(f"Creating {ctx.type_name} failed", str(exc))
            return None
        return {**planned, **self.from_cloud(obj, planned), "id": obj["id"], "tags_all": tags_all}

    def before_create(self, diags: Diagnostics, planned: State) -> None:
        """Checks against the cloud before creating (e.g. that a referenced object exists)."""

    def read(self, ctx: ReadContext, current: State) -> Optional[State]:
        obj_id = current.get("id")
        if not obj_id:
            return None
        try:
            obj = self.provider.cloud.get(self.kind, obj_id)
        except OSError as exc:
            ctx.diagnostics.add_error(f"Reading {ctx.type_name} {obj_id} failed", str(exc))
            return current
        if obj is None:
            return None  # deleted out of band: Terraform plans a re-create
        cloud_tags: dict[str, str] = dict(obj.get("tags") or {})
        prior_tags = current.get("tags") or {}
        prior_all = current.get("tags_all") or {}
        # Tags the configuration set stay in `tags`; tags that came from default_tags stay only
        # in `tags_all`; tags added out of band show up in both (drift to be removed).
        tags = {k: v for k, v in cloud_tags.items() if k in prior_tags or k not in prior_all}
        return {
            **current,
            **self.from_cloud(obj, current),
            "id": obj_id,
            "tags": tags if (tags or current.get("tags") is not None) else None,
            "tags_all": cloud_tags,
        }

    def update(self, ctx: UpdateContext, current: State, planned: State) -> Optional[State]:
        tags_all = merge_tags(self.provider.default_tags, planned.get("tags"))
        cloud = self.provider.cloud
        obj_id = current["id"]
        try:
            existing = cloud.get(self.kind, obj_id)
            if existing is None:
                raise SandboxObjectNotFound(self.kind, obj_id)
            obj = cloud.update(
                self.kind, obj_id, {**existing, **self.to_cloud(planned), "tags": tags_all}
            )
        except (OSError, SandboxObjectNotFound) as exc:
            ctx.diagnostics.add_error(f"Updating {ctx.type_name} {obj_id} failed", str(exc))
            return current
        return {**planned, **self.from_cloud(obj, planned), "id": obj_id, "tags_all": tags_all}

    def delete(self, ctx: DeleteContext, current: State) -> None:
        obj_id = current.get("id")
        if not obj_id:
            return None
        try:
            self.provider.cloud.delete(self.kind, obj_id)
        except OSError as exc:
            ctx.diagnostics.add_error(f"Deleting {ctx.type_name} {obj_id} failed", str(exc))
        return None


def _short(obj_id: str) -> str:
    return hashlib.sha256(obj_id.encode()).hexdigest()[:8]


def _require_existing(diags: Diagnostics, cloud: SandboxCloud, kind: str, attr: str, obj_id: Any) -> None:
    if isinstance(obj_id, str) and cloud.get(kind, obj_id) is None:
        diags.add_error(f"{kind} {obj_id!r} does not exist", f"`{attr}` must name an existing {kind}.",
                        path=[attr])


class NetworkResource(_SandboxResource):
    """``sandbox_network``: an isolated network (think VPC)."""

    kind = "network"
    fields = ("name", "cidr")
    attributes = (
        Attribute("name", String(), required=True, requires_replace=True, description="Network name."),
        Attribute("cidr", String(), required=True, requires_replace=True,
                  description="IPv4 CIDR block; changing it replaces the network."),
    )

    def check(self, diags: Diagnostics, config: Config) -> None:
        cidr = config.get("cidr")
        if isinstance(cidr, str):
            try:
                ipaddress.IPv4Network(cidr)
            except ValueError as exc:
                diags.add_error("Invalid cidr", f"{cidr!r} is not an IPv4 CIDR block: {exc}",
                                path=["cidr"])


class ServiceResource(_SandboxResource):
    """``sandbox_service``: a container service running `replicas` copies of `image`."""

    kind = "service"
    fields = ("name", "network_id", "image", "replicas")
    generated = ("endpoint",)
    attributes = (
        Attribute("name", String(), required=True, requires_replace=True, description="Service name."),
        Attribute("network_id", String(), required=True, requires_replace=True,
                  description="Network the service runs in."),
        Attribute("image", String(), required=True, description="Container image reference."),
        Attribute("replicas", Number(), required=True, description="Number of running copies."),
        Attribute("endpoint", String(), computed=True, description="Internal URL of the service."),
    )

    def check(self, diags: Diagnostics, config: Config) -> None:
        replicas = config.get("replicas")
        if isinstance(replicas, (int, float)) and (replicas < 0 or int(replicas) != replicas):
            diags.add_error("Invalid replicas", "`replicas` must be a whole number >= 0.",
                            path=["replicas"])

    def before_create(self, diags: Diagnostics, planned: State) -> None:
        _require_existing(diags, self.provider.cloud, "network", "network_id", planned.get("network_id"))

    def generate(self, obj_id: str, planned: State) -> dict[str, Any]:
        return {"endpoint": f"http://{planned['name']}-{_short(obj_id)}.svc.sandbox.internal"}


class LoadBalancerResource(_SandboxResource):
    """``sandbox_load_balancer``: a public load balancer in front of a service."""

    kind = "load_balancer"
    fields = ("name", "service_id", "port")
    generated = ("hostname",)
    attributes = (
        Attribute("name", String(), required=True, requires_replace=True,
                  description="Load balancer name."),
        Attribute("service_id", String(), required=True, description="Service it forwards to."),
        Attribute("port", Number(), required=True, description="Listener port."),
        Attribute("hostname", String(), computed=True,
                  description="DNS name, stable for the load balancer's life."),
    )

    def check(self, diags: Diagnostics, config: Config) -> None:
        port = config.get("port")
        if isinstance(port, (int, float)) and not (1 <= port <= 65535 and int(port) == port):
            diags.add_error("Invalid port", "`port` must be a whole number in 1..65535.", path=["port"])

    def before_create(self, diags: Diagnostics, planned: State) -> None:
        _require_existing(diags, self.provider.cloud, "service", "service_id", planned.get("service_id"))

    def generate(self, obj_id: str, planned: State) -> dict[str, Any]:
        return {"hostname": f"{planned['name']}-{_short(obj_id)}.lb.sandbox.internal"}


class DatabaseResource(_SandboxResource):
    """``sandbox_database``: a managed database; the cloud keeps only a hash of the password."""

    kind = "database"
    fields = ("name",)
    generated = ("address",)
    attributes = (
        Attribute("name", String(), required=True, requires_replace=True,
                  description="Database name; changing it replaces the database."),
        Attribute("password", String(), required=True, sensitive=True,
                  description="Master password (never readable back, like RDS)."),
        Attribute("address", String(), computed=True, description="Host name of the database."),
    )

    def to_cloud(self, planned: State) -> dict[str, Any]:
        password = planned.get("password") or ""
        return {
            "name": planned.get("name"),
            "password_sha256": hashlib.sha256(str(password).encode()).hexdigest(),
        }

    def from_cloud(self, obj: Mapping[str, Any], current: State) -> dict[str, Any]:
        # The password cannot be read back: keep the one Terraform knows.
        return {"name": obj.get("name"), "address": obj.get("address"),
                "password": current.get("password")}

    def generate(self, obj_id: str, planned: State) -> dict[str, Any]:
        return {"address": f"{planned['name']}-{_short(obj_id)}.db.sandbox.internal"}


def _servicer_class() -> type:
    """tf's servicer, extended to run `Resource.plan` for creates too.

    tf 1.2.0 calls ``Resource.plan`` only for updates; creates get computed attributes as Unknown.
    ``tags_all`` must be known in a create plan, so this servicer re-runs the resource's ``plan``
    hook on the planned state of a create.
    """
    from tf.iface import PlanContext as _PlanContext
    from tf.provider import ProviderServicer, _decode_state, _encode_state
    from tf.utils import read_dynamic_value

    class SandboxServicer(ProviderServicer):
        def PlanResourceChange(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC name)
            response = super().PlanResourceChange(request, context)
            if read_dynamic_value(request.prior_state) is not None or response.diagnostics:
                return response
            type_name = request.type_name
            attrs = self._get_res_attrs(type_name)
            blocks = self._get_res_blocks(type_name)
            diags = Diagnostics()
            planned_enc, planned = _decode_state(diags, attrs, blocks, response.planned_state)
            if planned is None or diags.has_errors():
                return response
            inst = self.app.new_resource(self._get_res_cls(type_name))
            planned = inst.plan(_PlanContext(diags, type_name, changed_fields=set(planned)), None, planned)
            response.planned_state.CopyFrom(_encode_state(attrs, blocks, planned, planned_enc))
            response.diagnostics.extend(diags.to_pb())
            return response

    return SandboxServicer


def main(argv: list[str] | None = None) -> None:
    """Serve the provider over the go-plugin handshake (Terraform starts this process)."""
    import tf.provider
    from tf.runner import run_provider

    # tf's runner builds `tf.provider.ProviderServicer(...)`, looked up when it runs: serve ours.
    tf.provider.ProviderServicer = _servicer_class()  # type: ignore[misc]
    run_provider(SandboxProvider(), argv if argv is not None else sys.argv)


if __name__ == "__main__":
    main()
