"""A typed client of the platform's API (manager/routes.py), for the CLI: each refusal is a ClientError of one line,
the server's own reason."""

from __future__ import annotations

from typing import Any, TypedDict, cast
from urllib.parse import quote

import httpx

from .paths import PREFIX

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_PAGES = 1000


class ClientError(Exception):
    """A refused request (its status and the server's message) or a server out of reach."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class Session(TypedDict):
    token: str
    expires: str


class UserInfo(TypedDict):
    name: str
    role: str
    clusters: list[str]
    disabled: bool
    created: str


class TokenInfo(TypedDict):
    id: int
    name: str
    user: str
    scopes: list[str]
    created: str
    expires: str
    last_used: str | None


class NewToken(TokenInfo):
    token: str


class ManagerClient:
    def __init__(self, server: str, token: str = "", *, transport: httpx.BaseTransport | None = None) -> None:
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=TIMEOUT, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ManagerClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None,
                 params: list[tuple[str, str]] | None = None, read_timeout: float | None = None) -> httpx.Response:
        timeout = httpx.Timeout(read_timeout, connect=5.0) if read_timeout else TIMEOUT
        try:
            answer = self._http.request(method, PREFIX + path, json=body, params=tuple(params or ()),
                                        timeout=timeout)
        except httpx.TimeoutException:
            raise ClientError(f"{self.server} did not answer in time") from None
        except httpx.TransportError as exc:
            raise ClientError(f"cannot reach {self.server}: {_reason(exc)}") from None
        if answer.status_code >= 400:
            raise ClientError(_refusal(answer), answer.status_code)
        return answer

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              params: list[tuple[str, str]] | None = None, read_timeout: float | None = None) -> Any:
        answer = self._request(method, path, body, params, read_timeout)
        if answer.status_code == 204 or not answer.content:
            return None
        try:
            return answer.json()
        except ValueError:
            raise ClientError(f"{self.server} answered {answer.status_code} with no JSON: is it a Damselfly "
                              "manager?") from None

    def _pages(self, path: str, query: list[tuple[str, str]] | None = None) -> list[Any]:
        items: list[Any] = []
        cursor: list[tuple[str, str]] = []
        for _ in range(MAX_PAGES):
            page = self._call("GET", path, params=[("limit", "500"), *(query or []), *cursor])
            items.extend(page["items"])
            if not page.get("next"):
                break
            cursor = [("cursor", str(page["next"]))]
        return items

    def login(self, username: str, password: str) -> Session:
        return cast(Session, self._call("POST", "/login", {"username": username, "password": password}))

    def logout(self) -> None:
        self._call("POST", "/logout")

    def me(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", "/me"))

    def users(self) -> list[UserInfo]:
        return cast(list[UserInfo], self._pages("/users"))

    def create_user(self, name: str, role: str, password: str, clusters: list[str] | None = None) -> UserInfo:
        body: dict[str, Any] = {"name": name, "role": role, "password": password}
        if clusters:
            body["clusters"] = clusters
        return cast(UserInfo, self._call("POST", "/users", body))

    def delete_user(self, name: str) -> None:
        self._call("DELETE", f"/users/{_segment(name)}")

    def tokens(self) -> list[TokenInfo]:
        return cast(list[TokenInfo], self._pages("/tokens"))

    def create_token(self, scopes: list[str] | None, expires: str, name: str) -> NewToken:
        body: dict[str, Any] = {"expires": expires, "name": name}
        if scopes:
            body["scopes"] = scopes
        return cast(NewToken, self._call("POST", "/tokens", body))

    def delete_token(self, token_id: str) -> None:
        self._call("DELETE", f"/tokens/{_segment(token_id)}")

    def hosts(self, cluster: str = "", state: str = "", labels: list[str] | None = None) -> list[dict[str, Any]]:
        query = [(name, value) for name, value in (("cluster", cluster), ("state", state)) if value]
        # One `label` per selector pair.
        query += [("label", label) for label in labels or []]
        return cast(list[dict[str, Any]], self._pages("/hosts", query))

    def host(self, host_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", f"/hosts/{_segment(host_id)}"))

    def cordon(self, host_id: str, cordoned: bool) -> dict[str, Any]:
        action = "cordon" if cordoned else "uncordon"
        return cast(dict[str, Any], self._call("POST", f"/hosts/{_segment(host_id)}/{action}"))

    def clusters(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._pages("/clusters"))

    def cluster(self, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", f"/clusters/{_segment(name)}"))

    def create_cluster(self, name: str, description: str, labels: dict[str, str], cidrs: list[str],
                       hostnames: list[str]) -> dict[str, Any]:
        body = {"name": name, "description": description, "labels": labels, "cidrs": cidrs, "hostnames": hostnames}
        return cast(dict[str, Any], self._call("POST", "/clusters", body))

    def delete_cluster(self, name: str) -> None:
        self._call("DELETE", f"/clusters/{_segment(name)}")

    def rotate_cluster_token(self, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("POST", f"/clusters/{_segment(name)}/token"))

    def traffic(self, since: str = "24h", step: str = "hour", cluster: str = "", host: str = "") -> dict[str, Any]:
        """The hosts' traffic series: `{since, step, series: [...], totals}` (manager/api_analysis.py)."""
        return cast(dict[str, Any], self._call("GET", "/analysis/traffic", params=_traffic_query(
            since, step, cluster, host)))

    def traffic_csv(self, since: str = "24h", step: str = "hour", cluster: str = "", host: str = "") -> str:
        """The same series as CSV, with a header line."""
        query = [*_traffic_query(since, step, cluster, host), ("format", "csv")]
        return self._request("GET", "/analysis/traffic", params=query).text


    def task_figures(self, task_id: str) -> dict[str, Any]:
        """One task's figures (manager/task_analysis.py)."""
        return cast(dict[str, Any], self._call("GET", f"/analysis/tasks/{_segment(task_id)}"))

    def tasks_figures(self, since: str = "24h") -> dict[str, Any]:
        """The figures of the tasks created since, and their summary."""
        return cast(dict[str, Any], self._call("GET", "/analysis/tasks", params=[("since", since)]))

    def tasks_figures_csv(self, since: str = "24h") -> str:
        return self._request("GET", "/analysis/tasks", params=[("since", since), ("format", "csv")]).text

    def create_task(self, body: dict[str, Any]) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("POST", "/tasks", body))

    def dry_run_task(self, body: dict[str, Any]) -> dict[str, Any]:
        # The server waits for the hosts' answers, up to a minute.
        return cast(dict[str, Any], self._call("POST", "/tasks/dry-run", body, read_timeout=75.0))

    def tasks(self, state: str = "", kind: str = "") -> list[dict[str, Any]]:
        query = [(name, value) for name, value in (("state", state), ("kind", kind)) if value]
        return cast(list[dict[str, Any]], self._pages("/tasks", query))

    def task(self, task_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", f"/tasks/{_segment(task_id)}"))

    def task_action(self, task_id: str, action: str) -> dict[str, Any]:
        """`stop` or `retry`."""
        return cast(dict[str, Any], self._call("POST", f"/tasks/{_segment(task_id)}/{action}"))

    def delete_task(self, task_id: str) -> None:
        self._call("DELETE", f"/tasks/{_segment(task_id)}")

    def task_events(self, task_id: str) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._pages(f"/tasks/{_segment(task_id)}/events"))

    def secrets(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._pages("/secrets"))

    def create_secret(self, name: str, username: str, password: str) -> dict[str, Any]:
        body = {"name": name, "username": username, "password": password}
        return cast(dict[str, Any], self._call("POST", "/secrets", body))

    def delete_secret(self, name: str) -> None:
        self._call("DELETE", f"/secrets/{_segment(name)}")


def _traffic_query(since: str, step: str, cluster: str, host: str) -> list[tuple[str, str]]:
    pairs = (("since", since), ("step", step), ("cluster", cluster), ("host", host))
    return [(name, value) for name, value in pairs if value]


def _segment(value: str) -> str:
    return quote(value, safe="")


def _refusal(answer: httpx.Response) -> str:
    try:
        body = answer.json()
        message = str(body["message"])
    except (ValueError, KeyError, TypeError):
        message = answer.reason_phrase or "refused"
    return f"{answer.status_code} {message}".splitlines()[0][:500]


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
