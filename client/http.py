"""HTTP transport for ``/api/v1``: JSON in and out, errors as :class:`HftxError`."""

from __future__ import annotations

from typing import Any

import httpx

from client.codec import dumps, loads
from client.errors import HftxError, error_from_body

API_PREFIX = "/api/v1"


class HttpApi:
    """A thin wrapper over :class:`httpx.AsyncClient` bound to one exchange.

    ``token`` (set by login) is sent as ``Authorization: Bearer`` on private calls.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token: str | None = None
        self._client = httpx.AsyncClient(
            base_url=self.base_url + API_PREFIX, timeout=timeout, transport=transport
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        private: bool = False,
    ) -> Any:
        """Send one request and return the decoded JSON answer (None if empty)."""
        return (await self.exchange(method, path, params=params, body=body, private=private))[0]

    async def exchange(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        private: bool = False,
    ) -> tuple[Any, httpx.Headers]:
        """:meth:`request`, with the answer's headers."""
        headers = {"Accept": "application/json"}
        if private:
            if self.token is None:
                raise HftxError("UNAUTHORIZED", "not logged in", 401)
            headers["Authorization"] = f"Bearer {self.token}"
        content = None
        if body is not None:
            content = dumps(body)
            headers["Content-Type"] = "application/json"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self._client.request(
                method, path, params=query, content=content, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise HftxError("TIMEOUT", f"{method} {self._url(path)}: {exc!r}", 504) from exc
        except httpx.TransportError as exc:
            # the full URL: a wrong --url / HFTX_URL (or none, default port) shows at once
            raise HftxError("UNAVAILABLE", f"{method} {self._url(path)}: {exc!r}", 503) from exc
        data = _decode(response)
        if response.status_code >= 400:
            raise error_from_body(response.status_code, data)
        return data, response.headers

    def _url(self, path: str) -> str:
        return self.base_url + API_PREFIX + path

    async def get(self, path: str, *, private: bool = False, **params: Any) -> Any:
        return await self.request("GET", path, params=params, private=private)

    async def get_page(self, path: str, **params: Any) -> tuple[Any, str | None]:
        """A private GET of a paged history list: (items, next cursor or None)."""
        data, headers = await self.exchange("GET", path, params=params, private=True)
        return data, headers.get(NEXT_CURSOR)

    async def post(self, path: str, body: dict[str, Any], *, private: bool = True) -> Any:
        return await self.request("POST", path, body=body, private=private)

    async def patch(self, path: str, body: dict[str, Any]) -> Any:
        return await self.request("PATCH", path, body=body, private=True)

    async def delete(self, path: str, **params: Any) -> Any:
        return await self.request("DELETE", path, params=params, private=True)


NEXT_CURSOR = "X-Next-Cursor"  # docs/protocol.md, "Paging"


def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return loads(response.content)
    except ValueError:
        return response.text
