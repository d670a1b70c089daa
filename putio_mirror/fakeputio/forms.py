"""Request parameters as put.io reads them: query string plus urlencoded, multipart or JSON body."""

from __future__ import annotations

import email.parser
import email.policy
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from putio_mirror.fakeputio.replies import ApiError
from putio_mirror.fakeputio.wire import Incoming

_TRUE = {"1", "true"}
_FALSE = {"0", "false", ""}


@dataclass(frozen=True)
class UploadedPart:
    """One part of a multipart body, as bytes."""

    filename: str | None
    data: bytes


@dataclass(frozen=True)
class Form:
    """The merged parameters of one request; body values win over the query string.
    ``query`` alone is for the few flags put.io reads only there."""

    params: dict[str, str]
    files: dict[str, UploadedPart]
    authorized: bool = False
    query: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.params.get(name, default)

    def integer(self, name: str, default: int) -> int:
        """Given a parameter name, return it as an int; raise a 400 ApiError if it is not one."""
        value = self.params.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise ApiError(400, "INVALID_PARAMETER", f"{name} must be an integer") from None

    def ids(self, name: str) -> list[int]:
        """Given a parameter name, return its comma-separated ids; raise a 400 ApiError if bad."""
        raw = self.params.get(name, "")
        try:
            return [int(part) for part in raw.split(",") if part.strip()]
        except ValueError:
            raise ApiError(400, "INVALID_PARAMETER", f"{name} must be a list of ids") from None

    def flag(self, name: str, default: bool = False) -> bool:
        """Given a parameter name, return it as a boolean (1/0/true/false in any case)."""
        value = self.params.get(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ApiError(400, "INVALID_PARAMETER", f"{name} must be a boolean")


def read_form(incoming: Incoming, authorized: bool = False) -> Form:
    """Given a request (and whether its token is good), return its parameters from the query
    string and the body."""
    params = dict(incoming.query)
    files: dict[str, UploadedPart] = {}
    content_type = incoming.headers.get("Content-Type", "")
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        fields, files = _multipart(content_type, incoming.body)
        params.update(fields)
    elif media_type == "application/json" or incoming.body.lstrip().startswith(b"{"):
        params.update(_json_fields(incoming.body))
    elif incoming.body:
        text = incoming.body.decode("utf-8", errors="replace")
        params.update(parse_qsl(text, keep_blank_values=True))
    return Form(params, files, authorized, dict(incoming.query))


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, UploadedPart]]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, str] = {}
    files: dict[str, UploadedPart] = {}
    if not message.is_multipart():
        raise ApiError(400, "BAD_REQUEST", "malformed multipart body")
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(data, bytes):
            continue
        filename = part.get_filename()
        # Every part is kept as bytes too: some clients send the file part without a filename.
        files[name] = UploadedPart(filename, data)
        if filename is None:
            fields[name] = data.decode("utf-8", errors="replace")
    return fields, files


def _json_fields(body: bytes) -> dict[str, str]:
    try:
        decoded = json.loads(body or b"{}")
    except ValueError:
        raise ApiError(400, "BAD_REQUEST", "body is not valid JSON") from None
    if not isinstance(decoded, dict):
        raise ApiError(400, "BAD_REQUEST", "JSON body must be an object")
    return {str(key): _as_text(value) for key, value in decoded.items() if value is not None}


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_as_text(item) for item in value)
    return str(value)
