"""Small network facts shared by the adapter, the API and the simulator."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and any loopback address (127.0.0.0/8, ::1, and 127.x mapped into IPv6)."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def is_wildcard(host: str) -> bool:
    """True for a bind to every interface (``0.0.0.0``, ``::``, or empty)."""
    return host in ("", "0.0.0.0", "::", "[::]")
