"""Flower's configuration for this project (Flower reads ./flowerconfig.py by default).

`celery -A proj flower ...` run from the repository root (as `./collector run` and the compose
service do) executes this file; `--conf=PATH` picks another one. What it does:

- binds 127.0.0.1 unless told otherwise (Flower's own default, '', is every interface):
  `--address=...` on the command line, else FLOWER_ADDRESS (empty counts as unset);
- turns on HTTP basic auth from FLOWER_BASIC_AUTH="user:password[,user2:password2]" when it is
  set (a password cannot contain a comma: Flower splits the list on commas);
- leaves `persistent`, `db` and everything else to the command line and Flower's defaults;
- REFUSES TO START (message on stderr, exit status 2, nothing bound) when the final address is
  not a loopback one and there is no authentication (basic auth from FLOWER_BASIC_AUTH,
  `--basic-auth`, or Flower's OAuth `--auth`). A unix socket (`--unix-socket`) is local and
  allowed.

Where the check runs. Flower 2.2.0 (flower/command.py) builds its options in this order:
FLOWER_* environment variables; the command line (to find `--conf`); this file, executed with
tornado's `parse_config_file(final=False)`, so every top-level name here that matches an option
sets it; the command line again, with `final=True`, which then runs tornado's parse callbacks;
only after that does it bind the port. So command-line options override this file, and this
file overrides FLOWER_* variables (hence `address` below honours FLOWER_ADDRESS itself). The
check is a parse callback, so it sees the final address and credentials whichever source set
them, and it runs before anything is bound. An exception raised while this file runs is not
caught by Flower (it catches only FileNotFoundError around it) and ends the process as well.

/metrics and /healthcheck: Flower 2.2.0 serves them without authentication even with basic
auth on (their handlers are not `@tornado.web.authenticated` and never look at the
credentials); only the UI and /api/* ask for them. Prometheus scrapes /metrics without
credentials, so nothing is needed here for that. (FLOWER_UNAUTHENTICATED_API is about /api/*
only: without it and without auth, /api/* answers 401.)

Only names of Flower options may be defined at the top level without a leading underscore:
tornado applies every name here that matches an option.
"""
import ipaddress as _ipaddress
import os as _os
import socket as _socket
import sys as _sys

from tornado.options import options as _options

_LOOPBACK_DEFAULT = "127.0.0.1"


def _refuse(message: str) -> None:
    print(f"flower: refusing to start: {message}", file=_sys.stderr, flush=True)
    raise SystemExit(2)


def _credentials(value: str) -> list:
    """FLOWER_BASIC_AUTH's "user:password[,user2:password2]" as Flower's list; refuses bad ones."""
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    for entry in entries:
        user, colon, password = entry.partition(":")
        if not (user and colon and password):
            _refuse("FLOWER_BASIC_AUTH must be user:password[,user2:password2] with a non-empty "
                    f"user and password (got an entry without them: {user or '(empty)'!r})")
    return entries


def _is_loopback(host: str) -> bool:
    """True when every address `host` stands for is a loopback one ('' is every interface)."""
    host = host.strip().strip("[]")
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return _ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        pass
    try:
        infos = _socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(
        _ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def _has_auth() -> bool:
    basic = [c for c in (_options.basic_auth or []) if c and ":" in c]
    return bool(basic) or bool(_options.auth)


def _check_final_options() -> None:
    """Runs after Flower's last command-line parse, before it binds anything."""
    if _options.unix_socket:
        return
    address = _options.address
    if _is_loopback(address) or _has_auth():
        return
    shown = address or "every interface (--address='')"
    _refuse(f"Flower would listen on {shown} port {_options.port} without authentication. "
            "Set FLOWER_BASIC_AUTH=user:password (or pass --basic-auth=user:password or "
            "--auth), or bind a loopback address (--address=127.0.0.1).")


# --- Flower options -------------------------------------------------------------------------

address = _os.environ.get("FLOWER_ADDRESS") or _LOOPBACK_DEFAULT

if "FLOWER_BASIC_AUTH" in _os.environ:
    # Flower reads it too, but as "" -> [""]: an empty value here means no credentials at all
    basic_auth = _credentials(_os.environ["FLOWER_BASIC_AUTH"])

_options.add_parse_callback(_check_final_options)
