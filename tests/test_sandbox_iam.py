"""Least privilege per phase, for real: the sandbox's moto enforces the IAM policies of
``deployments/sandbox/iam.py`` (real moto server, real boto3 calls signed with each user's key).

Also pinned here: what moto does *not* enforce (resource scoping of DynamoDB and Route53,
conditions), so that a claim in iam.py's docstring that stops being true fails a test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from deployments.sandbox import iam
from deployments.sandbox.aws import DUMMY_KEY, AccessKey, sandbox_client
from deployments.sandbox.launcher import SANDBOX_BACKEND, SANDBOX_ZONE, Sandbox, SandboxState

REPO_ROOT = Path(__file__).resolve().parent.parent
BUCKET = SANDBOX_BACKEND.bucket
TABLE = SANDBOX_BACKEND.lock_table
OTHER_ENVIRONMENTS = {"dev": ("staging", "prod"), "staging": ("dev", "prod"),
                      "prod": ("dev", "staging")}


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The sandbox's own moto, set up by ``Sandbox.up`` (IAM enforced), for this module."""
    sandbox = Sandbox(tmp_path_factory.mktemp("iam-sandbox"), source=REPO_ROOT)
    sandbox.up(services=("moto",), register_blocks=False)
    admin = sandbox.aws_client("s3")
    for env in iam.ENVIRONMENTS:  # every environment has a state, as after its first apply
        admin.put_object(Bucket=BUCKET, Key=iam.state_key(env),
                         Body=json.dumps({"version": 4, "serial": 1, "lineage": env}).encode())
    try:
        yield sandbox
    finally:
        sandbox.down()


@pytest.fixture(scope="module")
def endpoint(box: Sandbox) -> str:
    return SandboxState.load(box.state_file).services["moto"].url


def refused(call: Callable[[], Any]) -> ClientError:
    """Run ``call``; it must be refused by moto (a 4xx/5xx answer). Returns the error."""
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value


def access_denied(call: Callable[[], Any]) -> None:
    """``call`` is refused for lack of permission: 403 AccessDenied (DynamoDB's answer comes as
    IAM's XML error, which botocore cannot parse for a JSON service: code "403", text inside;
    Route53's as an empty 403, so those tests also show the same user allowed a neighbour call)."""
    error = refused(call).response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403, error
    code, message = error["Error"].get("Code", ""), error["Error"].get("Message", "")
    assert code in ("AccessDenied", "403", ""), error
    if code == "403":
        assert "AccessDenied" in message and "is not authorized to perform" in message


def lock_item(env: str) -> dict[str, dict[str, str]]:
    """The item terraform's S3 backend writes while it holds ``env``'s state lock."""
    return {"LockID": {"S": f"{BUCKET}/{iam.state_key(env)}"},
            "Info": {"S": json.dumps({"ID": str(uuid.uuid4()), "Operation": "OperationTypePlan",
                                      "Who": "test@sandbox"})}}


def zone_id(box: Sandbox) -> str:
    zones = box.aws_client("route53").list_hosted_zones_by_name(DNSName=SANDBOX_ZONE + ".")
    return str(zones["HostedZones"][0]["Id"]).split("/")[-1]


def upsert(record: str, value: str) -> dict[str, Any]:
    return {"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
        "Name": record, "Type": "CNAME", "TTL": 60, "ResourceRecords": [{"Value": value}]}}]}


# ---- the policies as written -----------------------------------------------------------------

def test_policies_name_each_environments_own_state_key_as_its_backend_hcl_does():
    for env in iam.ENVIRONMENTS:
        backend = (REPO_ROOT / "terraform" / "environments" / env / "backend.hcl").read_text()
        assert f'key            = "{iam.state_key(env)}"' in backend
        assert f'bucket         = "{BUCKET}"' in backend
        assert f'dynamodb_table = "{TABLE}"' in backend


def _s3(policy: dict[str, Any]) -> list[tuple[str, str]]:
    """(action, resource) of every S3 grant in ``policy``."""
    pairs = []
    for statement in policy["Statement"]:
        resources = statement["Resource"]
        for action in statement["Action"]:
            for resource in resources if isinstance(resources, list) else [resources]:
                if action.startswith("s3:") or action == "*":
                    pairs.append((action, resource))
    return pairs


def test_plan_users_may_not_write_any_object_and_apply_users_only_their_own_key():
    principals = {p.block: p for p in iam.sandbox_principals(SANDBOX_BACKEND, "Z0")}
    assert tuple(principals) == iam.sandbox_blocks()
    for env in iam.ENVIRONMENTS:
        own = f"arn:aws:s3:::{BUCKET}/{iam.state_key(env)}"
        plan = _s3(principals[iam.plan_block(env)].installed_policy)
        assert sorted(plan) == sorted([("s3:ListBucket", f"arn:aws:s3:::{BUCKET}"),
                                       ("s3:GetObject", own)])
        apply = _s3(principals[iam.apply_block(env)].installed_policy)
        saved = f"arn:aws:s3:::{BUCKET}/gitops-plans/{env}/*"  # plans waiting for approval
        assert sorted(apply) == sorted(plan + [("s3:PutObject", own)] + [
            (action, saved) for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject")])
    assert _s3(principals[iam.NEW_ENVIRONMENT_PLAN_BLOCK].installed_policy) == []
    # Only statements moto cannot scope are widened in what moto holds; S3 stays exact.
    for principal in principals.values():
        assert _s3(principal.installed_policy) == _s3(principal.policy)


# ---- plan users --------------------------------------------------------------------------------

@pytest.mark.parametrize("env", iam.ENVIRONMENTS)
def test_plan_user_reads_its_state_and_takes_the_lock_but_may_not_write_its_state(box, env):
    s3 = box.aws_client("s3", iam.plan_block(env))
    dynamodb = box.aws_client("dynamodb", iam.plan_block(env))
    key = iam.state_key(env)

    listed = s3.list_objects_v2(Bucket=BUCKET)  # terraform init lists the bucket
    assert key in {o["Key"] for o in listed["Contents"]}
    assert json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())["version"] == 4
    s3.head_object(Bucket=BUCKET, Key=key)

    # the lock, as terraform's S3 backend takes and releases it during a plan
    assert dynamodb.describe_table(TableName=TABLE)["Table"]["TableName"] == TABLE
    item = lock_item(env)
    dynamodb.put_item(TableName=TABLE, Item=item,
                      ConditionExpression="attribute_not_exists(LockID)")
    held = dynamodb.get_item(TableName=TABLE, Key={"LockID": item["LockID"]}, ConsistentRead=True)
    assert held["Item"]["Info"] == item["Info"]
    dynamodb.delete_item(TableName=TABLE, Key={"LockID": item["LockID"]})
    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key={"LockID": item["LockID"]})

    access_denied(lambda: s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}"))
    access_denied(lambda: s3.put_object(Bucket=BUCKET, Key=f"expense/{env}/other", Body=b"{}"))
    for other in OTHER_ENVIRONMENTS[env]:
        access_denied(lambda: s3.get_object(Bucket=BUCKET, Key=iam.state_key(other)))
    access_denied(lambda: s3.delete_object(Bucket=BUCKET, Key=key))


def test_plan_user_reads_route53_and_may_not_change_it(box):
    route53 = box.aws_client("route53", iam.plan_block("staging"))
    zone = zone_id(box)
    assert route53.list_hosted_zones()["HostedZones"]
    route53.get_hosted_zone(Id=zone)
    route53.list_resource_record_sets(HostedZoneId=zone)
    access_denied(lambda: route53.change_resource_record_sets(
        HostedZoneId=zone, ChangeBatch=upsert(f"x.{SANDBOX_ZONE}", "plan.example")))


# ---- apply users -------------------------------------------------------------------------------

def test_dev_apply_user_writes_devs_state_and_may_not_touch_prods(box):
    s3 = box.aws_client("s3", iam.apply_block("dev"))
    admin = box.aws_client("s3")

    def versions(env: str) -> int:
        found = admin.list_object_versions(Bucket=BUCKET, Prefix=iam.state_key(env))
        return len(found.get("Versions", []))

    before = versions("dev")
    body = json.dumps({"version": 4, "serial": 2, "lineage": "dev"}).encode()
    written = s3.put_object(Bucket=BUCKET, Key=iam.state_key("dev"), Body=body,
                            ServerSideEncryption="AES256")  # as `encrypt = true` does
    assert written["VersionId"]  # the versioned bucket keeps the previous state
    assert versions("dev") == before + 1
    assert s3.get_object(Bucket=BUCKET, Key=iam.state_key("dev"))["Body"].read() == body

    prod_before = versions("prod")
    for other in ("prod", "staging"):
        access_denied(lambda: s3.get_object(Bucket=BUCKET, Key=iam.state_key(other)))
        access_denied(lambda: s3.put_object(Bucket=BUCKET, Key=iam.state_key(other), Body=b"{}"))
    assert versions("prod") == prod_before
    # nothing beyond writing new versions: no reading or deleting old ones
    access_denied(lambda: s3.list_object_versions(Bucket=BUCKET))
    access_denied(lambda: s3.delete_object(Bucket=BUCKET, Key=iam.state_key("dev")))


def test_apply_user_changes_records_of_the_sandbox_zone(box):
    route53 = box.aws_client("route53", iam.apply_block("prod"))
    zone = zone_id(box)
    change = route53.change_resource_record_sets(
        HostedZoneId=zone, ChangeBatch=upsert(f"iam-test.{SANDBOX_ZONE}", "lb.example"))
    assert route53.get_change(Id=change["ChangeInfo"]["Id"])["ChangeInfo"]["Status"] == "INSYNC"
    names = {r["Name"] for r in route53.list_resource_record_sets(HostedZoneId=zone)
             ["ResourceRecordSets"]}
    assert f"iam-test.{SANDBOX_ZONE}." in names
    access_denied(lambda: route53.create_hosted_zone(Name="elsewhere.internal.",
                                                     CallerReference=str(uuid.uuid4())))


def test_only_the_environments_apply_user_reaches_its_plans_waiting_for_approval(box):
    """A sealed plan in the state bucket (gitops.planstore) is the apply credentials' alone."""
    key = "gitops-plans/prod/run-1/abc.tfplan.enc"
    apply = box.aws_client("s3", iam.apply_block("prod"))
    apply.put_object(Bucket=BUCKET, Key=key, Body=b"sealed")
    assert apply.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"sealed"
    for other in (iam.plan_block("prod"), iam.apply_block("staging"), iam.plan_block("staging"),
                  iam.NEW_ENVIRONMENT_PLAN_BLOCK):
        s3 = box.aws_client("s3", other)
        access_denied(lambda: s3.get_object(Bucket=BUCKET, Key=key))
        access_denied(lambda: s3.put_object(Bucket=BUCKET, Key=key, Body=b"swapped"))
        access_denied(lambda: s3.delete_object(Bucket=BUCKET, Key=key))
    apply.delete_object(Bucket=BUCKET, Key=key)


# ---- the new-environment plan user -------------------------------------------------------------

def test_new_environment_plan_user_has_no_access_to_the_state_backend(box):
    block = iam.NEW_ENVIRONMENT_PLAN_BLOCK
    s3 = box.aws_client("s3", block)
    dynamodb = box.aws_client("dynamodb", block)
    access_denied(lambda: s3.list_objects_v2(Bucket=BUCKET))
    for env in iam.ENVIRONMENTS:
        access_denied(lambda: s3.get_object(Bucket=BUCKET, Key=iam.state_key(env)))
    access_denied(lambda: s3.put_object(Bucket=BUCKET, Key="expense/new/terraform.tfstate",
                                        Body=b"{}"))
    access_denied(lambda: dynamodb.put_item(TableName=TABLE, Item=lock_item("new")))
    access_denied(lambda: dynamodb.get_item(TableName=TABLE,
                                            Key={"LockID": lock_item("new")["LockID"]}))
    route53 = box.aws_client("route53", block)
    assert route53.list_hosted_zones()["HostedZones"]
    access_denied(lambda: route53.change_resource_record_sets(
        HostedZoneId=zone_id(box), ChangeBatch=upsert(f"new.{SANDBOX_ZONE}", "x.example")))


# ---- credentials ---------------------------------------------------------------------------

def test_unknown_wrong_and_missing_keys_are_refused_after_bootstrap(box, endpoint):
    unknown = AccessKey("AKIAUNKNOWNSANDBOX00", "not-a-secret")
    for key in (DUMMY_KEY, unknown):
        error = refused(lambda: sandbox_client("s3", endpoint, key).list_objects_v2(Bucket=BUCKET))
        assert error.response["Error"]["Code"] == "InvalidAccessKeyId"
        error = refused(lambda: sandbox_client("iam", endpoint, key).list_users())
        assert error.response["Error"]["Code"] == "InvalidClientTokenId"
        refused(lambda: sandbox_client("dynamodb", endpoint, key).list_tables())
        refused(lambda: sandbox_client("route53", endpoint, key).list_hosted_zones())
        assert iam.caller_arn(endpoint, key) is None

    plan = box.aws_key(iam.plan_block("dev"))
    wrong = AccessKey(plan.access_key_id, plan.secret_access_key[::-1])
    error = refused(lambda: sandbox_client("s3", endpoint, wrong).get_object(
        Bucket=BUCKET, Key=iam.state_key("dev")))
    assert error.response["Error"]["Code"] == "SignatureDoesNotMatch"

    import boto3

    unsigned = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                            config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}))
    refused(lambda: unsigned.get_object(Bucket=BUCKET, Key=iam.state_key("prod")))
    refused(lambda: unsigned.list_objects_v2(Bucket=BUCKET))  # moto answers 500 here

    # moto's unauthenticated budget is spent: nobody can make themselves a user any more
    refused(lambda: sandbox_client("iam", endpoint).create_user(UserName="intruder"))
    # and plan users cannot grant themselves more
    access_denied(lambda: box.aws_client("iam", iam.plan_block("dev")).put_user_policy(
        UserName=iam.plan_block("dev"), PolicyName="more",
        PolicyDocument=json.dumps(iam.admin_policy())))


def test_every_block_key_is_its_own_users(box, endpoint):
    for block in iam.sandbox_blocks():
        arn = iam.caller_arn(endpoint, box.aws_key(block))
        assert arn == f"arn:aws:iam::{iam.ACCOUNT_ID}:user/{iam.user_name(block)}"


# ---- what moto does not enforce (pinned, so the docstring stays true) --------------------------

def test_moto_checks_dynamodb_and_route53_against_any_resource(box, endpoint):
    """A statement naming the table's or zone's ARN never matches in moto (so iam.moto_form
    widens them), and the widened one allows every table: scoping is not enforced here."""
    admin_iam = box.aws_client("iam")
    user = f"scoped-{uuid.uuid4().hex[:8]}"
    admin_iam.create_user(UserName=user)
    written = iam.apply_policy("dev", SANDBOX_BACKEND, zone_id(box))  # not moto_form-ed
    admin_iam.put_user_policy(UserName=user, PolicyName="as-written",
                              PolicyDocument=json.dumps(written))
    created = admin_iam.create_access_key(UserName=user)["AccessKey"]
    scoped = AccessKey(created["AccessKeyId"], created["SecretAccessKey"])
    try:
        s3 = sandbox_client("s3", endpoint, scoped)
        s3.get_object(Bucket=BUCKET, Key=iam.state_key("dev"))  # S3 ARNs: evaluated
        access_denied(lambda: sandbox_client("dynamodb", endpoint, scoped).get_item(
            TableName=TABLE, Key={"LockID": lock_item("dev")["LockID"]}))
        route53 = sandbox_client("route53", endpoint, scoped)
        route53.list_hosted_zones()  # granted on "*": allowed
        access_denied(lambda: route53.change_resource_record_sets(  # granted on the zone's ARN
            HostedZoneId=zone_id(box), ChangeBatch=upsert(f"scoped.{SANDBOX_ZONE}", "x.example")))
    finally:
        admin_iam.delete_access_key(UserName=user, AccessKeyId=scoped.access_key_id)
        admin_iam.delete_user_policy(UserName=user, PolicyName="as-written")
        admin_iam.delete_user(UserName=user)

    other = f"other-{uuid.uuid4().hex[:8]}"
    box.aws_client("dynamodb").create_table(
        TableName=other, KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST")
    try:
        box.aws_client("dynamodb", iam.plan_block("dev")).put_item(TableName=other,
                                                                   Item=lock_item("dev"))
    finally:
        box.aws_client("dynamodb").delete_table(TableName=other)


def test_moto_does_not_evaluate_conditions(box, endpoint):
    """An Allow whose Condition the request does not meet still allows in moto."""
    admin_iam = box.aws_client("iam")
    user = f"cond-{uuid.uuid4().hex[:8]}"
    admin_iam.create_user(UserName=user)
    admin_iam.put_user_policy(UserName=user, PolicyName="kms-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{BUCKET}/conditions/*",
            "Condition": {"StringEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}}]}))
    created = admin_iam.create_access_key(UserName=user)["AccessKey"]
    key = AccessKey(created["AccessKeyId"], created["SecretAccessKey"])
    try:
        sandbox_client("s3", endpoint, key).put_object(Bucket=BUCKET, Key="conditions/plain",
                                                        Body=b"no kms header")
    finally:
        admin_iam.delete_access_key(UserName=user, AccessKeyId=key.access_key_id)
        admin_iam.delete_user_policy(UserName=user, PolicyName="kms-only")
        admin_iam.delete_user(UserName=user)
        box.aws_client("s3").delete_object(Bucket=BUCKET, Key="conditions/plain")


# ---- terraform itself with each user's key ----------------------------------------------------

def _terraform(work: Path, key: AccessKey, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    env.update(AWS_ACCESS_KEY_ID=key.access_key_id, AWS_SECRET_ACCESS_KEY=key.secret_access_key,
               AWS_DEFAULT_REGION="us-east-1", TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1",
               TF_INPUT="0", TF_DATA_DIR=str(work / f".terraform-{key.access_key_id}"))
    binary = Path(sys.executable).with_name("terraform")
    return subprocess.run([str(binary), *args, "-no-color"], cwd=work, env=env, text=True,
                          capture_output=True, timeout=120)


@pytest.mark.slow  # real terraform on the S3 backend
def test_terraform_plans_with_the_plan_key_and_applies_only_with_the_apply_key(box, endpoint,
                                                                                tmp_path):
    from deployments.sandbox.launcher import backend_overrides

    env = "staging"
    box.aws_client("s3").delete_object(Bucket=BUCKET, Key=iam.state_key(env))  # a first apply
    work = tmp_path / "config"
    shutil.copytree(REPO_ROOT / "tests" / "fixtures" / "terraform" / "outputs", work)
    backend = REPO_ROOT / "terraform" / "environments" / env / "backend.hcl"  # the real one
    init = ["init", "-reconfigure", f"-backend-config={backend}",
            *(f"-backend-config={k}={v}" for k, v in backend_overrides(endpoint).items())]
    plan_key, apply_key = box.aws_key(iam.plan_block(env)), box.aws_key(iam.apply_block(env))

    def ok(done: subprocess.CompletedProcess[str], *codes: int) -> str:
        assert done.returncode in (codes or (0,)), done.stderr
        return done.stdout

    ok(_terraform(work, apply_key, *init))
    ok(_terraform(work, apply_key, "apply", "-auto-approve", "-var", "message=applied"))

    ok(_terraform(work, plan_key, *init))
    # a plan reads the state and takes and releases the lock: the plan key is enough
    ok(_terraform(work, plan_key, "plan", "-detailed-exitcode", "-var", "message=applied"), 0)
    ok(_terraform(work, plan_key, "plan", "-detailed-exitcode", "-var", "message=next"), 2)
    refused_apply = _terraform(work, plan_key, "apply", "-auto-approve", "-var", "message=next")
    assert refused_apply.returncode != 0
    assert "AccessDenied" in refused_apply.stderr, refused_apply.stderr
    # the lock was released (terraform unlocks after the failed write)
    items = box.aws_client("dynamodb").scan(TableName=TABLE)["Items"]
    assert not [i for i in items if "Info" in i and f"expense/{env}/" in i["LockID"]["S"]]

    prod_plan = box.aws_key(iam.plan_block("prod"))
    denied = _terraform(work, prod_plan, *init)  # prod's plan key on staging's state
    assert denied.returncode != 0 and "AccessDenied" in denied.stderr, denied.stderr


# ---- the Prefect blocks ------------------------------------------------------------------------

@pytest.mark.slow  # the session's sandbox with its blocks on the test Prefect server
def test_each_block_holds_its_users_key_and_points_at_the_sandboxs_moto(sandbox):
    from prefect_aws import AwsCredentials

    moto = SandboxState.load(sandbox.state_file).services["moto"].url
    for block in iam.sandbox_blocks():
        credentials = AwsCredentials.load(block, _sync=True)
        assert credentials.aws_client_parameters.endpoint_url == moto
        key = AccessKey(credentials.aws_access_key_id,
                        credentials.aws_secret_access_key.get_secret_value())
        assert key == sandbox.aws_key(block)
        assert iam.caller_arn(moto, key).endswith(f":user/{iam.user_name(block)}")

    # through prefect-aws's own client, as the flows build theirs
    s3 = AwsCredentials.load(iam.plan_block("prod"), _sync=True).get_s3_client()
    s3.list_objects_v2(Bucket=BUCKET)
    access_denied(lambda: s3.put_object(Bucket=BUCKET, Key=iam.state_key("prod"), Body=b"{}"))
    route53 = AwsCredentials.load(iam.plan_block("prod"), _sync=True).get_client("route53")
    assert route53.list_hosted_zones()["HostedZones"]  # a signed Route53 read works
