"""A small synchronous HTTP client for the gateway (stdlib only, streaming watches).

Server errors arrive as Kubernetes Status bodies; ``ApiFailure`` carries them, and
``describe_failure`` renders them the way kubectl does, field paths included.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from services.cli.config import Config
from services.cli.errors import CliError


class ApiFailure(CliError):
    """A non-2xx answer; ``status`` is the decoded Status body."""

    def __init__(
        self, code: int, status: dict[str, Any], *, hint: str = "", login: bool = False
    ) -> None:
        self.code = code
        self.status = status
        super().__init__(describe_failure(code, status, hint=hint, login=login))


def describe_failure(
    code: int, status: dict[str, Any], *, hint: str = "", login: bool = False
) -> str:
    """``hint``: where the token came from; ``login``: it is a ``ccctl login`` ID token."""
    reason = status.get("reason") or str(code)
    message = status.get("message") or ""
    text = f"Error from server ({reason}): {message}"
    causes = (status.get("details") or {}).get("causes") or []
    for cause in causes:
        line = f"{cause.get('field') or '<body>'}: {cause.get('message', '')}"
        if len(causes) == 1 and message.endswith(line):
            break  # the message already says it (one field): not twice
        text += f"\n  {line}"
    if code == 401:
        if login:
            text += "\n  hint: run ccctl login (the token is the ID token it stored"
            text += f" in {hint})" if hint else ")"
        else:
            text += "\n  hint: check the token" + (f" in {hint}" if hint else "")
    return text


class Client:
    """``renew`` is asked for the config before each request: a ``ccctl login`` session's
    ID token may expire during a long watch or wait."""

    def __init__(
        self, config: Config, *, timeout: float = 30.0,
        renew: Callable[[Config], Config] | None = None,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.renew = renew

    def _url(self, path: str, params: dict[str, str] | None = None) -> str:
        url = self.config.server + path
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v})
        return url

    def _open(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ):
        if self.renew is not None:
            self.config = self.renew(self.config)
        data = None
        headers = {"Accept": "application/json"}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        req = urllib.request.Request(
            self._url(path, params), data=data, headers=headers, method=method
        )
        try:
            return urllib.request.urlopen(req, timeout=timeout or self.timeout)  # noqa: S310
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                status = json.loads(raw)
            except ValueError:
                status = {"message": raw.decode(errors="replace")[:200] or e.reason}
            if not isinstance(status, dict):
                status = {"message": str(status)}
            raise ApiFailure(e.code, status, hint=self.config.source,
                             login=self.config.session is not None) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            raise CliError(
                f"cannot reach the API server at {self.config.server}: {reason}"
            ) from None

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        with self._open(method, path, **kwargs) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else {}

    def status_and_body(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict]:
        with self._open(method, path, **kwargs) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw else {})

    def stream(
        self, path: str, params: dict[str, str], *, timeout: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield watch events until the server ends the stream."""
        resp = self._open("GET", path, params={**params, "watch": "true"}, timeout=timeout)
        with resp:
            try:
                for line in resp:
                    line = line.strip()
                    if line:
                        yield json.loads(line)
            except TimeoutError:
                return
