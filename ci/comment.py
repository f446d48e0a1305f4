"""The review where reviewers look: one Markdown summary per model on the pull request, edited in place on every push.

The train job runs ``python -m ci comment MODEL`` after storing its artifacts. The comment carries a hidden marker
per model folder (``<!-- modelops-review:abalone_model -->``), so the next push finds and updates it instead of
adding another. It needs ``GITHUB_TOKEN`` (from a CircleCI context: never a parameter, never an artifact) and a pull
request: ``CIRCLE_PULL_REQUEST``, else the open pull request of ``CIRCLE_BRANCH``. Without either it prints one
line saying why and succeeds: a push with no pull request has nowhere to post.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ci.artifacts import Artifacts, ModelReview, fmt, model_reviews
from ci.github import API_URL, GitHub

MARKER = "<!-- modelops-review:{model} -->"
#: Where the train job stores the artifacts folder (ci/circleci.py's store_artifacts destination).
ARTIFACTS_DESTINATION = "artifacts"
BADGES = {"APPROVE": "✅", "HOLD": "⏸️", "REJECT": "❌", "FAILED": "❌", "PENDING": "⏳"}
_PULL = re.compile(r"^https://[^/]+/([^/]+/[^/]+)/pull/(\d+)/?$")


@dataclass(frozen=True)
class PullRequest:
    repo: str  # owner/name
    number: int


def front_page_url(env: Mapping[str, str], model: str | None = None) -> str | None:
    """The front page in this CircleCI job's artifacts (CircleCI's documented pattern), or None outside CircleCI.

    ``https://output.circle-artifacts.com/output/job/$CIRCLE_WORKFLOW_JOB_ID/artifacts/$CIRCLE_NODE_INDEX/<path>``
    """
    job = env.get("CIRCLE_WORKFLOW_JOB_ID")
    if not job:
        return None
    anchor = f"#{model}" if model else ""
    return (f"https://output.circle-artifacts.com/output/job/{job}/artifacts/{env.get('CIRCLE_NODE_INDEX') or 0}/"
            f"{ARTIFACTS_DESTINATION}/index.html{anchor}")


def pull_request(env: Mapping[str, str], client: GitHub | None = None) -> PullRequest | None:
    """The pull request this build belongs to: ``CIRCLE_PULL_REQUEST``, else (with a client) the open pull request
    whose head is ``CIRCLE_BRANCH`` (CircleCI's GitHub App integration does not set CIRCLE_PULL_REQUEST)."""
    match = _PULL.match(env.get("CIRCLE_PULL_REQUEST") or "")
    if match:
        return PullRequest(match.group(1), int(match.group(2)))
    owner, name, branch = (env.get(k) for k in ("CIRCLE_PROJECT_USERNAME", "CIRCLE_PROJECT_REPONAME", "CIRCLE_BRANCH"))
    if client is None or not (owner and name and branch):
        return None
    numbers = client.open_pull_requests(f"{owner}/{name}", branch)
    return PullRequest(f"{owner}/{name}", min(numbers)) if numbers else None


def review_markdown(review: ModelReview, *, front_page: str | None = None, job_url: str | None = None,
                    commit: str | None = None) -> str:
    """The comment: verdict, the rule that decided, metrics with deltas and intervals, gates, notes and links."""
    version = f" v{review.version}" if review.version is not None else ""
    lines = [MARKER.format(model=review.model),
             f"### {BADGES.get(review.verdict, '')} {review.model}: {review.verdict}{version}", "",
             review.verdict_line]
    if review.decided_by:
        lines += ["", f"Rule that decided: *{review.decided_by}*"]
    if review.metrics:
        champion = f"champion v{review.champion_version}" if review.champion_version else "champion"
        lines += ["", f"| metric | {('v' + str(review.version)) if review.version else 'challenger'} | {champion} "
                      f"| improvement | 95% interval | |", "|---|---:|---:|---:|:---:|---|"]
        for m in review.metrics:
            name = f"**{m['metric']}**" if m.get("gated") else m["metric"]
            interval = f"[{m['ci95'][0]:+.4g}, {m['ci95'][1]:+.4g}]" if m.get("ci95") else "-"
            improvement = "-" if m.get("improvement") is None else f"{m['improvement']:+.4g}"
            champion_value = "-" if m.get("champion") is None else fmt(m["champion"])
            lines.append(f"| {name} | {fmt(m['value'])} | {champion_value} | {improvement} | {interval} | "
                         f"{m.get('change') if m.get('change') != '-' else ''} |")
        method = review.bootstrap
        lines += ["", "Improvements are positive when the challenger is better; **bold**: watched metrics."
                  + (f" Intervals: paired bootstrap on the same {method['rows']} test rows, {method['resamples']} "
                     f"resamples." if method else "")]
    if review.gates:
        gates = " · ".join(f"{'✅' if g['passed'] else '❌'} {g['metric']} = {fmt(g['value'])} ({g['threshold']})"
                           for g in review.gates)
        lines += ["", f"Quality gates: {gates}"]
    if review.notes:
        lines += [""] + [f"- {note}" for note in review.notes]
    links = []
    if front_page:
        links.append(f"**[Open the review page]({front_page})** (plots and every executed notebook)")
    if job_url:
        links.append(f"[CircleCI job]({job_url})")
    if commit:
        links.append(f"commit `{commit[:12]}`")
    if links:
        lines += ["", " · ".join(links)]
    if review.approve_command:
        lines += ["", f"To approve v{review.version}: approve the `request-deployment` job of this workflow in "
                      f"CircleCI (or `{review.approve_command}`)."]
    lines += ["", "<sub>Posted by modelops from the train job; edited in place on every push.</sub>"]
    return "\n".join(lines) + "\n"


def post_review(model: str, artifacts: Artifacts, env: Mapping[str, str] | None = None, *,
                client: GitHub | None = None) -> str:
    """Post (or update) the model's review comment on its pull request.

    Returns:
        One line saying what was done, or why nothing was (no token, no pull request, no review yet).

    Raises:
        GitHubError: GitHub refused or failed the request (after waiting out rate limits).
    """
    env = os.environ if env is None else env
    token = env.get("GITHUB_TOKEN")
    if not token:
        return (f"{model}: no GITHUB_TOKEN in the environment: not commenting (add it to the CircleCI context of "
                f"the train job)")
    client = client or GitHub(token, api=env.get("GITHUB_API_URL") or API_URL)
    pr = pull_request(env, client)
    if pr is None:
        return f"{model}: this build belongs to no open pull request: not commenting"
    review = next((r for r in model_reviews(artifacts.runs()) if r.model == model), None)
    if review is None:
        return f"{model}: no notebook run of this model in {artifacts.root}: nothing to post"
    body = review_markdown(review, front_page=front_page_url(env, model), job_url=env.get("CIRCLE_BUILD_URL"),
                           commit=env.get("CIRCLE_SHA1"))
    comment, created = client.upsert_comment(pr.repo, pr.number, MARKER.format(model=model), body)
    return f"{model}: {'posted' if created else 'updated'} the review on {pr.repo}#{pr.number}: {comment.url}"
