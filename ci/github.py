"""A small GitHub REST client on urllib: list, create and update a pull request's comments, patient with rate limits.

No SDK: four endpoints are used (``GET /repos/{repo}/issues/{n}/comments``, ``POST`` to the same,
``PATCH /repos/{repo}/issues/comments/{id}``, ``GET /repos/{repo}/pulls``). Rate limits are handled as GitHub's REST
documentation says: wait ``Retry-After`` seconds when it is given, else until ``X-RateLimit-Reset`` when
``X-RateLimit-Remaining`` is 0, else a minute; never longer than ``max_wait`` in total, then a clear error. The token
is sent in the Authorization header only and appears in no message.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime

from modelops.errors import ModelOpsError

API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
#: Transient server errors are retried this many times (1 s, then 2 s apart).
SERVER_RETRIES = 2


class GitHubError(ModelOpsError):
    """GitHub refused or failed a request (the message says which, and what to change)."""


@dataclass(frozen=True)
class Comment:
    """An issue or pull request comment."""

    id: int
    body: str
    url: str  # the comment's page on GitHub


class GitHub:
    """GitHub's REST API with a token (``Authorization: Bearer``)."""

    def __init__(self, token: str, *, api: str = API_URL, max_wait: float = 120, timeout: float = 30,
                 sleep=time.sleep, clock=time.time):
        self._token = token
        self.api = api.rstrip("/")
        self.max_wait = max_wait
        self.timeout = timeout
        self._sleep = sleep
        self._clock = clock

    def comments(self, repo: str, number: int) -> list[Comment]:
        """Every comment of an issue or pull request, oldest first (all pages)."""
        found, url = [], f"{self.api}/repos/{repo}/issues/{number}/comments?per_page=100"
        while url:
            page, headers = self._request("GET", url)
            found += [_comment(c) for c in page]
            url = _next_link(_header(headers, "Link") or "")
        return found

    def create_comment(self, repo: str, number: int, body: str) -> Comment:
        data, _ = self._request("POST", f"{self.api}/repos/{repo}/issues/{number}/comments", {"body": body})
        return _comment(data)

    def update_comment(self, repo: str, comment_id: int, body: str) -> Comment:
        data, _ = self._request("PATCH", f"{self.api}/repos/{repo}/issues/comments/{comment_id}", {"body": body})
        return _comment(data)

    def open_pull_requests(self, repo: str, branch: str) -> list[int]:
        """The numbers of the open pull requests whose head is ``branch`` of ``repo``'s owner."""
        owner = repo.split("/")[0]
        query = urllib.parse.urlencode({"head": f"{owner}:{branch}", "state": "open", "per_page": 100})
        data, _ = self._request("GET", f"{self.api}/repos/{repo}/pulls?{query}")
        return [int(p["number"]) for p in data]

    def upsert_comment(self, repo: str, number: int, marker: str, body: str) -> tuple[Comment, bool]:
        """Update the comment holding ``marker`` (the first one, when several do), or create it.

        Returns:
            The comment, and whether it was created.
        """
        mine = next((c for c in self.comments(repo, number) if marker in c.body), None)
        if mine is None:
            return self.create_comment(repo, number, body), True
        if mine.body == body:
            return mine, False
        return self.update_comment(repo, mine.id, body), False

    def _request(self, method: str, url: str, body: dict | None = None) -> tuple[object, dict]:
        data = json.dumps(body).encode() if body is not None else None
        waited, server_retries = 0.0, 0
        while True:
            request = urllib.request.Request(url, data=data, method=method, headers={
                "Authorization": f"Bearer {self._token}", "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION, "User-Agent": "modelops-ci",
                **({"Content-Type": "application/json"} if data is not None else {})})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - https/http only
                    text = response.read().decode() or "null"
                    return json.loads(text), dict(response.headers)
            except urllib.error.HTTPError as exc:
                headers = dict(exc.headers or {})
                message = _message(exc)
                wait = self._rate_limit_wait(exc.code, headers, message)
                if wait is not None:
                    if waited + wait > self.max_wait:
                        raise GitHubError(self._limited(method, url, headers, waited)) from None
                    self._sleep(wait)
                    waited += wait
                    continue
                if exc.code in (500, 502, 503, 504) and server_retries < SERVER_RETRIES:
                    server_retries += 1
                    self._sleep(server_retries)
                    continue
                raise GitHubError(_explain(exc.code, method, url, message)) from None
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise GitHubError(f"could not reach the GitHub API at {self.api} ({reason}). Fix: check the network, "
                                  f"or GITHUB_API_URL for GitHub Enterprise.") from None

    def _rate_limit_wait(self, status: int, headers: dict, message: str) -> float | None:
        """Seconds to wait before retrying a rate-limited request (None: not rate-limited)."""
        if status not in (403, 429):
            return None
        retry_after = _header(headers, "Retry-After")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                return 60.0
        if _header(headers, "X-RateLimit-Remaining") == "0":
            reset = _header(headers, "X-RateLimit-Reset")
            try:
                return max(0.0, float(reset) - self._clock()) + 1.0
            except (TypeError, ValueError):
                return 60.0
        if status == 429 or "rate limit" in message.lower():
            return 60.0  # a secondary rate limit without headers: GitHub asks for at least a minute
        return None

    def _limited(self, method: str, url: str, headers: dict, waited: float) -> str:
        reset = _header(headers, "X-RateLimit-Reset")
        when = ""
        if reset and reset.isdigit():
            when = f"; it resets at {datetime.fromtimestamp(int(reset), UTC):%H:%M:%S} UTC"
        return (f"GitHub's rate limit stopped {method} {_path(url)} (waited {waited:.0f}s, at most {self.max_wait:.0f}s"
                f"{when}). Fix: run the job again later; a token of a GitHub App has a higher limit.")


def _explain(status: int, method: str, url: str, message: str) -> str:
    where = f"{method} {_path(url)}"
    if status == 401:
        return (f"GitHub refused the token (401 {message or 'Bad credentials'}) at {where}. Fix: set GITHUB_TOKEN in "
                f"the CircleCI context to a valid token (fine-grained: Pull requests read and write on this "
                f"repository).")
    if status == 403:
        return (f"GitHub forbade {where} (403 {message}). Fix: give the token permission to write pull request "
                f"comments on this repository.")
    if status == 404:
        return (f"GitHub answered 404 Not Found for {where}: the repository or pull request does not exist, or the "
                f"token cannot see it (GitHub says 404, not 403, for a private repository it hides). Fix: check "
                f"CIRCLE_PULL_REQUEST and the token's repository access.")
    if status == 422:
        return f"GitHub rejected {where} (422 {message}). Fix: this is a bug in the comment; report it."
    return f"GitHub answered {status} {message} to {where}. Fix: try again; see https://www.githubstatus.com."


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read().decode() or "{}").get("message", "")).strip()
    except (ValueError, AttributeError, OSError):
        return ""


def _header(headers: dict, name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def _path(url: str) -> str:
    return urllib.parse.urlsplit(url).path


def _next_link(link: str) -> str | None:
    match = re.search(r'<([^>]+)>;\s*rel="next"', link or "")
    return match.group(1) if match else None


def _comment(data: dict) -> Comment:
    return Comment(int(data["id"]), str(data.get("body") or ""), str(data.get("html_url") or ""))
