"""The sandbox's IAM: who may do what on its moto, and the Prefect block that holds each one's key.

    AwsCredentials block     IAM user               may
    gitops-aws               gitops-sandbox-admin   everything: the sandbox's own set-up and tooling
    gitops-aws-<env>-plan    gitops-aws-<env>-plan  list the state bucket, read its own state key,
                                                    take and release the state lock, read Route53
    gitops-aws-<env>-apply   gitops-aws-<env>-apply the same, plus write its own state key and
                                                    change the records of the sandbox zone
    gitops-aws-plan          gitops-aws-plan        read Route53; nothing of the state bucket or the
                                                    lock table (a proposed new environment is
                                                    planned against an empty local state)

for ``<env>`` in dev, staging, prod, each state key being ``expense/<env>/terraform.tfstate`` in
bucket ``gitops-tfstate`` (as ``terraform/environments/<env>/backend.hcl`` says). Nobody but the
admin may ``s3:PutObject`` another environment's key or read it. Every user holds one inline policy
(`principal_policy`), written as it would be for a real account: resource-scoped ARNs.

What moto (5.2.5, started with ``INITIAL_NO_AUTH_ACTION_COUNT``) enforces of it, checked by
``tests/test_sandbox_iam.py``:

- **S3: actions and resources.** moto evaluates S3 requests against the bucket ARN
  (``arn:aws:s3:::gitops-tfstate``) or the object ARN (``.../expense/dev/terraform.tfstate``): the
  plan user reads its own key and is refused another's, and is refused ``PutObject`` on its own.
- **DynamoDB and Route53: actions only.** moto evaluates these against the resource ``"*"``, so a
  statement naming a table or hosted-zone ARN never matches and would deny everything. What the
  sandbox installs (`moto_form`) widens those statements to ``"*"``: in the sandbox a plan user
  may write lock items in any table and an apply user change records in any zone. The scoping is
  in the policy text, for a real account; it is not enforced here.
- **Conditions: not evaluated.** moto treats an Allow with a ``Condition`` as if it had none. No
  policy here uses one.
- **Credentials.** After the first N requests, a key moto does not know or a wrong secret is
  refused (403); an unsigned request is refused too (403 for an S3 object read, else a 500: moto
  fails on the missing Authorization header). ``sts:GetCallerIdentity`` is always allowed.

Route53 reads only work signed at all through ``moto_iam_server.py`` (a fix to moto's signature
check). The resources the sandbox stack manages (network, services, load balancer, database) are
JSON files written by the sandbox's Terraform provider, not AWS: IAM does not guard them. Here IAM
guards the state, its lock and Route53.

Plain Python and boto3; nothing here runs at import.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from deployments.sandbox.aws import (
    DUMMY_KEY,
    AccessKey,
    StateBackend,
    sandbox_client,
)
from gitops.errors import SandboxError
from gitops.planstore import PREFIX as PLAN_PREFIX

#: moto's default account, the one every sandbox ARN names.
ACCOUNT_ID = "123456789012"
ENVIRONMENTS = ("dev", "staging", "prod")

ADMIN_BLOCK = "gitops-aws"
ADMIN_USER = "gitops-sandbox-admin"
NEW_ENVIRONMENT_PLAN_BLOCK = "gitops-aws-plan"
POLICY_NAME = "gitops-sandbox"

#: Unauthenticated requests moto answers before it enforces IAM: the admin's CreateUser,
#: PutUserPolicy and CreateAccessKey (`bootstrap_admin`). Everything after is signed.
BOOTSTRAP_REQUESTS = 3

#: Services whose requests moto checks against the resource "*" (see the module docstring).
UNSCOPED_BY_MOTO = frozenset({"dynamodb", "route53"})

_VERSION = "2012-10-17"


def plan_block(environment: str) -> str:
    """The AwsCredentials block of ``environment``'s plan user."""
    return f"gitops-aws-{environment}-plan"


def apply_block(environment: str) -> str:
    """The AwsCredentials block of ``environment``'s apply user."""
    return f"gitops-aws-{environment}-apply"


def sandbox_blocks(environments: Iterable[str] = ENVIRONMENTS) -> tuple[str, ...]:
    """Every AwsCredentials block the sandbox registers."""
    per_env = [name for env in environments for name in (plan_block(env), apply_block(env))]
    return (ADMIN_BLOCK, *per_env, NEW_ENVIRONMENT_PLAN_BLOCK)


def user_name(block: str) -> str:
    """The IAM user whose key ``block`` holds (the block's own name, but for the admin)."""
    return ADMIN_USER if block == ADMIN_BLOCK else block


def state_key(environment: str) -> str:
    """Where ``environment``'s state lives in the state bucket (its backend.hcl ``key``)."""
    return f"expense/{environment}/terraform.tfstate"


# ---- policies ------------------------------------------------------------------------------

def _allow(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions,
            "Resource": resources[0] if len(resources) == 1 else resources}


def _dns_read() -> dict[str, Any]:
    # ListHostedZones* take no resource on AWS; Get*/List* of one zone would take its ARN.
    return _allow("DnsRead", ["route53:List*", "route53:Get*"], ["*"])


def _plan_statements(environment: str, backend: StateBackend) -> list[dict[str, Any]]:
    bucket = f"arn:aws:s3:::{backend.bucket}"
    table = f"arn:aws:dynamodb:{backend.region}:{ACCOUNT_ID}:table/{backend.lock_table}"
    return [
        # terraform init lists the bucket (workspaces); on AWS ListBucket lets the user see the
        # names of other environments' keys, not their contents.
        _allow("StateList", ["s3:ListBucket"], [bucket]),
        _allow("StateRead", ["s3:GetObject"], [f"{bucket}/{state_key(environment)}"]),
        # The S3 backend locks during plan too (PutItem/DeleteItem on LockID "<bucket>/<key>"),
        # and reads and writes the state's checksum item ("<bucket>/<key>-md5").
        _allow("StateLock", ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem",
                             "dynamodb:DescribeTable"], [table]),
        _dns_read(),
    ]


def plan_policy(environment: str, backend: StateBackend) -> dict[str, Any]:
    """Read ``environment``'s state, hold its lock, read Route53. No write of any object."""
    return {"Version": _VERSION, "Statement": _plan_statements(environment, backend)}


def apply_policy(environment: str, backend: StateBackend, zone_id: str) -> dict[str, Any]:
    """The plan policy, plus write ``environment``'s state and change the zone's records.

    The bucket is versioned: a PutObject adds a version, it needs no other permission (reading
    old versions would need s3:GetObjectVersion / s3:ListBucketVersions; nothing here does).
    """
    bucket = f"arn:aws:s3:::{backend.bucket}"
    zone = f"arn:aws:route53:::hostedzone/{zone_id}"
    return {"Version": _VERSION, "Statement": [
        *_plan_statements(environment, backend),
        _allow("StateWrite", ["s3:PutObject"], [f"{bucket}/{state_key(environment)}"]),
        # A plan waiting for approval, sealed (gitops.planstore): only the apply user reads it.
        _allow("SavedPlans", ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
               [f"{bucket}/{PLAN_PREFIX}/{environment}/*"]),
        _allow("DnsChange", ["route53:ChangeResourceRecordSets",
                             "route53:ListResourceRecordSets"], [zone]),
        _allow("DnsChangeStatus", ["route53:GetChange"], ["arn:aws:route53:::change/*"]),
    ]}


def new_environment_plan_policy() -> dict[str, Any]:
    """Read Route53 only: a new environment's plan needs no state bucket and no lock table."""
    return {"Version": _VERSION, "Statement": [_dns_read()]}


def admin_policy() -> dict[str, Any]:
    """Everything (the sandbox's own set-up, its tooling and the tests' checks)."""
    return {"Version": _VERSION, "Statement": [_allow("Admin", ["*"], ["*"])]}


def moto_form(policy: Mapping[str, Any]) -> dict[str, Any]:
    """``policy`` as the sandbox installs it in moto: statements of a service moto checks
    against ``"*"`` (DynamoDB, Route53) get ``"Resource": "*"``; S3 statements stay as they are."""
    statements = []
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) \
            else [statement["Action"]]
        services = {action.split(":", 1)[0] for action in actions}
        if services <= UNSCOPED_BY_MOTO:
            statement = {**statement, "Resource": "*"}
        elif services & UNSCOPED_BY_MOTO:
            raise ValueError(f"statement {statement.get('Sid')!r} mixes services {services}")
        statements.append(statement)
    return {**policy, "Statement": statements}


@dataclass(frozen=True)
class Principal:
    """One IAM user of the sandbox: its block, and its policy as written for a real account."""

    block: str
    policy: dict[str, Any]

    @property
    def user(self) -> str:
        return user_name(self.block)

    @property
    def installed_policy(self) -> dict[str, Any]:
        """The policy moto holds (`moto_form`)."""
        return moto_form(self.policy)


def sandbox_principals(backend: StateBackend, zone_id: str,
                       environments: Iterable[str] = ENVIRONMENTS) -> tuple[Principal, ...]:
    """Every IAM user of the sandbox, in `sandbox_blocks` order."""
    envs = tuple(environments)
    policies: dict[str, dict[str, Any]] = {ADMIN_BLOCK: admin_policy()}
    for env in envs:
        policies[plan_block(env)] = plan_policy(env, backend)
        policies[apply_block(env)] = apply_policy(env, backend, zone_id)
    policies[NEW_ENVIRONMENT_PLAN_BLOCK] = new_environment_plan_policy()
    return tuple(Principal(block, policies[block]) for block in sandbox_blocks(envs))


# ---- keys in the sandbox's state file -------------------------------------------------------

def _token_names(block: str) -> tuple[str, str]:
    return f"{block}.access_key_id", f"{block}.secret_access_key"


def keys_to_tokens(keys: Mapping[str, AccessKey]) -> dict[str, str]:
    """Access keys by block, as entries of ``.sandbox/state.json``'s tokens."""
    tokens = {}
    for block, key in keys.items():
        id_name, secret_name = _token_names(block)
        tokens[id_name], tokens[secret_name] = key.access_key_id, key.secret_access_key
    return tokens


def key_from_tokens(tokens: Mapping[str, str], block: str) -> AccessKey | None:
    """The access key of ``block`` recorded in ``tokens``, if any."""
    id_name, secret_name = _token_names(block)
    if id_name in tokens and secret_name in tokens:
        return AccessKey(tokens[id_name], tokens[secret_name])
    return None


# ---- bootstrap on a moto that enforces IAM --------------------------------------------------

def bootstrap_admin(endpoint: str) -> AccessKey:
    """Create the admin user, its policy and key with moto's `BOOTSTRAP_REQUESTS` unauthenticated
    requests; then check that moto refuses an unknown key. Only on a freshly started moto."""
    from botocore.exceptions import BotoCoreError, ClientError

    iam = sandbox_client("iam", endpoint)
    try:
        iam.create_user(UserName=ADMIN_USER)
        iam.put_user_policy(UserName=ADMIN_USER, PolicyName=POLICY_NAME,
                            PolicyDocument=json.dumps(admin_policy()))
        created = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
    except (BotoCoreError, ClientError) as exc:
        raise SandboxError(f"could not create the sandbox admin on moto at {endpoint} (moto "
                           f"must be fresh, started with INITIAL_NO_AUTH_ACTION_COUNT="
                           f"{BOOTSTRAP_REQUESTS}): {exc}") from exc
    if caller_arn(endpoint, DUMMY_KEY) is not None:
        raise SandboxError(f"moto at {endpoint} accepts any key: it does not enforce IAM")
    return AccessKey(created["AccessKeyId"], created["SecretAccessKey"])


def caller_arn(endpoint: str, key: AccessKey) -> str | None:
    """Whose key ``key`` is, per moto (``sts:GetCallerIdentity``); None if moto refuses it."""
    from botocore.exceptions import ClientError

    try:
        return str(sandbox_client("sts", endpoint, key).get_caller_identity()["Arn"])
    except ClientError:
        return None


def is_admin_key(endpoint: str, key: AccessKey | None) -> bool:
    """Whether moto at ``endpoint`` enforces IAM and knows ``key`` as the sandbox admin's."""
    if key is None or caller_arn(endpoint, DUMMY_KEY) is not None:
        return False
    arn = caller_arn(endpoint, key)
    return arn is not None and arn.endswith(f":user/{ADMIN_USER}")


def ensure_principals(endpoint: str, admin: AccessKey, principals: Iterable[Principal],
                      known: Mapping[str, AccessKey]) -> dict[str, AccessKey]:
    """Make moto hold every principal with its installed policy and one access key (idempotent).

    A key in ``known`` (by block) that moto still has is kept; otherwise the user's keys are
    replaced by a new one. Returns the key of every principal, by block.
    """
    known = {**known, ADMIN_BLOCK: admin}  # never replace the key this call signs with
    iam = sandbox_client("iam", endpoint, admin)
    existing = {user["UserName"] for page in iam.get_paginator("list_users").paginate()
                for user in page["Users"]}
    keys: dict[str, AccessKey] = {}
    for principal in principals:
        if principal.user not in existing:
            iam.create_user(UserName=principal.user)
        iam.put_user_policy(UserName=principal.user, PolicyName=POLICY_NAME,
                            PolicyDocument=json.dumps(principal.installed_policy))
        held = [k["AccessKeyId"] for k in
                iam.list_access_keys(UserName=principal.user)["AccessKeyMetadata"]]
        key = known.get(principal.block)
        if key is None or key.access_key_id not in held:
            for stale in held:
                iam.delete_access_key(UserName=principal.user, AccessKeyId=stale)
            created = iam.create_access_key(UserName=principal.user)["AccessKey"]
            key = AccessKey(created["AccessKeyId"], created["SecretAccessKey"])
        keys[principal.block] = key
    return keys
