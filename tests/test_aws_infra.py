"""infra/aws.yml and `ci aws`: the template as generated, read, linted (cfn-lint, parliament) and created on moto's
CloudFormation; `ci aws check` with the stack and without it; `ci aws contexts`.

moto's CloudFormation does not create AWS::IAM::OIDCProvider nor AWS::S3::BucketPolicy (it says so and goes on),
and creates the bucket without its versioning, encryption and public access block: those are checked by reading
the template here and by cfn-lint. What only AWS can show (the OIDC exchange, IAM's evaluation of the policies,
the bucket policy's effect) is out of reach of these tests; `ci aws check` simulates the policies on a real account.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from click.testing import CliRunner

from ci import infra
from ci.aws import Check, Target, _permission_checks, contexts_text, example_resource, role_arn_of
from ci.iam import GRANTS, JOB_ROLES, ROLES, iam_actions, job_context, role_actions
from tests.support.paths import ROOT

ORG = "11111111-2222-3333-4444-555555555555"
PROJECT = "66666666-7777-8888-9999-000000000000"
TEMPLATE = ROOT / "infra" / "aws.yml"
#: What moto's CloudFormation skips (it warns "No Moto CloudFormation support for ..." and creates the rest).
MOTO_SKIPS = {"AWS::IAM::OIDCProvider", "AWS::S3::BucketPolicy"}


def loaded() -> dict:
    return yaml.safe_load(TEMPLATE.read_text())


def resolved(item, values: dict[str, str]):
    """``item`` with every plain Fn::Sub resolved from ``values`` (the policies as IAM would see them)."""
    if isinstance(item, dict):
        if set(item) == {"Fn::Sub"} and isinstance(item["Fn::Sub"], str):
            return re.sub(r"\$\{([^}]+)\}", lambda m: values[m[1]], item["Fn::Sub"])
        return {key: resolved(value, values) for key, value in item.items()}
    if isinstance(item, list):
        return [resolved(value, values) for value in item]
    return item


VALUES = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::StackName": "m",
          "Bucket": "modelops-123456789012-eu-west-1", "Prefix": "modelops",
          "ExecutionRole.Arn": "arn:aws:iam::123456789012:role/m-sagemaker"}


def policies() -> dict[str, dict]:
    """Every IAM policy document in the template, by where it is, resolved."""
    found = {}
    for name, resource in loaded()["Resources"].items():
        properties = resource.get("Properties", {})
        for policy in properties.get("Policies", []):
            found[f"{name}/{policy['PolicyName']}"] = resolved(policy["PolicyDocument"], VALUES)
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            found[name] = resolved(properties["PolicyDocument"], VALUES)
    return found


# -- the template, read ---------------------------------------------------------------------------------------


def test_the_checked_in_template_is_what_the_generator_writes_for_these_model_folders():
    assert not infra.is_stale(ROOT), "infra/aws.yml is out of date. Fix: python -m ci aws template"
    result = CliRunner().invoke(__import__("ci.cli", fromlist=["main"]).main, ["aws", "template", "--check"])
    assert result.exit_code == 0 and "up to date" in result.output


def test_no_policy_allows_a_wildcard_action_and_pass_role_goes_only_to_sagemaker():
    for where, document in policies().items():
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not [a for a in actions if a == "*" or a.endswith(":*")], where
            if "iam:PassRole" in actions:
                assert actions == ["iam:PassRole"], where
                assert statement["Resource"] == [VALUES["ExecutionRole.Arn"]], where
                assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
            if "*" in statement["Resource"]:  # only actions that support no resource-level permission
                assert set(actions) <= {
                    "sagemaker:ListModelPackages", "sagemaker:ListMonitoringExecutions",
                    "application-autoscaling:DescribeScalableTargets",
                    "application-autoscaling:DescribeScalingPolicies", "cloudwatch:PutMetricData",
                    "ecr:GetAuthorizationToken"}, where


def test_each_roles_policies_together_grant_exactly_its_actions_scoped_to_the_models():
    found = policies()
    models = infra.model_names(ROOT)
    assert models == ["abalone-model", "churn-model"]
    for key, role in ROLES.items():
        documents = [d for where, d in found.items() if where.startswith(role.logical_id)]
        assert len(documents) == 1 + len(models)  # shared inline, one managed per model
        granted = {a for d in documents for s in d["Statement"] for a in s["Action"]}
        assert granted == set(role_actions(key))
        resources = {r for d in documents for s in d["Statement"] for r in s["Resource"]}
        assert "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/churn-model" in resources or key == "release"
        assert f"arn:aws:s3:::{VALUES['Bucket']}/modelops/*" in resources
        for document in documents:
            assert len(json.dumps(document, separators=(",", ":"))) < 6144  # a managed policy's limit


def test_release_may_change_only_staging_endpoints_and_production_only_production_ones():
    found = policies()

    def resources(role: str, action: str) -> set[str]:
        return {r for where, d in found.items() if where.startswith(role) for s in d["Statement"]
                if action in s["Action"] for r in s["Resource"]}

    endpoint = "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/"
    assert resources("ReleaseRole", "sagemaker:UpdateEndpoint") == {
        f"{endpoint}abalone-model-staging", f"{endpoint}churn-model-staging",
        *(f"arn:aws:sagemaker:eu-west-1:123456789012:endpoint-config/{m}-staging-v*" for m in ("abalone-model",
                                                                                             "churn-model"))}
    assert {r for r in resources("ProductionRole", "sagemaker:UpdateEndpoint") if "endpoint/" in r} == {
        f"{endpoint}abalone-model", f"{endpoint}churn-model"}
    assert not resources("TrainRole", "sagemaker:UpdateEndpoint")


def test_processing_and_model_monitor_are_the_train_roles_on_the_models_names_and_their_images_pullable():
    found = policies()

    def resources(role: str, action: str) -> set[str]:
        return {r for where, d in found.items() if where.startswith(role) for s in d["Statement"]
                if action in s["Action"] for r in s["Resource"]}

    sm = "arn:aws:sagemaker:eu-west-1:123456789012:"
    assert resources("TrainRole", "sagemaker:CreateProcessingJob") == {
        f"{sm}processing-job/abalone-model-*", f"{sm}processing-job/churn-model-*"}
    # Reading back Model Monitor's executions: jobs SageMaker names, not after the model.
    assert resources("TrainRole", "sagemaker:DescribeProcessingJob") == {
        f"{sm}processing-job/abalone-model-*", f"{sm}processing-job/churn-model-*",
        f"{sm}processing-job/model-monitoring-*"}
    assert resources("TrainRole", "sagemaker:CreateMonitoringSchedule") == {
        f"{sm}monitoring-schedule/abalone-model-*", f"{sm}monitoring-schedule/churn-model-*"}
    assert resources("TrainRole", "sagemaker:DeleteDataQualityJobDefinition") == {
        f"{sm}data-quality-job-definition/abalone-model-*", f"{sm}data-quality-job-definition/churn-model-*"}
    # What people run by hand is no role's: the recurring schedule, the model-quality job.
    for action in ("sagemaker:UpdateMonitoringSchedule", "sagemaker:CreateModelQualityJobDefinition"):
        assert not any(resources(role.logical_id, action) for role in ROLES.values()), action
    execution = found["ExecutionRole/modelops-sagemaker"]["Statement"]
    images = {r for s in execution if "ecr:BatchGetImage" in s["Action"] for r in s["Resource"]}
    assert images == {"arn:aws:ecr:eu-west-1:*:repository/sagemaker-xgboost",
                      "arn:aws:ecr:eu-west-1:*:repository/sagemaker-model-monitor-analyzer",
                      "arn:aws:ecr:eu-west-1:123456789012:repository/modelops-processing"}


def test_the_roles_trust_only_this_organisations_project_through_circlecis_oidc_provider():
    template = loaded()
    provider = template["Resources"]["CircleCIOidcProvider"]
    assert provider["Condition"] == "CreateOidcProvider"  # or the existing one a parameter names
    assert provider["Properties"] == {"Url": {"Fn::Sub": "https://oidc.circleci.com/org/${CircleCIOrganizationId}"},
                                      "ClientIdList": [{"Ref": "CircleCIOrganizationId"}]}
    for role in ROLES.values():
        text, variables = template["Resources"][role.logical_id]["Properties"]["AssumeRolePolicyDocument"]["Fn::Sub"]
        document = json.loads(re.sub(r"\$\{(CircleCIOrganizationId|CircleCIProjectId)\}",
                                     lambda m: {"CircleCIOrganizationId": ORG, "CircleCIProjectId": PROJECT}[m[1]],
                                     text))
        [statement] = document["Statement"]
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Principal"] == {"Federated": "${ProviderArn}"}
        assert variables["ProviderArn"]["Fn::If"][0] == "CreateOidcProvider"
        assert statement["Condition"] == {
            "StringEquals": {f"oidc.circleci.com/org/{ORG}:aud": ORG},
            "StringLike": {f"oidc.circleci.com/org/{ORG}:sub": f"org/{ORG}/project/{PROJECT}/user/*"}}
    execution = template["Resources"]["ExecutionRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in execution] == [{"Service": "sagemaker.amazonaws.com"}]


def test_the_bucket_is_encrypted_versioned_private_and_tls_only():
    resources = loaded()["Resources"]
    bucket = resources["Bucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"}
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert resources["Bucket"]["DeletionPolicy"] == "Retain"
    [deny] = resources["BucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})


def test_the_outputs_are_what_a_context_and_sagemaker_yml_need():
    outputs = loaded()["Outputs"]
    assert set(outputs) == {"TrainRoleArn", "ReleaseRoleArn", "ProductionRoleArn", "ExecutionRoleArn", "BucketName",
                            "Prefix", "Region", "OidcProviderArn"}
    assert all(output.get("Description") for output in outputs.values())


def test_the_circleci_config_runs_each_job_in_the_context_of_its_role():
    config = yaml.safe_load((ROOT / ".circleci" / "dynamic_config.yml").read_text())
    seen = {}
    for workflow in config["workflows"].values():
        for entry in workflow["jobs"]:
            if isinstance(entry, dict):
                [(job, options)] = entry.items()
                if "context" in options:
                    seen[job] = options["context"]
    assert seen == {job: job_context(job) for job in JOB_ROLES}


def test_s3_calls_map_to_the_iam_actions_aws_authorises_them_as():
    assert iam_actions("s3", "HeadObject") == ("s3:GetObject",)
    assert iam_actions("s3", "ListObjectsV2") == ("s3:ListBucket",)
    assert iam_actions("s3", "CopyObject") == ("s3:GetObject", "s3:PutObject")
    assert iam_actions("s3", "PutObject", {"Tagging": "a=b"}) == ("s3:PutObject", "s3:PutObjectTagging")
    assert iam_actions("sagemaker-runtime", "InvokeEndpoint") == ("sagemaker:InvokeEndpoint",)
    assert iam_actions("sagemaker", "CreateModel", {"ExecutionRoleArn": "r", "Tags": [{}]}) == (
        "sagemaker:CreateModel", "sagemaker:AddTags", "iam:PassRole")
    assert "iam:CreateServiceLinkedRole" in iam_actions("application-autoscaling", "RegisterScalableTarget")
    with pytest.raises(KeyError):
        iam_actions("ec2", "RunInstances")


# -- linters -------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cfn_lint_finds_nothing():
    pytest.importorskip("cfnlint", reason="cfn-lint is not installed (pip install -e '.[dev]')")
    from cfnlint.api import lint_file

    assert [str(match) for match in lint_file(TEMPLATE)] == []


def test_parliament_finds_nothing_in_any_policy():
    parliament = pytest.importorskip("parliament", reason="parliament is not installed (pip install -e '.[dev]')")
    for where, document in policies().items():
        findings = parliament.analyze_policy_string(json.dumps(document)).findings
        assert not findings, (where, [(f.issue, f.detail) for f in findings])


# -- on moto ---------------------------------------------------------------------------------------------------


def create_stack(name: str = "modelops") -> dict[str, str]:
    from tests.support.aws import moto_client

    cloudformation = moto_client("cloudformation")
    parameters = [{"ParameterKey": "CircleCIOrganizationId", "ParameterValue": ORG},
                  {"ParameterKey": "CircleCIProjectId", "ParameterValue": PROJECT}]
    cloudformation.create_stack(StackName=name, TemplateBody=TEMPLATE.read_text(),
                                Capabilities=["CAPABILITY_NAMED_IAM"], Parameters=parameters)
    [stack] = cloudformation.describe_stacks(StackName=name)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


@pytest.mark.slow  # moto's CloudFormation: seconds
@pytest.mark.filterwarnings("ignore:Tried to parse AWS::")
def test_the_stack_creates_on_moto_with_its_outputs_and_the_history_writes_to_its_bucket(aws):
    from modelops.entities import Event
    from tests.support.aws import moto_client, sagemaker_on_moto

    outputs = create_stack()
    account = "123456789012"
    assert outputs["BucketName"] == f"modelops-{account}-us-east-1" and outputs["Prefix"] == "modelops"
    assert outputs["ExecutionRoleArn"] == f"arn:aws:iam::{account}:role/modelops-sagemaker"
    assert {outputs[f"{r.logical_id}Arn"] for r in ROLES.values()} == {
        f"arn:aws:iam::{account}:role/modelops-{key}" for key in ROLES}
    created = {r["ResourceType"] for r in moto_client("cloudformation").list_stack_resources(
        StackName="modelops")["StackResourceSummaries"] if r["LogicalResourceId"]}
    assert {r["Type"] for r in loaded()["Resources"].values()} - created == MOTO_SKIPS
    iam = moto_client("iam")
    attached = {p["PolicyName"] for p in iam.list_attached_role_policies(RoleName="modelops-production")[
        "AttachedPolicies"]}
    assert attached == {"modelops-production-abalone-model", "modelops-production-churn-model"}
    # The history's conditional writes (If-None-Match) keep working in the stack's bucket, versioned as the
    # template says (moto does not apply VersioningConfiguration, so it is switched on here).
    moto_client("s3").put_bucket_versioning(Bucket=outputs["BucketName"], VersioningConfiguration={"Status": "Enabled"})
    ops = sagemaker_on_moto(bucket=None)
    ops.store.bucket = outputs["BucketName"]
    first = ops.history.append(Event(group="abalone-model", action="registered", version=1, at="2026-12-07T00:00:00"))
    second = ops.history.append(Event(group="abalone-model", action="Approved", version=1, at="2026-12-07T00:01:00"))
    assert (first.seq, second.seq, second.prev_hash) == (1, 2, first.hash)
    assert [e.action for e in ops.history.events("abalone-model")] == ["registered", "Approved"]
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="PreconditionFailed"):  # a second writer of event 2 is refused
        moto_client("s3").put_object(Bucket=outputs["BucketName"], Key="modelops/abalone-model/history/00000002.json",
                                     IfNoneMatch="*", Body=b"{}")


def cli(*args: str):
    from ci.cli import main

    return CliRunner().invoke(main, list(args))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Tried to parse AWS::")
def test_ci_aws_check_fails_without_the_stack_naming_what_is_missing_and_passes_with_it(aws, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("SAGEMAKER_EXECUTION_ROLE_ARN", "arn:aws:iam::123456789012:role/modelops-sagemaker")
    monkeypatch.setenv("MODELOPS_S3_BUCKET", "modelops-123456789012-us-east-1")
    monkeypatch.delenv("MODELOPS_SAGEMAKER_CONFIG", raising=False)
    without = cli("aws", "check")
    assert without.exit_code == 2, without.output
    lines = without.output.splitlines()
    assert lines[0].startswith("ok   credentials: arn:aws:sts::123456789012:user/moto")
    assert [line for line in lines if line.startswith(
        "FAIL bucket: s3://modelops-123456789012-us-east-1 does not exist. Fix: deploy infra/aws.yml")]
    assert ("FAIL execution role: arn:aws:iam::123456789012:role/modelops-sagemaker does not exist. Fix: deploy "
            "infra/aws.yml and use its ExecutionRoleArn output (SAGEMAKER_EXECUTION_ROLE_ARN)") in lines
    assert "ok   XGBoost image 3.2-0: 683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0" in lines

    missing = cli("aws", "check", "--stack", "modelops")
    assert missing.exit_code == 2 and "CloudFormation stack 'modelops'" in missing.output
    assert "Fix: deploy infra/aws.yml" in missing.output

    create_stack()
    passed = cli("aws", "check", "--stack", "modelops")
    assert passed.exit_code == 0, passed.output
    assert [line[:4] for line in passed.output.splitlines()] == ["ok  "] * 5 + ["skip"]
    assert "ok   bucket writable: under s3://modelops-123456789012-us-east-1/modelops/" in passed.output
    assert "trusts sagemaker.amazonaws.com" in passed.output
    assert "is none of the stack's roles; name the role to check with --role" in passed.output
    simulated = cli("aws", "check", "--stack", "modelops", "--role", "train")  # moto cannot simulate
    assert simulated.exit_code == 0 and "skip permissions: cannot simulate" in simulated.output


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Tried to parse AWS::")
def test_ci_aws_contexts_prints_each_contexts_variables_and_the_commands_that_store_them(aws):
    outputs = create_stack()
    result = cli("aws", "contexts", "--stack", "modelops")
    assert result.exit_code == 0, result.output
    text = result.output
    for key, role in ROLES.items():
        assert f"# {role.context}: {role.purpose}\nMODELOPS_AWS_ROLE_ARN={outputs[role.logical_id + 'Arn']}\n" in text
        assert (f"printf '%s' 'modelops' | circleci context store-secret --org-id {ORG} {role.context} "
                f"MODELOPS_S3_PREFIX") in text
        assert f"circleci context create --org-id {ORG} {role.context}" in text
    assert text.count(f"SAGEMAKER_EXECUTION_ROLE_ARN={outputs['ExecutionRoleArn']}") == 3
    assert text.count("AWS_DEFAULT_REGION=us-east-1") == 3
    assert text == contexts_text({**outputs, "CircleCIOrganizationId": ORG})


# -- the simulation, against IAM's answers -----------------------------------------------------------------------


def test_permissions_are_simulated_per_action_on_a_resource_the_backend_would_name():
    from botocore.stub import ANY, Stubber

    from tests.support.aws import moto_session

    iam = moto_session().client("iam", region_name="us-east-1")
    target = Target("eu-west-1", VALUES["ExecutionRole.Arn"], VALUES["Bucket"], "modelops", "stack m",
                    role_arns={key: f"arn:aws:iam::123456789012:role/m-{key}" for key in ROLES})
    caller = {"Arn": "arn:aws:sts::123456789012:assumed-role/m-release/modelops-deploy-abalone_model",
              "Account": "123456789012"}
    assert role_arn_of(caller["Arn"]) == "arn:aws:iam::123456789012:role/m-release"
    actions = role_actions("release")
    with Stubber(iam) as stub:
        for action in actions:
            decision = "implicitDeny" if action == "sagemaker:UpdateEndpoint" else "allowed"
            stub.add_response("simulate_principal_policy", {"EvaluationResults": [
                {"EvalActionName": action, "EvalDecision": decision}]},
                {"PolicySourceArn": "arn:aws:iam::123456789012:role/m-release", "ActionNames": [action],
                 "ResourceArns": ANY, "ContextEntries": ANY})
        checks = _permission_checks(iam, target, caller, ["abalone-model"], None)
    assert checks == [Check("permission sagemaker:UpdateEndpoint", "failed",
                            "implicitDeny on arn:aws:sagemaker:eu-west-1:123456789012:endpoint/abalone-model-staging "
                            "for arn:aws:iam::123456789012:role/m-release",
                            "deploy infra/aws.yml again (`python -m ci aws template` first if a model was added)")]
    admin = {"Arn": "arn:aws:iam::123456789012:user/admin", "Account": "123456789012"}
    with Stubber(iam) as stub:  # --role production: the stack's production role is simulated, not the caller
        for action in role_actions("production"):
            stub.add_response("simulate_principal_policy", {"EvaluationResults": [
                {"EvalActionName": action, "EvalDecision": "allowed"}]},
                {"PolicySourceArn": "arn:aws:iam::123456789012:role/m-production", "ActionNames": [action],
                 "ResourceArns": ANY, "ContextEntries": ANY})
        [passed] = _permission_checks(iam, target, admin, ["abalone-model"], "production")
    assert passed.line() == ("ok   permissions: arn:aws:iam::123456789012:role/m-production may make all 28 actions of "
                             "the production role's jobs (promote)")
    probe = f"arn:aws:s3:::{VALUES['Bucket']}/modelops/modelops-check"
    assert example_resource("objects", target, "1", "aws", "m") == probe
    assert example_resource("execution-role", target, "1", "aws", "m") == VALUES["ExecutionRole.Arn"]
    assert set(GRANTS) == set(ROLES)


def test_the_linters_are_in_the_dev_extra():
    pyproject = (ROOT / "pyproject.toml").read_text()
    dev = pyproject.split("dev = [", 1)[1].split("]\n", 1)[0]
    assert '"cfn-lint' in dev and '"parliament' in dev and "cloudformation" in dev
