"""GitHub Issues as the external tracker of backlog items."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import requests

from monitoring_pipelines.trackers.base import TrackerError


class GitHubIssuesClient:
    """GitHub Issues REST API: POST /repos/{owner}/{repo}/issues to open, PATCH .../issues/{n} to close.

    `api_url` is configurable for GitHub Enterprise and for tests pointing at a local server.
    """

    def __init__(
        self,
        repo: str,
        token: str,
        api_url: str = "https://api.github.com",
        labels: Sequence[str] = (),
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        if repo.count("/") != 1:
            raise ValueError(f"repo must be 'owner/name', not {repo!r}")
        self.repo, self.api_url, self.labels, self.timeout = repo, api_url.rstrip("/"), list(labels), timeout
        self._token = token
        self._session = session or requests.Session()

    def _request(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "monitoring-pipelines",
        }
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            response = self._session.request(
                method, f"{self.api_url}{path}", json=body, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise TrackerError(f"{method} {path}: {type(exc).__name__}") from None
        if response.status_code >= 300:
            text = " ".join(response.text[:200].split())
            if self._token:
                text = text.replace(self._token, "***")
            raise TrackerError(f"{method} {path}: HTTP {response.status_code} {text}")
        return response.json()

    def create_issue(self, title: str, body: str, labels: Sequence[str]) -> dict[str, Any]:
        return self._request(
            "POST",
            f"/repos/{self.repo}/issues",
            {"title": title, "body": body, "labels": [*self.labels, *labels]},
        )

    def set_state(self, number: int, state: str) -> dict[str, Any]:
        reason = "completed" if state == "closed" else "reopened"
        return self._request(
            "PATCH", f"/repos/{self.repo}/issues/{number}", {"state": state, "state_reason": reason}
        )
