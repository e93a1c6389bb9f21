"""Where the platform's own HTTP requests may go (SSRF): webhook deliveries and scans by URL.

Checked: the URL's form, and every address its host resolves to. The same check runs when a webhook endpoint
is registered or a link is submitted for scanning, and again at every hop (every redirect) of every request
after the host name is resolved; the request then connects only to the addresses that were checked
(`connect_to_checked_address`), so a DNS answer that changes between the check and the connection (DNS
rebinding) cannot send it anywhere else.

Refused unless the caller's setting allows private addresses (`UNMASK_WEBHOOK_ALLOW_PRIVATE`,
`UNMASK_URL_SCAN_ALLOW_PRIVATE`): every address Python's `ipaddress` does not call global (loopback, private,
unspecified 0.0.0.0 and ::, shared 100.64.0.0/10, reserved) and multicast. An IPv4 address carried inside an
IPv6 one (::ffff:a.b.c.d, NAT64, 6to4) is judged as that IPv4 address.
Refused always, whatever the setting: link-local addresses and the cloud metadata services.

Plain Python (no Django), so the scans app and the webhooks app above it share it.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Link-local is where cloud metadata services answer (169.254.169.254: instance credentials), and no receiver
# of webhooks or published media has a reason to live there, so not even a development setting opens it.
ALWAYS_REFUSED_NETWORKS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.ip_network("169.254.0.0/16"), "link-local"),
    (ipaddress.ip_network("fe80::/10"), "link-local"),
    (ipaddress.ip_network("fd00:ec2::254/128"), "cloud metadata (AWS over IPv6)"),
    (ipaddress.ip_network("100.100.100.200/32"), "cloud metadata (Alibaba Cloud)"),
)
_NAT64_NETWORKS = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SHARED_NETWORK = ipaddress.ip_network("100.64.0.0/10")
DEFAULT_PORTS = {"http": 80, "https": 443}


class DestinationRefused(Exception):
    """A URL that may not be called; `message` says why, for the user and the delivery log."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DestinationUnresolved(DestinationRefused):
    """The host name did not resolve (now): nothing can be called, but nothing private was named either."""


@dataclass(frozen=True)
class Destination:
    """A checked URL: what to put in the request (host, port, target), and the only addresses to connect to."""

    scheme: str
    host: str
    port: int
    target: str
    addresses: tuple[str, ...]


def destination_parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, request target) of an http(s) URL; `DestinationRefused` for any other, or a bad port."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise DestinationRefused("Only http:// and https:// URLs with a host are called.")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port is None:
        port = DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise DestinationRefused("The port must be a number from 1 to 65535.")
    # The request line is ASCII: other characters are percent-encoded, what is already encoded stays as it is.
    path = urllib.parse.quote(parts.path or "/", safe="/%:@!$&'()*+,;=~")
    query = urllib.parse.quote(parts.query, safe="/?%:@!$&'()*+,;=~")
    target = f"{path}?{query}" if query else path
    return scheme, parts.hostname, port, target


def destination_resolve(url: str, *, allow_private: bool, caller: str = "webhooks") -> Destination:
    """Parse `url`, resolve its host and check every address it resolves to.

    Raises `DestinationUnresolved` when the name does not resolve, `DestinationRefused` when the URL or any of
    its addresses may not be called (one bad address is enough: a name is judged by everything it points at).
    """
    scheme, host, port, target = destination_parse(url)
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:  # ValueError: a name IDNA cannot encode (UnicodeError), a NUL in it
        raise DestinationUnresolved(f"The host name {host} does not resolve ({exc}).") from None
    addresses = list(dict.fromkeys(answer[4][0] for answer in answers))
    if not addresses:
        raise DestinationUnresolved(f"The host name {host} does not resolve.")
    for address in addresses:
        # A scope (fe80::1%eth0) names an interface, not a different address.
        refusal = address_refusal(
            ipaddress.ip_address(address.split("%", 1)[0]), allow_private=allow_private, caller=caller
        )
        if refusal:
            named = f"{host} is" if literal is not None else f"{host} resolves to {address}:"
            raise DestinationRefused(f"{named} {refusal}")
    return Destination(scheme=scheme, host=host, port=port, target=target, addresses=tuple(addresses))


def address_refusal(address: IPAddress, *, allow_private: bool, caller: str = "webhooks") -> str:
    """Why `caller` (webhooks, scans by URL) may not connect to `address` ("" when it may), as the end of a
    sentence."""
    # An IPv4 address carried inside an IPv6 one is what a connection would reach, so it is judged first.
    candidates = (*_embedded_ipv4(address), address)
    for candidate in candidates:
        for network, kind in ALWAYS_REFUSED_NETWORKS:
            if candidate.version == network.version and candidate in network:
                return f"a {kind} address, which {caller} never call."
    if allow_private:
        return ""
    for candidate in candidates:
        if not candidate.is_global or candidate.is_multicast or candidate.is_reserved:
            return f"a {_kind(candidate)} address, which {caller} may not call (only public addresses are)."
    return ""


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 address an IPv6 address stands for, where connecting to it would reach that IPv4 address."""
    if address.version != 6:
        return []
    embedded = [address.ipv4_mapped, address.sixtofour]
    if any(address in network for network in _NAT64_NETWORKS):
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [candidate for candidate in embedded if candidate is not None]


def _kind(address: IPAddress) -> str:
    if address.is_loopback:
        return "loopback"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.version == 4 and address in _SHARED_NETWORK:
        return "shared (carrier-grade NAT)"
    if address.is_reserved or not address.is_private:
        return "reserved"
    return "private"


def redirect_target(*, from_url: str, location: str) -> str:
    """The absolute URL a redirect's `Location` names; `DestinationRefused` for one that would leave HTTPS."""
    target = urllib.parse.urljoin(from_url, location.strip())
    from_scheme = urllib.parse.urlsplit(from_url).scheme.lower()
    if from_scheme == "https" and urllib.parse.urlsplit(target).scheme.lower() != "https":
        raise DestinationRefused("A redirect from https:// to another scheme is not followed (it would expose it).")
    return target


def connect_to_checked_address(
    destination: Destination,
    _host_and_port: tuple[str, int],
    timeout: float,
    source_address: tuple[str, int] | None = None,
) -> socket.socket:
    """A socket to the first of the destination's checked addresses that accepts (as socket.create_connection).

    Installed as an `http.client` connection's `_create_connection`, so the socket goes to the addresses just
    checked, never to a second DNS answer, while the Host header and the TLS server name stay the URL's.
    """
    last_error: OSError = OSError(f"{destination.host} has no address to connect to")
    for address in destination.addresses:
        try:
            return socket.create_connection((address, destination.port), timeout, source_address)
        except OSError as exc:
            last_error = exc
    raise last_error
