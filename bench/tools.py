"""The tools the benchmarks compare with or rely on, and a throw-away nginx.

``ensure_tools`` installs missing ones from Debian's packages (as root, with
apt-get); ``nginx`` serves a folder on a free 127.0.0.1 port for one block.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from common import BENCH_PREFIX, BenchError, find_tool, note, scratch_dir, tool_path

# The command each tool is found by, and the Debian package that provides it.
TOOLS = {
    "nginx": "nginx",
    "aria2c": "aria2",
    "curl": "curl",
    "time": "time",
    "strace": "strace",
}


def ensure_tools(commands: Iterable[str] = TOOLS) -> None:
    """Install the Debian packages of missing commands with apt-get; raise BenchError if unable."""
    missing = sorted({TOOLS[command] for command in commands if find_tool(command) is None})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BenchError(
            f"missing packages: {' '.join(missing)}; "
            f"install them with: sudo apt-get install -y {' '.join(missing)}"
        )
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", *missing]):
        note(f"running: {' '.join(argv)}")
        subprocess.run(argv, check=True, env=env, stdout=sys.stderr)


# -- nginx ---------------------------------------------------------------------------


@contextmanager
def nginx(
    root: Path,
    *,
    rate: str | None = None,
    workdir: Path | None = None,
    tls: tuple[Path, Path] | None = None,
) -> Iterator[str]:
    """Given a folder, serve it with nginx on a free 127.0.0.1 port; yield the base URL.

    ``rate`` (e.g. "20m", nginx units: MiB/s) caps every connection with ``limit_rate``;
    ``tls`` (a certificate and its key, ``self_signed``) serves HTTPS, as put.io's nodes do.
    """
    binary = tool_path("nginx")
    _open_to_workers(root)
    with scratch_dir(workdir) as prefix:
        port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(_nginx_conf(root, port, rate, prefix, tls))
        error_log = str(prefix / "error.log")
        argv = [binary, "-p", str(prefix), "-c", str(conf), "-e", error_log]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_listening(port, process, prefix / "error.log")
            yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        finally:
            _stop(process)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """Given a folder, make a certificate for 127.0.0.1 and its key there; return both."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    argv = [tool_path("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
    argv += ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run([*argv, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    for path in (folder, cert, key):  # nginx's master reads them as root; be plain about it
        path.chmod(path.stat().st_mode | 0o044 | (0o011 if path.is_dir() else 0))
    return cert, key


def _nginx_conf(
    root: Path, port: int, rate: str | None, prefix: Path, tls: tuple[Path, Path] | None
) -> str:
    limit = f"limit_rate {rate};" if rate else ""
    listen = f"listen 127.0.0.1:{port}"
    if tls:  # put.io's nodes speak TLS 1.2/1.3 with AES-GCM, as nginx's defaults do
        listen += f" ssl;\n        ssl_certificate {tls[0]};\n        ssl_certificate_key {tls[1]}"
    temps = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
worker_processes 2;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    default_type application/octet-stream;
{temps}
    server {{
        {listen};
        root {root};
        location / {{ {limit} }}
    }}
}}
"""


def _open_to_workers(root: Path) -> None:
    """nginx workers run as nobody under root: let them into our 0700 temp folders."""
    for folder in (root, *root.parents):
        if folder == root or folder.name.startswith(BENCH_PREFIX):
            folder.chmod(folder.stat().st_mode | 0o055)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = log.read_text() if log.exists() else ""
            raise BenchError(f"nginx exited at start (code {process.returncode}):\n{text}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    _stop(process)
    raise BenchError(f"nginx did not listen on 127.0.0.1:{port} within 10 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
