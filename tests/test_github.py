"""The review on the pull request: the GitHub client against a fake GitHub API on 127.0.0.1, and the comment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ci.artifacts import Artifacts, NotebookRun, model_reviews
from ci.comment import MARKER, front_page_url, post_review, pull_request, review_markdown
from ci.github import GitHub, GitHubError
from modelops.records import Gate, MetricComparison, ReviewRecord, TrainRecord
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow  # a fake GitHub server and the CLI in subprocesses

TOKEN = "ghp_secret-token-never-printed"
REPO = "acme/models"


class FakeGitHub:
    """GitHub's REST API as far as the client uses it: issue comments (paginated) and pulls, with scripted errors."""

    def __init__(self, page_size: int = 2):
        self.comments: dict[int, list[dict]] = {7: []}
        self.pulls = [{"number": 7, "head": {"ref": "better-abalone"}}]
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        self.failures: list[tuple[int, dict, dict]] = []  # (status, headers, body) answered before the next request
        self.page_size = page_size
        self.next_id = 100
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body, headers: dict | None = None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                fake.requests.append((self.command, self.path, self.headers.get("Authorization")))
                if fake.failures:
                    status, headers, body = fake.failures.pop(0)
                    return self._send(status, body, headers)
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"message": "Bad credentials"})
                path, _, query = self.path.partition("?")
                parts = path.strip("/").split("/")
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                if parts[:3] != ["repos", *REPO.split("/")]:
                    return self._send(404, {"message": "Not Found"})
                rest = parts[3:]
                if rest == ["pulls"] and self.command == "GET":
                    head = dict(p.split("=") for p in query.split("&"))["head"].replace("%3A", ":")
                    return self._send(200, [p for p in fake.pulls if f"acme:{p['head']['ref']}" == head])
                if len(rest) == 3 and rest[0] == "issues" and rest[2] == "comments":
                    number = int(rest[1])
                    if number not in fake.comments:
                        return self._send(404, {"message": "Not Found"})
                    if self.command == "POST":
                        comment = {"id": fake.next_id, "body": body["body"],
                                   "html_url": f"https://github.com/{REPO}/pull/{number}#issuecomment-{fake.next_id}"}
                        fake.next_id += 1
                        fake.comments[number].append(comment)
                        return self._send(201, comment)
                    page = int(dict(p.split("=") for p in query.split("&")).get("page", 1))
                    chunk = fake.comments[number][(page - 1) * fake.page_size: page * fake.page_size]
                    headers = {}
                    if page * fake.page_size < len(fake.comments[number]):
                        base = f"http://127.0.0.1:{fake.port}{path}"
                        headers["Link"] = f'<{base}?per_page=100&page={page + 1}>; rel="next"'
                    return self._send(200, chunk, headers)
                if len(rest) == 3 and rest[:2] == ["issues", "comments"] and self.command == "PATCH":
                    for comments in fake.comments.values():
                        for comment in comments:
                            if comment["id"] == int(rest[2]):
                                comment["body"] = body["body"]
                                return self._send(200, comment)
                    return self._send(404, {"message": "Not Found"})
                return self._send(404, {"message": "Not Found"})

            do_GET = do_POST = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def github():
    fake = FakeGitHub()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def client(fake: FakeGitHub, token: str = TOKEN, **kwargs) -> tuple[GitHub, list[float]]:
    waits: list[float] = []
    return GitHub(token, api=fake.url, sleep=waits.append, **kwargs), waits


def test_the_comment_is_created_then_found_by_its_marker_and_updated_in_place(github):
    gh, _ = client(github)
    for n in range(3):  # other people's comments, over two pages
        github.comments[7].append({"id": n + 1, "body": f"LGTM {n}", "html_url": ""})
    marker = MARKER.format(model="abalone_model")
    comment, created = gh.upsert_comment(REPO, 7, marker, f"{marker}\nfirst push")
    assert created and comment.url.endswith(f"#issuecomment-{comment.id}")
    github.comments[7].append({"id": 50, "body": "a reply after ours", "html_url": ""})
    again, created = gh.upsert_comment(REPO, 7, marker, f"{marker}\nsecond push")
    assert not created and again.id == comment.id
    assert [c["body"] for c in github.comments[7] if marker in c["body"]] == [f"{marker}\nsecond push"]  # one only
    assert len(github.comments[7]) == 5
    assert {auth for _, _, auth in github.requests} == {f"Bearer {TOKEN}"}
    assert [(m, p.split("?")[0]) for m, p, _ in github.requests[-3:]] == [
        ("GET", f"/repos/{REPO}/issues/7/comments"), ("GET", f"/repos/{REPO}/issues/7/comments"),
        ("PATCH", f"/repos/{REPO}/issues/comments/{comment.id}")]
    # Nothing new to say: nothing is written.
    writes = len(github.requests)
    gh.upsert_comment(REPO, 7, marker, f"{marker}\nsecond push")
    assert [m for m, _, _ in github.requests[writes:]] == ["GET", "GET", "GET"]


def test_a_bad_token_is_a_clear_error_that_never_shows_the_token(github):
    gh, _ = client(github, token="ghp_wrong-token")
    with pytest.raises(GitHubError, match=r"GitHub refused the token \(401 Bad credentials\).*Fix: set GITHUB_TOKEN") \
            as error:
        gh.comments(REPO, 7)
    assert "ghp_" not in str(error.value)


def test_a_missing_pull_request_or_repository_is_a_404_that_says_what_to_check(github):
    gh, _ = client(github)
    with pytest.raises(GitHubError, match=r"404 Not Found for GET /repos/acme/models/issues/99/comments.*token cannot "
                                          r"see it.*Fix: check CIRCLE_PULL_REQUEST"):
        gh.comments(REPO, 99)
    with pytest.raises(GitHubError, match="404"):
        gh.create_comment("acme/other", 7, "x")


def test_rate_limits_are_waited_out_as_github_asks(github):
    gh, waits = client(github)
    now = 1_800_000_000
    gh._clock = lambda: now
    github.failures = [
        (403, {"Retry-After": "3"}, {"message": "You have exceeded a secondary rate limit"}),
        (429, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(now + 20)}, {"message": "API rate limit"}),
        (503, {}, {"message": "unavailable"}),
    ]
    comment = gh.create_comment(REPO, 7, "after the limits")
    assert comment.body == "after the limits" and waits == [3.0, 21.0, 1]
    assert len(github.requests) == 4  # three refused, the fourth created it


def test_a_rate_limit_longer_than_the_patience_is_an_error_naming_the_reset(github):
    gh, waits = client(github, max_wait=60)
    now = 1_800_000_000
    gh._clock = lambda: now
    github.failures = [(403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(now + 3600)},
                        {"message": "API rate limit exceeded"})]
    with pytest.raises(GitHubError, match=r"rate limit stopped GET /repos/acme/models/issues/7/comments \(waited 0s, "
                                          r"at most 60s; it resets at 09:00:00 UTC\)"):
        gh.comments(REPO, 7)
    assert waits == []


def test_a_forbidden_request_that_is_not_a_rate_limit_is_not_retried(github):
    gh, waits = client(github)
    github.failures = [(403, {}, {"message": "Resource not accessible by integration"})]
    with pytest.raises(GitHubError, match=r"403 Resource not accessible by integration.*Fix: give the token"):
        gh.create_comment(REPO, 7, "x")
    assert waits == [] and len(github.requests) == 1


def review_runs() -> list[NotebookRun]:
    trained = TrainRecord(problem_type="regression", metrics={"rmse": 2.08, "r2": 0.6, "mae": 1.5}, null_metrics={},
                          gates=(Gate("rmse", 2.08, "<= 2.3", True), Gate("r2", 0.6, ">= 0.52", True)),
                          job_name="j", artifact_uri="file:///a", artifact_sha256="a" * 64, dataset_id="d",
                          version=4, status="PendingManualApproval")
    reviewed = ReviewRecord(
        verdict="APPROVE", verdict_line="APPROVE: v4 is better than champion v3 beyond the 95% interval on rmse",
        challenger_version=4, champion_version=3, decided_by="better than the champion beyond the 95% interval",
        comparison=(MetricComparison("rmse", 2.08, 2.171, 0.091, "better", True, (0.031, 0.152)),
                    MetricComparison("mae", 1.5, 1.57, 0.07, "same", False, (-0.01, 0.15))),
        notes=("the modelops library changed since champion v3",),
        bootstrap={"method": "paired bootstrap", "rows": 418, "resamples": 2000, "seed": 1729})
    return [NotebookRun("abalone_model", "train_register", "passed", scraps=trained.to_scraps()),
            NotebookRun("abalone_model", "review", "passed", scraps=reviewed.to_scraps())]


CIRCLE = {"CIRCLE_WORKFLOW_JOB_ID": "3df8fe81-1066-4a7b-9843-bad46ff42b65", "CIRCLE_NODE_INDEX": "0",
          "CIRCLE_BUILD_URL": "https://app.circleci.com/pipelines/gh/acme/models/12/workflows/w/jobs/34",
          "CIRCLE_SHA1": "0123456789abcdef0123", "CIRCLE_PULL_REQUEST": f"https://github.com/{REPO}/pull/7"}


def test_the_markdown_has_the_verdict_metrics_with_intervals_and_the_front_page_link():
    [review] = model_reviews(review_runs())
    text = review_markdown(review, front_page=front_page_url(CIRCLE, "abalone_model"),
                           job_url=CIRCLE["CIRCLE_BUILD_URL"], commit=CIRCLE["CIRCLE_SHA1"])
    assert text.startswith("<!-- modelops-review:abalone_model -->\n### ✅ abalone_model: APPROVE v4\n")
    assert "| **rmse** | 2.08 | 2.171 | +0.091 | [+0.031, +0.152] | better |" in text
    assert "| mae | 1.5 | 1.57 | +0.07 | [-0.01, +0.15] | same |" in text
    assert "Rule that decided: *better than the champion beyond the 95% interval*" in text
    assert "paired bootstrap on the same 418 test rows, 2000 resamples" in text
    assert "✅ rmse = 2.08 (<= 2.3)" in text and "- the modelops library changed since champion v3" in text
    assert ("[Open the review page](https://output.circle-artifacts.com/output/job/3df8fe81-1066-4a7b-9843-"
            "bad46ff42b65/artifacts/0/artifacts/index.html#abalone_model)") in text
    assert "commit `0123456789ab`" in text and "approve the `request-deployment` job" in text


def test_the_pull_request_comes_from_circleci_or_from_the_branch():
    assert pull_request(CIRCLE) == pull_request({"CIRCLE_PULL_REQUEST": "https://github.com/acme/models/pull/7/"})
    assert pull_request(CIRCLE).repo == REPO and pull_request(CIRCLE).number == 7
    assert pull_request({"CIRCLE_BRANCH": "x"}) is None and front_page_url({}) is None


def test_post_review_creates_then_updates_one_comment_per_model(github, tmp_path):
    artifacts = Artifacts(tmp_path / "artifacts")
    for run in review_runs():
        artifacts.add_run(run)
    env = {**CIRCLE, "GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": github.url}
    assert post_review("abalone_model", artifacts, env).startswith(
        f"abalone_model: posted the review on {REPO}#7: https://github.com/{REPO}/pull/7#issuecomment-")
    assert post_review("abalone_model", artifacts, {**env, "CIRCLE_SHA1": "fedcba9876543210"}).startswith(
        f"abalone_model: updated the review on {REPO}#7")
    [comment] = github.comments[7]
    assert "commit `fedcba987654`" in comment["body"] and TOKEN not in comment["body"]
    # CircleCI's GitHub App integration sets no CIRCLE_PULL_REQUEST: the open pull request of the branch is found.
    branch_only = {k: v for k, v in env.items() if k != "CIRCLE_PULL_REQUEST"}
    branch_only.update(CIRCLE_PROJECT_USERNAME="acme", CIRCLE_PROJECT_REPONAME="models",
                       CIRCLE_BRANCH="better-abalone")
    assert "updated the review on acme/models#7" in post_review("abalone_model", artifacts, branch_only)
    assert "belongs to no open pull request" in post_review("abalone_model", artifacts,
                                                            {**branch_only, "CIRCLE_BRANCH": "main"})


def test_without_a_token_or_a_pull_request_the_command_says_why_in_one_line_and_succeeds(tmp_path):
    artifacts = Artifacts(tmp_path / "artifacts")
    for run in review_runs():
        artifacts.add_run(run)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCLE_", "GITHUB_"))}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    command = [sys.executable, "-m", "ci", "comment", "abalone_model", "--artifacts", str(artifacts.root)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip().splitlines() == [
        "abalone_model: no GITHUB_TOKEN in the environment: not commenting (add it to the CircleCI context of the "
        "train job)"]
    result = subprocess.run(command, cwd=ROOT, env={**env, "GITHUB_TOKEN": TOKEN}, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == (
        "abalone_model: this build belongs to no open pull request: not commenting")
    printed = subprocess.run([*command, "--print"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert printed.returncode == 0 and printed.stdout.startswith("<!-- modelops-review:abalone_model -->")


def test_the_generated_train_job_posts_the_review_after_storing_the_artifacts_even_for_a_rejected_model():
    import yaml

    steps = yaml.safe_load((ROOT / ".circleci" / "dynamic_config.yml").read_text())["jobs"]["train"]["steps"]
    names = [next(iter(step)) if isinstance(step, dict) else step for step in steps]
    store, post = names.index("store_artifacts"), next(i for i, s in enumerate(steps)
                                                      if isinstance(s, dict) and "ci comment" in str(s))
    assert store < post and steps[post]["run"]["when"] == "always"
    assert steps[post]["run"]["command"] == ".venv/bin/python -m ci comment << parameters.model >>"
    assert "GITHUB_TOKEN" not in yaml.safe_dump(steps)  # from the context, never written into the config
