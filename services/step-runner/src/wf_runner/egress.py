"""Egress guard for outbound HTTP (SPEC §6): http_request, webhook and agent calls.

Every address a host name resolves to must be public unless the name or the address is listed in
WORKFLOW_EGRESS_ALLOW. The connection then goes to the address that was checked (no second DNS
lookup, so no rebinding window) while the URL, Host header and TLS SNI/certificate check keep the
original name. Each redirect hop is checked again, and bodies are capped while they stream.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json as jsonlib
import os
import re
import socket
import ssl
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Mapping, NamedTuple, Sequence

import httpcore
import httpx

from wf_runner.steps.base import StepError

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
ClientFactory = Callable[[httpx.AsyncBaseTransport], httpx.AsyncClient]

METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_THIS_NET = ipaddress.ip_network("0.0.0.0/8")
_ULA = ipaddress.ip_network("fc00::/7")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_HOST_RE = re.compile(r"^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")


class EgressDenied(StepError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason, retryable=False, error_type="egress_denied")


class ResponseTooLarge(StepError):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False, error_type="response_too_large")


class RequestFailed(StepError):
    """The exchange failed in transit (connect, TLS, protocol, timeout): another attempt may help."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True, error_type="network")


class Target(NamedTuple):
    ip: str
    port: int
    host: str


def address_problem(ip: Address) -> str | None:
    """Why `ip` is not a public destination, or None when it is."""
    if ip in METADATA:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or next(
            (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) for n in _NAT64 if ip in n), None)
        if embedded is not None:
            inner = address_problem(embedded)
            return f"an IPv6 form of {embedded} ({inner})" if inner else None
    checks = (("unspecified", ip.is_unspecified or ip in _THIS_NET), ("loopback", ip.is_loopback),
              ("link-local", ip.is_link_local), ("carrier-grade NAT (100.64.0.0/10)", ip in _CGNAT),
              ("multicast", ip.is_multicast), ("unique-local (fc00::/7)", ip in _ULA),
              ("site-local", getattr(ip, "is_site_local", False)), ("reserved", ip.is_reserved),
              ("private or special-purpose", ip.is_private), ("not globally routable", not ip.is_global))
    return next((name for name, hit in checks if hit), None)


async def system_resolver(host: str, port: int) -> list[str]:
    literal = host.strip("[]")
    try:
        ipaddress.ip_address(literal)
        return [literal]  # an address needs no lookup (getaddrinfo would cost a thread-pool hop)
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


class EgressPolicy:
    def __init__(self, hosts: Iterable[str] = (), networks: Iterable[Network] = (),
                 resolver: Resolver | None = None, resolve_timeout: float = 10.0) -> None:
        self.hosts = frozenset(h.lower().rstrip(".") for h in hosts)
        self.networks = tuple(networks)
        self._resolve = resolver or system_resolver
        self._resolve_timeout = resolve_timeout

    @classmethod
    def from_env(cls, value: str | None, *, resolver: Resolver | None = None) -> EgressPolicy:
        """Parse WORKFLOW_EGRESS_ALLOW: comma-separated host names (`*.example.com` allowed), IPs or CIDRs."""
        hosts, networks = [], []
        for entry in (e.strip() for e in (value or "").split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                name = entry.lower().rstrip(".")
                if not _HOST_RE.match(name):
                    raise ValueError(f"WORKFLOW_EGRESS_ALLOW: {entry!r} is neither a host name nor a CIDR") from None
                hosts.append(name)
        return cls(hosts, networks, resolver)

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.hosts or any(
            h.startswith("*.") and host.endswith(h[1:]) for h in self.hosts)

    def address_allowed(self, ip: Address) -> bool:
        if ip in METADATA:   # only an entry naming exactly this address opens the metadata service
            return any(n.num_addresses == 1 and ip in n for n in self.networks)
        mapped = getattr(ip, "ipv4_mapped", None)
        return address_problem(ip) is None or any(
            a in n for n in self.networks for a in (ip, mapped) if a is not None and n.version == a.version)

    async def check_host(self, host: str, port: int) -> list[str]:
        """Resolve `host`; every address must pass (or the name be allowed). Returns them all."""
        try:
            addrs = await asyncio.wait_for(self._resolve(host, port), self._resolve_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise RequestFailed(f"could not resolve {host}: {exc or 'timed out'}") from None
        if not addrs:
            raise RequestFailed(f"could not resolve {host}: no addresses")
        if self.host_allowed(host):
            return list(addrs)
        for a in addrs:
            ip = ipaddress.ip_address(a.split("%", 1)[0])
            if not self.address_allowed(ip):
                where = f"address {ip}" if host.strip("[]") == a else f"it resolves to {ip}, which"
                raise EgressDenied(f"egress to {host} denied: {where} is {address_problem(ip)}; "
                                   "list it in WORKFLOW_EGRESS_ALLOW to allow it")
        return list(addrs)

    async def check_url(self, url: str | httpx.URL) -> tuple[str, int, list[str]]:
        try:
            u = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise EgressDenied(f"egress denied: invalid URL ({exc})") from None
        if u.scheme not in ("http", "https"):
            raise EgressDenied(f"egress denied: scheme {u.scheme!r} is not allowed (only http and https)")
        host = u.raw_host.decode("ascii").lower()
        if not host:
            raise EgressDenied("egress denied: the URL has no host")
        port = u.port or (443 if u.scheme == "https" else 80)
        return host, port, await self.check_host(host, port)

    async def resolve_and_check(self, url: str | httpx.URL) -> Target:
        host, port, addrs = await self.check_url(url)
        return Target(addrs[0], port, host)


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to addresses checked by the policy instead of resolving the name again."""

    def __init__(self, policy: EgressPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._policy = policy
        self.inner = inner or httpcore.AnyIOBackend()
        self._pins: dict[tuple[str, int], list[str]] = {}

    def pin(self, host: str, port: int, addrs: Sequence[str]) -> None:
        self._pins[(host, port)] = list(addrs)

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        addrs = self._pins.get((host, port)) or await self._policy.check_host(host, port)
        error: Exception | None = None
        for addr in addrs:
            try:
                return await self.inner.connect_tcp(addr, port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error or httpcore.ConnectError(f"no address for {host}")

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        raise EgressDenied("egress denied: unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class EgressTransport(httpx.AsyncHTTPTransport):
    """httpx transport whose every TCP connection goes through `PinnedBackend` (no proxies)."""

    def __init__(self, policy: EgressPolicy, *, network_backend: httpcore.AsyncNetworkBackend | None = None,
                 **kwargs: Any) -> None:
        if kwargs.get("proxy") or kwargs.get("uds"):
            raise ValueError("EgressTransport takes no proxy or unix socket")
        super().__init__(**kwargs)
        self.backend = PinnedBackend(policy, network_backend)
        if not isinstance(self._pool, httpcore.AsyncConnectionPool) or not hasattr(self._pool, "_network_backend"):
            raise RuntimeError("unsupported httpx/httpcore version: cannot install the egress backend")
        self._pool._network_backend = self.backend   # httpx has no public hook for the backend


_TLS: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: building one loads the CA bundle (~15-30 ms),
    which would otherwise dominate every request made with a fresh transport."""
    global _TLS
    if _TLS is None:
        _TLS = httpx.create_ssl_context()
    return _TLS


@dataclass(frozen=True)
class SafeResponse:
    status_code: int
    headers: httpx.Headers
    body: bytes
    url: str            # the final URL, after redirects
    redirects: int = 0

    @property
    def content(self) -> bytes:
        return self.body

    @property
    def text(self) -> str:
        m = re.search(r"charset=[\"']?([\w.:-]+)", self.headers.get("content-type", ""))
        try:
            return self.body.decode(m.group(1) if m else "utf-8", "replace")
        except LookupError:
            return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.body)


async def safe_request(policy_or_factory: EgressPolicy | ClientFactory | None, method: str, url: str, *,
                       policy: EgressPolicy | None = None, client_factory: ClientFactory | None = None,
                       follow_redirects: bool = False, max_redirects: int = 5,
                       max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = 30.0,
                       headers: Mapping[str, str] | None = None, params: Any = None,
                       content: bytes | str | None = None, json: Any = None,
                       cancel: asyncio.Event | None = None) -> SafeResponse:
    """One outbound request under the egress policy; raises StepError subclasses, never httpx errors.

    The first argument is the EgressPolicy or a client factory (`policy=` then names the policy;
    without one, WORKFLOW_EGRESS_ALLOW from the environment). `client_factory(transport)` must
    return a new AsyncClient using that transport (default: a plain one); it is closed afterwards.
    `timeout` bounds the whole exchange, redirects included. `cancel` aborts it.
    """
    if isinstance(policy_or_factory, EgressPolicy):
        policy = policy_or_factory
    elif policy_or_factory is not None:
        client_factory = policy_or_factory
    if policy is None:
        policy = EgressPolicy.from_env(os.environ.get("WORKFLOW_EGRESS_ALLOW"))
    work = asyncio.ensure_future(_exchange(policy, client_factory, method, url, follow_redirects, max_redirects,
                                           max_bytes, timeout, headers, params, content, json))
    stop = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
    try:
        await asyncio.wait([t for t in (work, stop) if t], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (work, stop):
            if t is not None and not t.done():
                t.cancel()
    if not work.done() or work.cancelled():
        raise StepError("cancelled", retryable=False, error_type="cancelled")
    return work.result()


async def _exchange(policy: EgressPolicy, client_factory: ClientFactory | None, method: str, url: str,
                    follow_redirects: bool, max_redirects: int, max_bytes: int, timeout: float,
                    headers: Any, params: Any, content: Any, json: Any) -> SafeResponse:
    transport = EgressTransport(policy, verify=tls_context())
    client = client_factory(transport) if client_factory else httpx.AsyncClient(transport=transport, trust_env=False)
    host = "?"
    try:
        async with asyncio.timeout(timeout), client:
            request = client.build_request(method, url, headers=headers, params=params, content=content,
                                           json=json, timeout=timeout)
            for hop in range(max_redirects + 1):
                host, port, addrs = await policy.check_url(request.url)
                transport.backend.pin(host, port, addrs)
                response = await client.send(request, stream=True, follow_redirects=False)
                try:
                    if not (follow_redirects and response.has_redirect_location):
                        body = await _read_capped(response, max_bytes, host)
                        return SafeResponse(response.status_code, response.headers, body, str(request.url), hop)
                    request = _redirect(client, request, response, timeout)
                finally:
                    await response.aclose()
            raise StepError(f"too many redirects (more than {max_redirects}) from {safe_url(url)}",
                            retryable=False, error_type="too_many_redirects")
    except TimeoutError:
        raise RequestFailed(f"request to {host} timed out after {timeout:g}s") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise EgressDenied(f"egress denied: invalid URL ({exc})") from None
    except httpx.HTTPError as exc:
        raise RequestFailed(f"request to {host} failed: {type(exc).__name__}: {exc}") from None


def safe_url(url: str | httpx.URL) -> str:
    """The URL without credentials, query string or fragment: fit for messages and logs."""
    try:
        u = httpx.URL(url)
        return str(u.copy_with(username=None, password=None, query=None, fragment=None))
    except (httpx.InvalidURL, TypeError, ValueError):
        return "<invalid URL>"


async def _read_capped(response: httpx.Response, max_bytes: int, host: str) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(f"response from {host} is {declared} bytes, over the {max_bytes}-byte limit")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise ResponseTooLarge(f"response from {host} exceeds the {max_bytes}-byte limit")
    return bytes(body)


_BODY_HEADERS = ("content-length", "transfer-encoding", "content-type", "content-encoding")
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")


def _redirect(client: httpx.AsyncClient, request: httpx.Request, response: httpx.Response,
              timeout: float) -> httpx.Request:
    url = request.url.join(response.headers["location"])
    method = request.method
    if (response.status_code == 303 and method != "HEAD") or (response.status_code in (301, 302) and method == "POST"):
        method = "GET"
    headers = httpx.Headers(request.headers)
    headers.pop("host", None)
    for name in _BODY_HEADERS:
        headers.pop(name, None)
    if (url.scheme, url.host, url.port) != (request.url.scheme, request.url.host, request.url.port):
        for name in _CREDENTIAL_HEADERS:   # never hand credentials to another origin
            headers.pop(name, None)
    body = request.content if method == request.method else None
    if body is not None and "content-type" in request.headers:
        headers["content-type"] = request.headers["content-type"]
    return client.build_request(method, url, headers=headers, content=body, timeout=timeout)
