"""put.io's device-code ("OOB") login: ask for a code, show it, poll until it is linked.

The person types the code at put.io/link (or opens the link with it) on any device where
they are logged in to put.io; meanwhile this side polls ``oauth2/oob/code/{code}``, which
answers ``oauth_token: null`` until then and the token once linked. These endpoints take
no token. put.io's own clients poll every 2-3 s and treat a 404 as an expired code
(putio-api.md section 1.3); trouble on the way (a dropped connection, a 5xx) only means
"ask again".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from putio_mirror import __version__
from putio_mirror.core.errors import AuthError, RemoteError, TransientError
from putio_mirror.putio.answers import connection_trouble
from putio_mirror.putio.values import TRANSIENT_HINT

logger = logging.getLogger(__name__)

LINK_PAGE = "https://app.put.io/link"
EXPIRED_HINT = "run `putio-mirror login` again for a new code, and enter it within a few minutes"


@dataclass(frozen=True)
class DeviceCode:
    """A code put.io handed out, and the page where the person links it."""

    code: str
    link_url: str


class DeviceLogin:
    """Given put.io's API URL, run the device-code flow's two requests (no token needed)."""

    def __init__(
        self,
        api_url: str,
        *,
        timeout: float = 30.0,
        session: requests.Session | None = None,
        user_agent: str = f"putio-mirror/{__version__}",
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._timeout = (min(timeout, 10.0), timeout)
        self._session = session if session is not None else requests.Session()
        self._owns_session = session is None
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> DeviceLogin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def new_code(self, app_id: int, client_name: str) -> DeviceCode:
        """Given the OAuth app id and a name for this device, return a fresh code.

        Raise RemoteError if put.io refuses the app id, TransientError if it cannot be asked.
        """
        params = {"app_id": str(app_id), "client_name": client_name}
        body = self._get("oauth2/oob/code", params)
        code = body.get("code")
        if not isinstance(code, str) or not code:
            raise TransientError("put.io answered oauth2/oob/code without a code", TRANSIENT_HINT)
        return DeviceCode(code, f"{LINK_PAGE}?code={code}")

    def token_for(self, code: str) -> str | None:
        """Given a code, return its token once linked, None while it waits.

        Raise AuthError if the code expired or is unknown (404), TransientError on trouble.
        """
        try:
            body = self._get(f"oauth2/oob/code/{code}", None)
        except RemoteError as error:
            if error.status == 404:
                expired = f"the code {code} expired before it was linked"
                raise AuthError(expired, EXPIRED_HINT) from None
            raise
        token = body.get("oauth_token")
        return token if isinstance(token, str) and token else None

    def wait_for_token(
        self,
        code: str,
        *,
        interval: float,
        budget: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> str:
        """Given a code, poll every ``interval`` seconds until it is linked; return the token.

        Raise AuthError if it expires, or if ``budget`` seconds pass without a link.
        """
        give_up = clock() + budget
        while True:
            try:
                token = self.token_for(code)
            except TransientError as trouble:
                logger.info("put.io did not answer the poll (%s); asking again", trouble)
                token = None
            if token is not None:
                return token
            if clock() + interval > give_up:
                minutes = budget / 60
                raise AuthError(
                    f"the code {code} was not linked within {minutes:g} minutes", EXPIRED_HINT
                )
            sleep(interval)

    def _get(self, route: str, params: dict[str, str] | None) -> dict[str, Any]:
        try:
            response = self._session.get(
                f"{self._api_url}/{route}",
                params=params,
                headers=self._headers,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            reason = connection_trouble(error)
            raise TransientError(f"put.io GET {route} failed: {reason}", TRANSIENT_HINT) from error
        with response:
            body = _json_of(response)
            status = response.status_code
        if status == 429 or status >= 500:
            raise TransientError(f"put.io answered GET {route} with HTTP {status}", TRANSIENT_HINT)
        if status >= 300:
            said = str(body.get("error_message") or body.get("error_type") or "no details")
            hint = "check putio.oauth_app_id: it is the client id of an OAuth app of yours"
            raise RemoteError(f"put.io refused GET {route}: {said} (HTTP {status})", hint, status)
        return body


def _json_of(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
