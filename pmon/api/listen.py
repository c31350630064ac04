"""``HOST:PORT`` as the user writes it, checked, and whether it stays on this machine."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


@dataclass(frozen=True)
class Listen:
    """Where the API binds."""

    host: str
    port: int

    @property
    def loopback(self) -> bool:
        """True when only this machine can connect (127.0.0.0/8, ::1, localhost)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name: it may resolve anywhere

    @property
    def wildcard(self) -> bool:
        """True for 0.0.0.0 / :: (every interface)."""
        return self.host in ("0.0.0.0", "::")

    def url(self) -> str:
        """The base URL a client on this machine uses."""
        host = self.host
        if self.wildcard:
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


def parse_listen(text: str) -> Listen:
    """``PORT``, ``HOST:PORT`` or ``[V6]:PORT``; port 0 picks a free one. ValueError says what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"listen: expected HOST:PORT or PORT, got {text!r}")
    text = text.strip()
    host, port_text = DEFAULT_HOST, text
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or not text[close + 1:].startswith(":"):
            raise ValueError(f"listen: {text!r}: an IPv6 address is written [ADDRESS]:PORT")
        host, port_text = text[1:close], text[close + 2:]
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
        if ":" in host:
            raise ValueError(f"listen: {text!r}: write an IPv6 address in brackets, [ADDRESS]:PORT")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"listen: {text!r}: the port must be a number from 0 to 65535")
    if not host:
        raise ValueError(f"listen: {text!r}: the host is empty (use 0.0.0.0 for every interface)")
    return Listen(host, int(port_text))
