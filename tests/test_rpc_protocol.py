"""The RPC door's HTTP side through a real loopback server: session dance, auth, limits."""

from __future__ import annotations

import base64
import contextlib
import socket

import pytest
import requests

from putio_mirror.cli.serve import serve
from putio_mirror.config.settings import load_settings
from putio_mirror.core.errors import ConfigError
from putio_mirror.rpc.server import MAX_BODY_BYTES, SESSION_HEADER
from tests.conftest import TorrentFactory
from tests.mirror_env import Mirror
from tests.rpc_env import PASSWORD, USER, Client, serving, url_of


def test_a_get_without_a_session_id_gets_409_with_one_and_the_retry_succeeds(
    mirror: Mirror,
) -> None:
    with serving(mirror) as server:
        first = requests.get(url_of(server), auth=(USER, PASSWORD), timeout=5)
        assert first.status_code == 409
        session_id = first.headers[SESSION_HEADER]
        stale = requests.post(
            url_of(server),
            json={"method": "session-get"},
            auth=(USER, PASSWORD),
            headers={SESSION_HEADER: "stale"},
            timeout=5,
        )
        assert (stale.status_code, stale.headers[SESSION_HEADER]) == (409, session_id)
        reply = requests.post(
            url_of(server) + "/",
            json={"method": "session-get", "tag": 3},
            auth=(USER, PASSWORD),
            headers={SESSION_HEADER: session_id},
            timeout=5,
        ).json()
    assert reply["result"] == "success" and reply["tag"] == 3
    assert reply["arguments"]["version"].startswith("3.00 (putio-mirror")
    assert reply["arguments"]["rpc-version"] >= 15
    assert reply["arguments"]["download-dir"] == str(mirror.downloads)


def test_wrong_or_missing_credentials_get_401_with_a_basic_challenge(mirror: Mirror) -> None:
    with serving(mirror) as server:
        for auth in (None, (USER, "wrong"), ("other", PASSWORD), (USER, PASSWORD[:-1])):
            response = requests.get(url_of(server), auth=auth, timeout=5)
            assert response.status_code == 401, auth
            assert response.headers["WWW-Authenticate"] == 'Basic realm="Transmission"'
        assert Client(url_of(server)).ok("session-get")["rpc-version"] == 16


def test_sonarr_latin_1_credentials_are_accepted(mirror: Mirror) -> None:
    with serving(mirror, username="sönarr", password="pässword") as server:
        token = base64.b64encode("sönarr:pässword".encode("latin-1")).decode()
        response = requests.get(
            url_of(server), headers={"Authorization": f"Basic {token}"}, timeout=5
        )
    assert response.status_code == 409


def test_other_paths_are_not_the_endpoint(mirror: Mirror) -> None:
    with serving(mirror) as server:
        response = requests.get(url_of(server, "/web/"), auth=(USER, PASSWORD), timeout=5)
    assert response.status_code == 404


def test_unknown_methods_and_bad_bodies_get_an_error_never_a_crash(mirror: Mirror) -> None:
    with serving(mirror) as server:
        client = Client(url_of(server))
        assert client.call("port-test")["result"] == "method name not recognized"
        assert client.post([1, 2]).json()["result"] == "the request should be a JSON object"
        not_json = client.session.post(
            url_of(server), data=b"{nope", headers={SESSION_HEADER: client.session_id}, timeout=5
        )
        assert not_json.status_code == 400
        # the connection it closes is said closed, so no request is sent down it again
        assert not_json.headers.get("Connection") == "close"
        reply = client.call("torrent-get", fields="id")
        assert reply["result"] == "'fields' should be a list of field names"
        assert client.ok("session-get")["rpc-version"] == 16  # still serving


def test_a_body_over_the_limit_is_refused_before_it_is_read(mirror: Mirror) -> None:
    with serving(mirror) as server:
        client = Client(url_of(server))
        client.ok("session-get")
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
            token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            conn.sendall(
                (
                    f"POST /transmission/rpc HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: Basic {token}\r\n{SESSION_HEADER}: {client.session_id}\r\n"
                    f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n"
                ).encode()
            )
            assert conn.recv(100).startswith(b"HTTP/1.1 413")


def test_bad_torrents_and_folders_get_clear_results(
    mirror: Mirror, torrent_bytes: TorrentFactory
) -> None:
    with serving(mirror) as server:
        client = Client(url_of(server))
        cases = {
            "'metainfo' is not base64": {"metainfo": "not base64!!"},
            "not bencoded": {"metainfo": base64.b64encode(b"<html>login</html>").decode()},
            "bencoded, but not a torrent": {"metainfo": base64.b64encode(b"d1:ai1ee").decode()},
            "over 10485760 bytes": {"metainfo": "A" * (15 * 1024 * 1024)},
            "needs 'metainfo' or 'filename'": {},
            "a path on this machine is not read": {"filename": "/srv/a.torrent"},
            "one folder inside it": {
                "metainfo": base64.b64encode(torrent_bytes("a")).decode(),
                "download-dir": str(mirror.downloads / "a" / "b"),
            },
        }
        for expected, arguments in cases.items():
            result = client.call("torrent-add", **arguments)["result"]
            assert expected in result, (expected, result)
        body = {"method": "torrent-add", "arguments": {"metainfo": "A" * (20 << 20)}}
        # refused with 413, or closed before the client finished sending it
        with contextlib.suppress(requests.ConnectionError):
            assert client.post(body).status_code == 413
        too_many = client.call("torrent-get", fields=["id"], ids=list(range(20_000)))
        assert too_many["result"].startswith("too many ids")
        assert client.ok("torrent-get", fields=["id"])["torrents"] == []
    assert not mirror.downloads.exists() or not any(mirror.downloads.iterdir())


@pytest.mark.parametrize("listen", ["0.0.0.0:9091", "192.168.1.5:9091", "[::]:9091"])
def test_listening_beyond_loopback_needs_a_password(mirror: Mirror, listen: str) -> None:
    mirror.write_config(rpc={"listen": listen})
    with pytest.raises(ConfigError) as refused:
        load_settings(mirror.config, {})
    (problem,) = refused.value.problems
    assert problem.startswith("mirror.yaml: rpc.listen") and "set rpc.username" in problem
    mirror.write_config(rpc={"listen": listen, "username": "u", "password": "p"})
    assert load_settings(mirror.config, {}).rpc.port == 9091


def test_a_taken_port_is_a_config_error_naming_it(mirror: Mirror) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        mirror.write_config(rpc={"listen": f"127.0.0.1:{port}"})
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            serve(load_settings(mirror.config, {}))


def _post_as(server_url: str, host: str, session_id: str = "") -> requests.Response:
    """POST session-get with the given Host header."""
    headers = {SESSION_HEADER: session_id, "Host": host}
    return requests.post(server_url, json={"method": "session-get"}, headers=headers, timeout=5)


def test_without_a_password_a_foreign_host_name_is_refused_as_dns_rebinding(
    mirror: Mirror,
) -> None:
    # A web page whose name is made to point at 127.0.0.1 (DNS rebinding) is the same
    # origin as the endpoint to the browser: it could read the 409's session id and then
    # remove items with their local data. As Transmission does (CVE-2018-5702), a
    # password-less endpoint answers only to an IP, localhost, or a name in allowed_hosts.
    with serving(mirror, username=None, password=None, allowed_hosts=["nas.lan", "*.home"]) as s:
        url = url_of(s)
        port = s.port
        for host in (f"evil.example:{port}", "evil.example", f"localhost.evil.example:{port}"):
            refused = _post_as(url, host)
            assert refused.status_code == 421, host
            assert SESSION_HEADER not in refused.headers, host
            assert "allowed_hosts" in refused.text, host
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(b"GET /transmission/rpc HTTP/1.0\r\n\r\n")  # no Host at all
            assert raw.recv(100).split(b" ")[1] == b"421", "no Host header"
        for host in (
            f"127.0.0.1:{port}",
            f"localhost:{port}",
            "localhost.",
            f"[::1]:{port}",
            f"nas.lan:{port}",
            "media.home",
        ):
            assert _post_as(url, host).status_code == 409, host


def test_with_a_password_any_host_name_may_ask(mirror: Mirror) -> None:
    # Sonarr in a container reaches serve by a service name; a password guards it there.
    with serving(mirror) as server:
        response = requests.get(
            url_of(server), auth=(USER, PASSWORD), headers={"Host": "putio-mirror:9091"}, timeout=5
        )
    assert response.status_code == 409
