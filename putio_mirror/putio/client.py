"""The put.io API client: the only module that talks to put.io's API and upload hosts.

It turns put.io's JSON into ``putio_mirror.core.state`` values and every failure
into our exception family: transient trouble is retried with backoff here and
surfaces as ``TransientError`` only when it persists; 401 is ``AuthError`` at
once. The token travels only in the ``Authorization`` header of requests to
the API and upload hosts and never appears in a message, log line or repr.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import requests

from putio_mirror import __version__
from putio_mirror.core.errors import (
    AuthError,
    ExitCode,
    NotFoundError,
    RemoteError,
    TransientError,
)
from putio_mirror.core.retry import Backoff, retry_after_seconds
from putio_mirror.core.state import RemoteFile, Transfer
from putio_mirror.net.cutting import Cover, Cutter, covering, cut_by, cut_here
from putio_mirror.net.sessions import Session, direct_get, sibling_of
from putio_mirror.putio.answers import (
    Answer,
    answer_object,
    connection_trouble,
    error_fields,
    json_of,
    never_reached_server,
    shape_error,
)
from putio_mirror.putio.calls import Call, Retryable, TokenAuth
from putio_mirror.putio.values import (
    TRANSIENT_HINT,
    Account,
    join_ids,
    parse_account,
    parse_file,
    parse_int,
    parse_transfer,
    refused_torrent,
)

logger = logging.getLogger(__name__)

AUTH_HINT = (
    "the put.io token was refused: run `putio-mirror login` for a new one (or create one at "
    "https://app.put.io/settings/account/oauth/apps and set PUTIO_TOKEN or token_file)"
)
DEFAULT_BACKOFF = Backoff()
_JSON = dict[str, Any]
STOPPED_HINT = "the next run tries again, and goes on from where this one stopped"
#: a pause between tries is taken in naps this long when the run can be told to stop
_NAP_SECONDS = 0.25
#: how often a client that can be told to stop looks whether it is, and how long after
#: that its calls still waiting on put.io are cut short (``PutioClient._cut_at_stop``)
_LOOK_EVERY_SECONDS = 0.25
_CUT_AFTER_SECONDS = 1.0


class CallStopped(TransientError):
    """A call was waiting to try again when the run was told to stop (SIGTERM, Ctrl-C),
    or was cut short waiting on put.io (a stop, a window's end, the end of the run that
    made it: ``Cover``): put.io was not found unreachable; the run ends as a stop does."""

    exit_code = ExitCode.INTERRUPTED


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PutioClient:
    """Given a token, call put.io's API v2 with timeouts, retries and error mapping."""

    def __init__(
        self,
        token: str,
        api_url: str = "https://api.put.io/v2",
        upload_url: str = "https://upload.put.io/v2",
        *,
        timeout: float = 30.0,
        backoff: Backoff = DEFAULT_BACKOFF,
        sleep: Callable[[float], None] | None = None,
        now: Callable[[], datetime] = _utc_now,
        jitter: Callable[[], float] = random.random,
        session: requests.Session | None = None,
        user_agent: str = f"putio-mirror/{__version__}",
        page_size: int = 1000,
        stopping: Callable[[], bool] | None = None,
    ) -> None:
        self._auth = TokenAuth(token)
        self._token = token
        self._api_url = api_url.rstrip("/")
        self._upload_url = upload_url.rstrip("/")
        self._timeout = (min(timeout, 10.0), timeout)
        self._backoff = backoff
        # Closing the client ends its retries: a call left running on a thread by a run
        # that failed or was interrupted (a listing) stops at its next pause, not minutes on.
        self._closed = threading.Event()
        self._sleep = sleep if sleep is not None else self._closed.wait
        # Whether the run was told to stop (SIGTERM, Ctrl-C), asked between naps of a pause:
        # a stop must not wait out a minute of backoff (the signal only sets a flag).
        self._stopping = stopping
        # ... and by a thread of the client's own, which cuts the calls still waiting on
        # put.io short then: a silent API would hold the stop for the timeout.
        self._cutter: Cutter | None = None
        if stopping is not None:
            self._cutter = cutter = Cutter()
            watch = threading.Thread(
                target=self._cut_at_stop, args=(stopping, cutter), name="putio-stop", daemon=True
            )
            watch.start()
        self._now = now
        self._jitter = jitter
        self._owns_session = session is None
        self._session = session if session is not None else Session()
        # Threads other than the creator's (the download workers asking for links) each
        # get a session of their own over the same pool: no lock, no serialised API calls.
        self._creator = threading.get_ident()
        self._local = threading.local()
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        # a GET by hand carries the token itself (no requests auth hook): made once
        self._direct_headers = self._headers | {"Authorization": f"token {token}"}
        self._page_size = page_size

    def __repr__(self) -> str:
        return f"PutioClient(api_url={self._api_url!r})"

    def close(self) -> None:
        self._closed.set()
        if self._owns_session:
            self._session.close()

    def sibling_session(self) -> requests.Session:
        """Return a session for another thread, over this client's connection pool."""
        return sibling_of(self._session)

    def _session_here(self) -> requests.Session:
        if threading.get_ident() == self._creator:
            return self._session
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = sibling_of(self._session)
        return session

    def __enter__(self) -> PutioClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def account_info(self) -> Account:
        """Return the account the token belongs to; raise AuthError if put.io refuses it."""
        return parse_account(self._object(Call("GET", "account/info"), "info"))

    def revoke_token(self) -> None:
        """Ask put.io to forget this token (``oauth/grants/logout``); raise as any call."""
        self._call(Call("POST", "oauth/grants/logout", attempts=1))

    def list_transfers(self) -> tuple[Transfer, ...]:
        """Return every transfer of the account, following the cursor to the last page."""
        first = Call("GET", "transfers/list", params={"per_page": self._page_size})
        items = self._pages(first, "transfers/list/continue", "transfers")
        return tuple(parse_transfer(item) for item in items)

    def add_transfer(self, url: str, save_parent_id: int | None = None) -> Transfer:
        """Given a magnet URI or http(s) URL, start a transfer and return it; raise
        TorrentRefusedError if put.io refuses the link itself (HTTP 400)."""
        data: dict[str, str | int] = {"url": url}
        if save_parent_id is not None:
            data["save_parent_id"] = save_parent_id
        call = Call("POST", "transfers/add", data=data, creates=True, submits="the link")
        return parse_transfer(self._object(call, "transfer"))

    def upload_torrent(self, filename: str, data: bytes, parent_id: int | None = None) -> Transfer:
        """Given a .torrent file's name and bytes, start a transfer and return it;
        raise TorrentRefusedError if put.io refuses it or does not take it for a torrent."""
        form: dict[str, str | int] = {"filename": filename}
        if parent_id is not None:
            form["parent_id"] = parent_id
        files = {"file": (filename, data, "application/x-bittorrent")}
        query = {"torrent": "true"}  # put.io then refuses a non-torrent instead of storing it
        call = Call(
            "POST", "files/upload", query, form, files, True, creates=True, submits=f"{filename!r}"
        )
        body = self._call(call)
        if "transfer" not in body and "file" in body:
            raise refused_torrent(repr(filename), "it was stored as a plain file, not a torrent")
        return parse_transfer(answer_object(body, "transfer", call.describe()))

    def cancel_transfers(self, ids: Sequence[int]) -> None:
        """Given transfer ids, stop and remove those transfers (unknown ids are ignored)."""
        if ids:
            self._call(Call("POST", "transfers/cancel", data={"transfer_ids": join_ids(ids)}))

    def retry_transfer(self, transfer_id: int) -> Transfer:
        """Given the id of a transfer in ERROR, have put.io try it again; return it."""
        call = Call("POST", "transfers/retry", data={"id": transfer_id})
        return parse_transfer(self._object(call, "transfer"))

    def remove_transfers(self, ids: Sequence[int]) -> None:
        """Given transfer ids, remove them from the list; their files, if any, stay."""
        if ids:
            self._call(Call("POST", "transfers/remove", data={"transfer_ids": join_ids(ids)}))

    def clean_transfers(self, ids: Sequence[int] | None = None) -> tuple[int, ...]:
        """Given transfer ids (or None for all), remove the finished ones from the list;
        return the ids put.io says it removed."""
        if ids is not None and not ids:
            return ()  # an empty id list must not turn into "clean everything"
        data = None if ids is None else {"transfer_ids": join_ids(ids)}
        body = self._call(Call("POST", "transfers/clean", data=data))
        deleted = body.get("deleted_ids")
        if not isinstance(deleted, list):
            return ()
        return tuple(number for number in map(parse_int, deleted) if number is not None)

    def file(self, file_id: int) -> RemoteFile:
        """Given a file id, return that file or folder; raise NotFoundError if there is none."""
        return parse_file(self._object(Call("GET", f"files/{file_id}"), "file"))

    def list_all_files(self) -> tuple[RemoteFile, ...]:
        """Return every file and folder of the account as one flat list (``parent_id=-1``)."""
        # hidden=1: put.io leaves hidden files out of listings unless asked (putio-get does so).
        params = {"parent_id": -1, "per_page": self._page_size, "hidden": 1}
        first = Call("GET", "files/list", params=params)
        return tuple(parse_file(item) for item in self._pages(first, "files/list/continue"))

    def folders_named(self, parent_id: int, name: str) -> tuple[int, ...]:
        """Given a folder id and a name, return the ids of the folders of that name in it
        (put.io allows more than one), smallest first."""
        params = {"parent_id": parent_id, "per_page": self._page_size}
        found = (
            parse_file(item)
            for item in self._pages(Call("GET", "files/list", params=params), "files/list/continue")
        )
        return tuple(
            sorted(
                item.id
                for item in found
                if item.is_folder and item.name == name and item.parent_id == parent_id
            )
        )

    def folder_named(self, parent_id: int, name: str) -> int:
        """Given a folder id and a name, return the id of the folder of that name in it,
        created if there is none (the RPC door's category folders)."""
        if found := self.folders_named(parent_id, name):
            return found[0]
        data: dict[str, str | int] = {"name": name, "parent_id": parent_id}
        call = Call("POST", "files/create-folder", data=data, creates=True)
        return parse_file(self._object(call, "file")).id

    def download_url(self, file_id: int, *, retry: bool = True) -> str:
        """Given a file id, return a fresh, self-authenticating download-node URL.

        ``retry=False`` makes one attempt: a downloader that has its own
        patience (max_outage) must not also wait out the client's backoff.
        """
        route = f"files/{file_id}/url"
        url = self._call(Call("GET", route, attempts=None if retry else 1)).get("url")
        if not isinstance(url, str) or not url:
            raise shape_error(f"GET {route}")
        return url

    def delete_files(self, ids: Sequence[int]) -> None:
        """Given file ids, delete those files (ids that are already gone are skipped)."""
        if ids:
            # A flag in the query string, as put.io's own clients send it; the ids in the body.
            flags = {"skip_nonexistents": "true"}
            self._call(Call("POST", "files/delete", flags, data={"file_ids": join_ids(ids)}))

    def _pages(self, first: Call, continue_route: str, key: str = "files") -> Iterator[_JSON]:
        """Given the call for the first page, yield its items and those of every
        following page.

        The next page is asked for (on another thread) as soon as a page's cursor is
        known, while its items are being read: put.io takes its time to answer (a
        100,000-file account is 100 pages), and the items of a page take about as long
        to read. Requests never overlap, so the one pooled connection serves them all.
        The page asked for ahead is cut short with the caller's requests, if they are
        (``net/cutting.cut_by``): the caller waits for it.
        """
        cutters = covering()
        body, what = self._call(first), first.describe()
        ahead = ThreadPoolExecutor(1, thread_name_prefix="putio-pages")
        try:
            while True:
                items = body.get(key)
                if not isinstance(items, list):
                    raise shape_error(what)
                cursor = body.get("cursor")
                following = None
                if cursor:  # put.io ends with null, sometimes with ""
                    params = {"per_page": self._page_size}
                    call = Call("POST", continue_route, params=params, data={"cursor": str(cursor)})
                    following = ahead.submit(cut_by, cutters, functools.partial(self._call, call))
                yield from (item for item in items if isinstance(item, dict))
                if following is None:
                    return
                body, what = following.result(), call.describe()
        finally:  # a reader that stops early (or Ctrl-C) waits for no page
            ahead.shutdown(wait=False, cancel_futures=True)

    def _cut_at_stop(self, stopping: Callable[[], bool], cutter: Cutter) -> None:
        """Until the client is closed: once the run is told to stop, give the calls in
        flight a moment to be answered, then cut those still waiting short (they end as
        ``CallStopped``). A signal interrupts only the main thread's read, which Python
        then takes up again, and none of the other threads' (links asked for ahead,
        listings). Looked at four times a second, here: no cost to a call."""
        while not self._closed.wait(_LOOK_EVERY_SECONDS):
            if stopping():
                if not self._closed.wait(_CUT_AFTER_SECONDS):
                    cutter.cut()
                return

    def _covered(self) -> AbstractContextManager[object]:
        """A call's cover: cut short by the client's stop (if it can be told to stop),
        and by any cover around it (a download's link, at a window's end)."""
        return nullcontext() if self._cutter is None else Cover(self._cutter)

    def _call(self, call: Call) -> _JSON:
        """Given a call, return put.io's JSON answer; retry transient trouble with
        backoff; raise our errors for everything else (CallStopped for a call cut short:
        what it met tells nothing of put.io)."""
        attempt = 0
        while True:
            try:
                with self._covered():
                    return self._attempt(call, attempt)
            except Retryable as trouble:
                attempt += 1
                self._wait_or_give_up(call, trouble, attempt)

    def _attempt(self, call: Call, attempt: int) -> _JSON:
        try:
            return self._answered(call, attempt)
        except (Retryable, TransientError) as trouble:
            if cut_here():
                message = f"put.io {call.describe()} was cut short: the run is stopping"
                raise CallStopped(message, STOPPED_HINT) from trouble
            raise

    def _answered(self, call: Call, attempt: int) -> _JSON:
        response = self._send(call, attempt)
        try:
            logger.debug(
                "put.io %s -> %s (attempt %d)", call.describe(), response.status_code, attempt + 1
            )
            if response.status_code >= 300:
                raise self._status_error(call, response)
            body = json_of(response)
            if body is None:
                raise shape_error(call.describe())
            return body
        except requests.RequestException as exc:  # reading a body urllib3 reads as asked for
            raise self._failed(call, exc, attempt) from exc
        finally:
            response.close()

    def _send(self, call: Call, attempt: int) -> Answer:
        base = self._upload_url if call.upload else self._api_url
        try:
            if call.method == "GET" and call.data is None and call.files is None:
                # a small file's link: without requests' ~1 ms of per-request work
                direct = direct_get(
                    self._session_here(),
                    f"{base}/{call.route}",
                    call.params,
                    self._direct_headers,
                    self._timeout,
                )
                if direct is not None:
                    return direct
            return self._session_here().request(
                call.method,
                f"{base}/{call.route}",
                params=call.params,
                data=call.data,
                files=call.files,
                headers=self._headers,
                auth=self._auth,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise self._failed(call, exc, attempt) from exc

    def _failed(self, call: Call, exc: requests.RequestException, attempt: int) -> Exception:
        """Given a call whose connection failed, return what to raise: Retryable, unless
        put.io may have done what it asks (a call that creates: TransientError)."""
        reason = connection_trouble(exc)
        if not cut_here():  # a call cut short is told of by nobody (``CallStopped``)
            logger.debug("put.io %s failed: %s (attempt %d)", call.describe(), reason, attempt + 1)
        if call.creates and not never_reached_server(exc):
            return self._transient(call, reason)
        return Retryable(reason, None)

    def _wait_or_give_up(self, call: Call, trouble: Retryable, attempt: int) -> None:
        """Given the trouble of the last attempt, sleep before the next one, or raise
        TransientError when the attempts are used up or put.io asks for a longer pause."""
        if attempt >= (call.attempts or self._backoff.max_attempts):
            raise self._transient(call, trouble.reason, trouble.retry_after) from trouble
        delay = self._backoff.delay(attempt - 1, self._jitter())
        if trouble.retry_after is not None:
            if trouble.retry_after > self._backoff.cap:
                # Sleeping for longer than our own cap would stall the whole run;
                # give up now and let the next run come back after the pause.
                raise self._transient(call, trouble.reason, trouble.retry_after) from trouble
            delay = max(delay, trouble.retry_after)
        self._end_if_cut(call, trouble)
        # -v shows every retry: without it, an outage is minutes of silence
        logger.info(
            "put.io %s: %s; retrying in %.1f s (try %d of %d)",
            call.describe(),
            trouble.reason,
            delay,
            attempt + 1,
            call.attempts or self._backoff.max_attempts,
        )
        self._pause(delay)
        self._end_if_cut(call, trouble)
        if self._closed.is_set():
            raise self._transient(call, f"{trouble.reason}, and the run ended") from trouble
        if self._stopping is not None and self._stopping():
            message = f"put.io {call.describe()} failed: {trouble.reason}; stopped on request"
            raise CallStopped(message, STOPPED_HINT) from trouble

    def _end_if_cut(self, call: Call, trouble: Retryable) -> None:
        """Given the trouble of the last attempt, raise CallStopped, quietly, if this
        thread's requests were cut short (``Cover``): whoever made the call is done with
        it (a run that ended while its listing was under way), so it is not tried again,
        nor logged into what came after."""
        if cut_here():
            message = f"put.io {call.describe()} failed: {trouble.reason}; cut short"
            raise CallStopped(message, STOPPED_HINT) from trouble

    def _pause(self, delay: float) -> None:
        """Given seconds to wait before the next try, wait them; in naps, ending early once
        the run is told to stop, if it can be, or this thread's requests are cut short
        (closing the client ends any wait)."""
        if self._stopping is None and not covering():
            self._sleep(delay)
            return
        while delay > 0 and not (self._closed.is_set() or self._told_to_end()):
            nap = min(delay, _NAP_SECONDS)
            self._sleep(nap)
            delay -= nap

    def _told_to_end(self) -> bool:
        """Whether the call is to end: this thread's requests cut, or the run told to stop."""
        return cut_here() or (self._stopping is not None and self._stopping())

    def _status_error(self, call: Call, response: Answer) -> Exception:
        status = response.status_code
        error_type, message = error_fields(response)
        if status == 401:
            return AuthError(f"put.io refused the token ({call.describe()}, HTTP 401)", AUTH_HINT)
        if status == 429 or status >= 500:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"), self._now())
            reason = f"put.io answered HTTP {status}"
            if call.creates and status not in (429, 503):
                return self._transient(call, reason, retry_after)
            return Retryable(reason, retry_after)
        text = self._scrub(message or error_type or "no details")
        if status == 400 and call.submits is not None:
            said = f"{message} ({error_type})" if message and error_type else text
            return refused_torrent(call.submits, said)
        detail = f"put.io refused {call.describe()}: {text} (HTTP {status})"
        if status == 404:
            return NotFoundError(detail, "it was probably removed on put.io", status, error_type)
        hint = "check the request; put.io will refuse it the same way next time"
        return RemoteError(detail, hint, status, error_type)

    def _transient(
        self, call: Call, reason: str, retry_after: float | None = None
    ) -> TransientError:
        message = f"put.io {call.describe()} failed: {reason}"
        return TransientError(message, TRANSIENT_HINT, retry_after)

    def _object(self, call: Call, key: str) -> _JSON:
        return answer_object(self._call(call), key, call.describe())

    def _scrub(self, text: str) -> str:
        # put.io never echoes the token, but a proxy or a future error text might.
        return text.replace(self._token, "<token>") if self._token else text
