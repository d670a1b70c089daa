"""The ``rpc:`` section as plain values: where ``serve`` listens, who may talk to it.

A password is required as soon as the endpoint listens on anything but loopback: a
Transmission endpoint adds torrents and deletes local items, so an open one on a LAN
is a hole. Without one, only requests naming an IP address, localhost or one of
``allowed_hosts`` in their Host header are answered (``rpc/server``). Categories, when
listed, are the only sub-folders clients may choose.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from putio_mirror.config.schema import RpcSection, Secret
from putio_mirror.core.naming import safe_component

DEFAULT_PORT = 9091


@dataclass(frozen=True)
class RpcSettings:
    """How the Transmission RPC endpoint of ``serve`` is reached."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    url_base: str = "/transmission"
    username: str | None = None
    password: Secret | None = None
    categories: tuple[str, ...] = ()
    #: Host names (``*`` and ``?`` wildcards) a password-less endpoint answers to, besides
    #: IP addresses and localhost: any other may be a web page's DNS rebinding
    allowed_hosts: tuple[str, ...] = ()
    poll_seconds: float = 30.0

    @property
    def is_loopback(self) -> bool:
        return is_loopback(self.host)


def rpc_settings(section: RpcSection) -> tuple[RpcSettings, tuple[str, ...]]:
    """Given the file's ``rpc:`` section, return its settings and the problems found."""
    problems: list[str] = []
    host, port = _host_port(section.listen, problems)
    if (section.username is None) != (section.password is None):
        problems.append("rpc: give both username and password, or neither")
    if section.password is None and not is_loopback(host):
        problems.append(
            f"rpc.listen {section.listen!r} is not loopback: set rpc.username and rpc.password"
        )
    for category in section.categories:
        if not category or safe_component(category) != category or category.startswith("."):
            problems.append(f"rpc.categories: {category!r} is not a plain folder name")
    settings = RpcSettings(
        host=host,
        port=port,
        url_base=section.url_base,
        username=section.username,
        password=None if section.password is None else Secret(section.password),
        categories=section.categories,
        allowed_hosts=tuple(host.lower() for host in section.allowed_hosts),
        poll_seconds=section.poll_seconds,
    )
    return settings, tuple(problems)


def _host_port(listen: str, problems: list[str]) -> tuple[str, int]:
    host, colon, port_text = listen.rpartition(":")
    host = host.strip("[]") if colon else listen
    if not colon:
        port_text = str(DEFAULT_PORT)
    if not port_text.isdigit() or not 0 <= int(port_text) < 65536 or not host:
        problems.append(f"rpc.listen {listen!r} should be host:port, such as 127.0.0.1:9091")
        return "127.0.0.1", DEFAULT_PORT
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
