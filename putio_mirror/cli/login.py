"""``putio-mirror login`` and ``logout``: get a put.io token by device code, or forget it.

Login shows a code to type at put.io/link, polls until put.io links it, checks the token
with ``account/info`` and only then writes it to the token file (0600, atomically), so a
refused token is never stored.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from putio_mirror.cli.context import Context, pass_context
from putio_mirror.core.errors import ConfigError, MirrorError
from putio_mirror.core.units import human_bytes

if TYPE_CHECKING:
    from putio_mirror.config.settings import Settings

Echo = Callable[[str], None]
APP_ID_HINT = (
    "put.io lets a token be asked for only by an OAuth app: create one at "
    "https://app.put.io/settings/account/oauth/apps (any name; the callback URL is not "
    "used), then put its client id in the config file as putio.oauth_app_id, or pass "
    "--app-id (`putio-mirror config init` writes a config that documents it)"
)
REVOKE_PAGE = "https://app.put.io/settings/account/oauth/apps"


@click.command("login")
@click.option("--app-id", type=click.IntRange(min=1), help="The OAuth app's client id.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    metavar="MINUTES",
    help="How long to wait for the code to be linked.",
)
@click.option("--poll-interval", type=click.FloatRange(min=0.0), default=3.0, hidden=True)
@pass_context
def login(context: Context, app_id: int | None, wait: float, poll_interval: float) -> int:
    """Link this machine to your put.io account (device code) and store the token."""
    return log_in(
        context.settings(writes=False, needs_token=False),
        app_id=app_id,
        interval=poll_interval,
        budget=wait * 60,
        echo=click.echo,
        reload=lambda: _reload(context),
    )


@click.command("logout")
@pass_context
def logout(context: Context) -> int:
    """Revoke the stored put.io token where put.io allows, and remove the token file."""
    return log_out(context.settings(writes=False, needs_token=False), echo=click.echo)


def log_in(
    settings: Settings,
    *,
    app_id: int | None,
    interval: float,
    budget: float,
    echo: Echo,
    reload: Callable[[], Settings],
) -> int:
    """Given settings, run the device-code flow, store the token and say whose it is."""
    from putio_mirror.local.durable import write_private_file
    from putio_mirror.putio.client import PutioClient
    from putio_mirror.putio.oauth import DeviceLogin

    app = app_id or settings.oauth_app_id
    if app is None:
        raise ConfigError("no put.io OAuth app id is configured (putio.oauth_app_id)", APP_ID_HINT)
    token_file = _token_file(settings)
    _check_writable(token_file)
    with DeviceLogin(settings.api_url, timeout=settings.timeout) as device:
        code = device.new_code(app, f"putio-mirror on {socket.gethostname()}")
        echo("To link putio-mirror to your put.io account, open https://put.io/link")
        echo(f"and enter the code\n\n    {code.code}\n\nor open {code.link_url}")
        echo("Waiting for put.io (Ctrl-C to give up)...")
        token = device.wait_for_token(code.code, interval=interval, budget=budget)
    with PutioClient(token, settings.api_url, settings.upload_url, timeout=settings.timeout) as api:
        account = api.account_info()
    write_private_file(token_file, token + "\n")
    room = ""
    if account.disk_avail is not None:
        room = f" ({human_bytes(account.disk_avail)} free on put.io)"
    echo(f"Logged in to put.io as {account.username}{room}.")
    echo(f"The token is in {token_file} (readable by you only).")
    _warn_if_shadowed(reload, token, token_file, echo)
    return 0


def log_out(settings: Settings, *, echo: Echo) -> int:
    """Given settings, ask put.io to revoke the stored token, then remove the token file."""
    token_file = _token_file(settings)
    if not token_file.exists():
        echo(f"No token file at {token_file}: nothing to forget.")
        _warn_about_environment(echo)
        return 0
    token = _read_token(token_file)
    if token:
        _revoke(settings, token, echo)
    token_file.unlink()
    echo(f"Removed {token_file}.")
    _warn_about_environment(echo)
    return 0


def _reload(context: Context) -> Settings:
    """Read the settings again, quietly (their warnings were logged once already)."""
    from putio_mirror.config.settings import load_settings

    return load_settings(context.config, os.environ, require_token=False, token_optional=True)


def _token_file(settings: Settings) -> Path:
    if settings.token_file is None:  # load_settings always sets it
        raise ConfigError("no token file is known", "set putio.token_file in the config file")
    return settings.token_file


def _check_writable(token_file: Path) -> None:
    """Raise ConfigError if the token could not be stored there: found only once the
    person has linked the code, the token would be lost."""
    from putio_mirror.config.paths import unwritable_reason

    reason = (
        f"{token_file} is a folder"
        if token_file.is_dir()
        else unwritable_reason(token_file.parent, is_folder=True)
    )
    if reason is not None:
        raise ConfigError(
            f"cannot store the token in {token_file}: {reason}",
            "fix putio.token_file, or the permissions of its folder, then log in",
        )


def _read_token(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _revoke(settings: Settings, token: str, echo: Echo) -> None:
    from putio_mirror.putio.client import PutioClient

    try:
        with PutioClient(
            token, settings.api_url, settings.upload_url, timeout=settings.timeout
        ) as api:
            api.revoke_token()
    except MirrorError as error:
        echo(f"put.io did not revoke the token ({error.message}); you can at {REVOKE_PAGE}.")
    else:
        echo("put.io revoked the token.")


def _warn_if_shadowed(
    reload: Callable[[], Settings], token: str, token_file: Path, echo: Echo
) -> None:
    """Say so if the next run would use another token than the one just stored."""
    from putio_mirror.config.token import TOKEN_ENV

    current = reload().token
    if current is None or current.reveal() != token:
        echo(
            f"Note: runs will not use it: {TOKEN_ENV} or putio.token in the config file takes "
            f"precedence over {token_file}; remove it."
        )


def _warn_about_environment(echo: Echo) -> None:
    from putio_mirror.config.token import TOKEN_ENV

    if os.environ.get(TOKEN_ENV, "").strip():
        echo(f"Note: {TOKEN_ENV} is still set in this environment, and runs will use it.")
