"""Which host names are this server's: the DNS-rebinding guard and the loopback decision.

A web page can make its own name resolve to 127.0.0.1 (DNS rebinding); the browser then sends
the page's name in `Host` and counts the page as same-origin, so the Origin check alone lets it
drive a local server. A request is answered only when its `Host` names this server.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from latentgraph.graph.problems import quoted


def _address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.strip("[]"))  # a zone id ("fe80::1%eth0") is kept
    except ValueError:
        return None


# A host name: dot-separated labels of letters, digits, "-" and "_" (no space, comma, quote...).
_NAME = re.compile(r"[\w-]+(?:\.[\w-]+)*")


def host_name(header: str) -> str | None:
    """The name part of a `Host` header ("[::1]:8188" -> "::1"), lower-case; None if malformed:
    anything but a host name or an IP address, and a port, is no name (`localhost#x`,
    `local host`, `a,b`). `--allow-host` is refused by the same rule (`allowed_host`)."""
    try:
        parts = urlsplit("//" + header.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return None
    if (
        parts.username is not None
        or parts.path
        or parts.query
        or parts.fragment
        or not parts.hostname
    ):
        return None
    name = parts.hostname.rstrip(".")
    if _NAME.fullmatch(name) or (":" in name and _address(name) is not None):
        return name
    return None


def allowed_host(value: str) -> str | None:
    """`value` as a name `serve --allow-host` accepts (`host_name`'s, without a port), or None
    when no request's Host could ever match it. A bare IPv6 address is read as one in brackets."""
    if ":" in value and not value.startswith("[") and _address(value) is not None:
        value = f"[{value}]"
    name = host_name(value)
    return name if name is not None and host_name(f"{value}:1") == name else None


# A Host header that names no host: empty, or a port alone (":8188").
_NO_NAME = re.compile(r"\s*(?::[^:\[\]]*)?\s*")


def host_refusal(header: str) -> str:
    """Why a request with this `Host` header is refused, and what would accept its name. The
    advice names only a name `--allow-host` can accept (`host_name`'s): a header without a
    name (empty, or `:8188`) or a malformed one (`localhost#x`) is said to be so instead."""
    if _NO_NAME.fullmatch(header):
        return ("the Host header has no name: a request must name this server in Host "
                "(localhost, a loopback address, its --host, or a name given with --allow-host)")  # fmt: skip
    name = host_name(header)
    if name is None:
        return (f"the Host header {quoted(header)} is malformed: expected a host name or address "
                "and port, e.g. localhost:8188")  # fmt: skip
    return f"Host {quoted(header)} is not a name of this server (start it with --allow-host {name} to accept it)"


class HostGuard:
    """Decides whether a `Host` header names this server: localhost, a loopback address, the
    address it is bound to (any IP address when bound to all interfaces), or an allowed name."""

    def __init__(self, bound: str, allowed: Iterable[str] = ()) -> None:
        self.names = {"localhost", bound.lower().strip("[]"), *(n.lower() for n in allowed)}
        bound_address = _address(bound)
        self.any_address = bound_address is not None and bound_address.is_unspecified

    def allows(self, header: str | None) -> bool:
        if header is None:  # HTTP/1.0 without Host: not a browser
            return True
        name = host_name(header)
        if name is None:
            return False
        if name in self.names or is_loopback_name(name):
            return True
        return self.any_address and _address(name) is not None


def is_loopback_name(name: str) -> bool:
    """Whether `name` (a host name or IP address, IPv6 with or without brackets) names this
    machine by its spelling alone: localhost, a name under .localhost, a loopback address
    (127.0.0.0/8, ::1). Nothing is resolved. The Host guard accepts these names, and `submit`
    reaches a server so named directly, never through a proxy (`submit.proxy_for`)."""
    name = name.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = _address(name)
    return address is not None and address.is_loopback


def address_problem(host: str) -> str | None:
    """Why `host` names no address to listen on (`serve --host`), or None: asked before the
    loopback decision, whose refusal would otherwise speak of strangers reaching a name that
    reaches nothing."""
    try:
        socket.getaddrinfo(host or None, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return no_such_address(exc)
    return None


def no_such_address(exc: socket.gaierror) -> str:
    return f"no such address ({exc.strerror})"


def is_loopback_bind(host: str) -> bool:
    """True when every address `host` resolves to is a loopback address. Decided from the
    resolved addresses, never the spelling: "127.lan" may resolve anywhere, a name may resolve
    to 0.0.0.0 (every interface). A name that does not resolve is not loopback."""
    address = _address(host)
    if address is not None:
        return address.is_loopback
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    found = {_address(str(info[4][0])) for info in infos}
    return bool(found) and all(a is not None and a.is_loopback for a in found)
