"""`python -m ci aws`: the AWS side set up as code (infra/aws.yml) and checked from here.

``ci aws template`` writes infra/aws.yml (``--check``: exit 1 when stale); ``ci aws check [--stack NAME]`` checks
that what the sagemaker backend needs is there, one line per check, exit 2 when one fails; ``ci aws contexts
--stack NAME`` prints each CircleCI context's variables from the stack's outputs, and the commands that store them.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field

import click

from ci.iam import JOB_ROLES, RESOURCES, ROLES, role_actions
from modelops.errors import ConfigError

#: The context variables the stack's outputs fill (GITHUB_TOKEN is the person's to add to modelops-train).
CONTEXT_VARIABLES = {"AWS_DEFAULT_REGION": "Region", "SAGEMAKER_EXECUTION_ROLE_ARN": "ExecutionRoleArn",
                     "MODELOPS_S3_BUCKET": "BucketName", "MODELOPS_S3_PREFIX": "Prefix"}
PROBE_KEY = ".modelops-check"
#: Condition keys the simulation needs to match the policies' conditions.
_CONTEXT = {"iam:PassRole": ("iam:PassedToService", "sagemaker.amazonaws.com"),
            "iam:CreateServiceLinkedRole": ("iam:AWSServiceName", "sagemaker.application-autoscaling.amazonaws.com")}


@dataclass(frozen=True)
class Check:
    """One line of ``ci aws check``: what was checked, whether it held, and the fix when it did not."""

    what: str
    status: str  # passed | failed | skipped
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip"}[self.status]
        return f"{mark} {self.what}: {self.detail}" + (f". Fix: {self.fix}" if self.fix else "")


@dataclass
class Target:
    """Where the backend would work: region, execution role, bucket and prefix, and where they came from."""

    region: str
    role_arn: str
    bucket: str | None
    prefix: str
    source: str
    role_arns: dict[str, str] = field(default_factory=dict)  # the stack's CircleCI roles: key -> ARN


def stack_outputs(cloudformation, stack: str) -> dict[str, str]:
    """The outputs (and parameters) of the stack.

    Raises:
        ConfigError: no such stack, or it is not usable (the message names its status and the fix).
    """
    from modelops.backends.sagemaker.aws import describe_error

    try:
        [described] = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except Exception as exc:
        raise ConfigError(f"CloudFormation stack {stack!r}: {describe_error(exc)}. Fix: deploy infra/aws.yml "
                          f"(`aws cloudformation deploy --template-file infra/aws.yml --stack-name {stack} "
                          f"--capabilities CAPABILITY_NAMED_IAM --parameter-overrides CircleCIOrganizationId=... "
                          f"CircleCIProjectId=...`), or name the stack you deployed.") from exc
    if not described["StackStatus"].endswith("_COMPLETE") or "ROLLBACK" in described["StackStatus"]:
        raise ConfigError(f"CloudFormation stack {stack!r} is {described['StackStatus']}. Fix: look at its events "
                          f"(`aws cloudformation describe-stack-events --stack-name {stack}`) and deploy it again.")
    values = {p["ParameterKey"]: p.get("ParameterValue", "") for p in described.get("Parameters", [])}
    return {**values, **{o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}}


def target_from_stack(outputs: dict[str, str], stack: str) -> Target:
    return Target(region=outputs["Region"], role_arn=outputs["ExecutionRoleArn"], bucket=outputs["BucketName"],
                  prefix=outputs["Prefix"], source=f"stack {stack}",
                  role_arns={key: outputs[f"{role.logical_id}Arn"] for key, role in ROLES.items()})


def target_from_settings() -> Target:
    """As the backend reads them (environment, then sagemaker.yml).

    Raises:
        ConfigError: the backend is not configured (the message names what is missing).
    """
    from modelops.settings import sagemaker_settings

    settings = sagemaker_settings()
    return Target(settings.region, settings.role_arn, settings.bucket, settings.prefix, settings.source)


# -- the checks -------------------------------------------------------------------------------------------------


def run_checks(session, target: Target, container_versions: list[str], models: list[str],
               role: str | None = None) -> list[Check]:
    """Every check, in order; after failed credentials, none that would need them."""
    from modelops.backends.sagemaker.aws import describe_error

    checks = []
    try:
        caller = session.client("sts", region_name=target.region).get_caller_identity()
    except Exception as exc:
        return [Check("credentials", "failed", describe_error(exc),
                      "provide credentials through boto3's chain (AWS_PROFILE, the AWS_* variables, or CircleCI's "
                      "OIDC role through aws-cli/setup)")]
    checks.append(Check("credentials", "passed", f"{caller['Arn']} (account {caller['Account']}, region "
                                                 f"{target.region}, settings from {target.source})"))
    checks += _bucket_checks(session.client("s3", region_name=target.region), target)
    checks.append(_execution_role_check(session.client("iam", region_name=target.region), target))
    checks += [_image_check(target.region, version) for version in sorted(set(container_versions))]
    checks += _permission_checks(session.client("iam", region_name=target.region), target, caller, models, role)
    return checks


def _bucket_checks(s3, target: Target) -> list[Check]:
    from modelops.backends.sagemaker.aws import describe_error, error_code

    if not target.bucket:
        return [Check("bucket", "failed", "none configured (the backend would create sagemaker-<region>-<account>)",
                      "deploy infra/aws.yml and use `--stack`, or export MODELOPS_S3_BUCKET")]
    try:
        s3.head_bucket(Bucket=target.bucket)
    except Exception as exc:
        missing = error_code(exc) in ("404", "NoSuchBucket", "NotFound")
        found = "does not exist" if missing else describe_error(exc)
        return [Check("bucket", "failed", f"s3://{target.bucket} {found}",
                      "deploy infra/aws.yml (it creates the bucket) or export MODELOPS_S3_BUCKET naming yours"
                      if missing else "allow s3:ListBucket on it to these credentials")]
    checks = [Check("bucket", "passed", f"s3://{target.bucket} exists")]
    key = f"{target.prefix}/{PROBE_KEY}"
    try:
        s3.put_object(Bucket=target.bucket, Key=key, Body=b"written by python -m ci aws check\n")
    except Exception as exc:
        return [*checks, Check("bucket writable", "failed", f"s3://{target.bucket}/{key}: {describe_error(exc)}",
                               f"allow s3:PutObject on arn:aws:s3:::{target.bucket}/{target.prefix}/*")]
    return [*checks, Check("bucket writable", "passed", f"under s3://{target.bucket}/{target.prefix}/")]


def _execution_role_check(iam, target: Target) -> Check:
    from modelops.backends.sagemaker.aws import describe_error, error_code

    name = target.role_arn.rsplit("/", 1)[-1]
    try:
        document = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
    except Exception as exc:
        if error_code(exc) == "NoSuchEntity":
            return Check("execution role", "failed", f"{target.role_arn} does not exist",
                         "deploy infra/aws.yml and use its ExecutionRoleArn output (SAGEMAKER_EXECUTION_ROLE_ARN)")
        return Check("execution role", "skipped", f"cannot read {name}: {describe_error(exc)} (iam:GetRole)")
    if isinstance(document, str):
        from urllib.parse import unquote

        document = json.loads(unquote(document))
    if not _trusts(document, "sagemaker.amazonaws.com"):
        return Check("execution role", "failed", f"{target.role_arn} does not trust sagemaker.amazonaws.com",
                     "allow sts:AssumeRole to the service principal sagemaker.amazonaws.com in its trust policy")
    return Check("execution role", "passed", f"{target.role_arn} exists and trusts sagemaker.amazonaws.com")


def _trusts(document: dict, service: str) -> bool:
    statements = document.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        services = (statement.get("Principal") or {}).get("Service", [])
        actions = statement.get("Action", [])
        if statement.get("Effect") == "Allow" and service in ([services] if isinstance(services, str) else services) \
                and "sts:AssumeRole" in ([actions] if isinstance(actions, str) else actions):
            return True
    return False


def _image_check(region: str, version: str) -> Check:
    from modelops.backends.sagemaker import xgboost_image
    from modelops.errors import ModelOpsError

    try:
        return Check(f"XGBoost image {version}", "passed", xgboost_image(region, version))
    except ModelOpsError as exc:
        return Check(f"XGBoost image {version}", "failed", str(exc).split(". Fix: ")[0],
                     "set training.container_version in model.yml to a version the SageMaker SDK lists")


def role_arn_of(caller_arn: str) -> str:
    """``arn:aws:sts::1:assumed-role/NAME/session`` -> ``arn:aws:iam::1:role/NAME`` (a user's or role's ARN as is)."""
    found = re.match(r"arn:([^:]+):sts::(\d+):assumed-role/([^/]+)/", caller_arn)
    return f"arn:{found[1]}:iam::{found[2]}:role/{found[3]}" if found else caller_arn


def example_resource(kind: str, target: Target, account: str, partition: str, model: str) -> str:
    """A resource of ``kind`` as the backend would name it, for the simulation."""
    pattern = RESOURCES[kind]
    if pattern == "*":
        return "*"
    values = {"AWS::Partition": partition, "AWS::Region": target.region, "AWS::AccountId": account,
              "Bucket": target.bucket or "", "Prefix": target.prefix, "ExecutionRole.Arn": target.role_arn}
    text = re.sub(r"\$\{([^}]+)\}", lambda m: values[m[1]], pattern.replace("{model}", model))
    return text.replace("*", "modelops-check")


def _permission_checks(iam, target: Target, caller: dict, models: list[str], role: str | None) -> list[Check]:
    from modelops.backends.sagemaker.aws import describe_error

    caller_role = role_arn_of(caller["Arn"])
    named = role
    role = role or next((key for key, arn in target.role_arns.items() if arn == caller_role), None)
    if role is None:
        return [Check("permissions", "skipped", f"{caller_role} is none of the stack's roles; name the role to check "
                                                f"with --role ({', '.join(ROLES)})")]
    # --role with --stack simulates the stack's role (an administrator checking it); otherwise the caller's own.
    source = target.role_arns.get(role, caller_role) if named else caller_role
    if not models:
        return [Check("permissions", "skipped", "no model folder to name the resources after")]
    partition = caller["Arn"].split(":")[1]
    denied = []
    actions = role_actions(role)
    try:
        for action, kinds in actions.items():
            resource = example_resource(kinds[0], target, caller["Account"], partition, models[0])
            context = [{"ContextKeyName": key, "ContextKeyValues": [value], "ContextKeyType": "string"}
                       for key, value in [_CONTEXT[action]]] if action in _CONTEXT else []
            if action == "s3:ListBucket":
                context = [{"ContextKeyName": "s3:prefix", "ContextKeyValues": [f"{target.prefix}/{models[0]}/"],
                            "ContextKeyType": "string"}]
            [result] = iam.simulate_principal_policy(PolicySourceArn=source, ActionNames=[action],
                                                     ResourceArns=[resource], ContextEntries=context)[
                "EvaluationResults"]
            if result["EvalDecision"] != "allowed":
                denied.append((action, resource, result["EvalDecision"]))
    except Exception as exc:
        return [Check("permissions", "skipped", f"cannot simulate {source}'s policies: {describe_error(exc)} "
                                                f"(iam:SimulatePrincipalPolicy)")]
    jobs = ", ".join(job for job, key in JOB_ROLES.items() if key == role)
    if not denied:
        return [Check("permissions", "passed", f"{source} may make all {len(actions)} actions of the {role} role's "
                                               f"jobs ({jobs})")]
    return [Check(f"permission {action}", "failed", f"{decision} on {resource} for {source}",
                  "deploy infra/aws.yml again (`python -m ci aws template` first if a model was added)")
            for action, resource, decision in denied]


# -- the contexts ---------------------------------------------------------------------------------------------


def contexts_text(outputs: dict[str, str]) -> str:
    """Each context's variables, then the circleci commands that create the contexts and store them."""
    org = outputs.get("CircleCIOrganizationId") or "<ORG_ID>"
    lines, commands = [], []
    for role in ROLES.values():
        values = {"MODELOPS_AWS_ROLE_ARN": outputs[f"{role.logical_id}Arn"],
                  **{name: outputs[key] for name, key in CONTEXT_VARIABLES.items()}}
        lines += [f"# {role.context}: {role.purpose}", *(f"{name}={value}" for name, value in values.items()), ""]
        commands.append(f"circleci context create --org-id {org} {role.context}")
        commands += [f"printf '%s' '{value}' | circleci context store-secret --org-id {org} {role.context} {name}"
                     for name, value in values.items()]
    train = ROLES[JOB_ROLES["train"]].context
    notes = [f"# Add GITHUB_TOKEN to {train} yourself (the review comment); restrict "
             f"{ROLES['release'].context} and {ROLES['production'].context} to their security groups in "
             f"Organization Settings > Contexts."]
    return "\n".join([*lines, "# The commands that set them (circleci CLI, an organisation admin's token):",
                      *commands, *notes]) + "\n"


# -- the command group ------------------------------------------------------------------------------------------


def _session(region: str | None = None):
    import boto3

    return boto3.session.Session(region_name=region) if region else boto3.session.Session()


def _outputs(stack: str) -> dict[str, str]:
    session = _session()
    if not session.region_name:
        raise ConfigError("no AWS region to find the stack in. Fix: export AWS_REGION (or AWS_DEFAULT_REGION).")
    return stack_outputs(session.client("cloudformation"), stack)


@click.group("aws")
def group() -> None:
    """The AWS side: the CloudFormation template, checking an account, the CircleCI contexts."""


@group.command("template")
@click.option("--check", "check_only", is_flag=True, help="Exit 1 if infra/aws.yml differs from what would be written.")
def template(check_only) -> None:
    """Write infra/aws.yml from ci/iam.py and the model folders."""
    from ci import infra
    from modelops.settings import project_root

    root = project_root()
    if check_only:
        if infra.is_stale(root):
            click.echo(f"{infra.TEMPLATE} is out of date. Fix: python -m ci aws template", err=True)
            sys.exit(1)
        click.echo(f"{infra.TEMPLATE} is up to date")
        return
    click.echo(f"wrote {infra.TEMPLATE}" if infra.generate(root) else f"{infra.TEMPLATE} is up to date")


@group.command("check")
@click.option("--stack", default=None, help="Read the execution role, bucket and prefix from this stack's outputs.")
@click.option("--role", type=click.Choice(list(ROLES)), default=None,
              help="Simulate this role's calls (default: the stack's role the credentials are, if any).")
def check(stack, role) -> None:
    """Check credentials, bucket, execution role, XGBoost image and the role's permissions: one line each, exit 2
    when one fails."""
    from ci.infra import model_names
    from ci.models import discover_models
    from modelops.settings import project_root

    target = target_from_stack(_outputs(stack), stack) if stack else target_from_settings()
    folders = discover_models(project_root())
    checks = run_checks(_session(target.region), target, [f.config().training.container_version for f in folders],
                        model_names(project_root()), role)
    for item in checks:
        click.echo(item.line())
    if any(item.status == "failed" for item in checks):
        sys.exit(2)


@group.command("contexts")
@click.option("--stack", required=True, help="The deployed stack of infra/aws.yml.")
def contexts(stack) -> None:
    """Print each CircleCI context's variables from the stack's outputs, and the commands that store them."""
    click.echo(contexts_text(_outputs(stack)), nl=False)
