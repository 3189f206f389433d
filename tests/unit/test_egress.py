"""Egress guard: internal addresses refused after DNS and after every redirect; bodies capped."""
import asyncio
import ipaddress
import socket

import httpcore
import httpx
import pytest

from wf_runner.egress import (EgressDenied, EgressPolicy, EgressTransport, RequestFailed, ResponseTooLarge,
                              address_problem, safe_request, safe_url)
from wf_runner.steps.base import StepError


class FakeResolver:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        host = host.rstrip(".")
        if host in self.table:
            return self.table[host]
        try:   # IP literals resolve to themselves, without the network
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


# --- the address rules ---------------------------------------------------------------------------

DENIED = ["127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
          "169.254.10.10", "100.64.0.1", "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255",
          "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "fd00:ec2::254", "ff02::1",
          "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "2002:7f00:1::1",
          "2002:a00:1::", "64:ff9b::a00:1", "64:ff9b::7f00:1", "::127.0.0.1", "fec0::1"]


@pytest.mark.parametrize("addr", DENIED)
async def test_internal_literal_addresses_are_refused(addr):
    policy = EgressPolicy.from_env("")
    host = f"[{addr}]" if ":" in addr else addr
    with pytest.raises(EgressDenied) as ei:
        await policy.resolve_and_check(f"http://{host}:8080/x?token=SECRET")
    assert str(ipaddress.ip_address(addr)) in ei.value.message and "SECRET" not in ei.value.message
    assert not ei.value.retryable and ei.value.error_type == "egress_denied"


@pytest.mark.parametrize("addr", ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8",
                                  "2002:808:808::1", "64:ff9b::808:808"])
async def test_public_literal_addresses_pass(addr):
    host = f"[{addr}]" if ":" in addr else addr
    target = await EgressPolicy.from_env("").resolve_and_check(f"https://{host}/")
    assert ipaddress.ip_address(target.ip) == ipaddress.ip_address(addr)
    assert (target.port, target.host) == (443, addr.lower())


def test_metadata_is_named_in_the_reason():
    assert "metadata" in address_problem(ipaddress.ip_address("169.254.169.254"))
    assert "metadata" in address_problem(ipaddress.ip_address("fd00:ec2::254"))
    assert "127.0.0.1" in address_problem(ipaddress.ip_address("::ffff:127.0.0.1"))


async def test_numeric_host_forms_are_resolved_before_the_check():
    # glibc reads "2130706433" as 127.0.0.1: the check runs on what the name resolves to
    with pytest.raises(EgressDenied, match="127.0.0.1"):
        await EgressPolicy.from_env("").resolve_and_check("http://2130706433/")


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://example.com/",
                                 "http:///nohost"])
async def test_only_http_and_https_with_a_host(url):
    with pytest.raises(EgressDenied):
        await EgressPolicy.from_env("").resolve_and_check(url)


async def test_a_name_resolving_to_any_private_address_is_refused():
    resolver = FakeResolver({"evil.example": ["93.184.216.34", "10.0.0.5"]})
    policy = EgressPolicy.from_env("", resolver=resolver)
    with pytest.raises(EgressDenied) as ei:
        await policy.resolve_and_check("https://evil.example/path?api_key=SECRET")
    msg = ei.value.message
    assert "evil.example" in msg and "10.0.0.5" in msg and "private" in msg
    assert "SECRET" not in msg and "api_key" not in msg


async def test_allow_list_of_hosts_and_cidrs():
    resolver = FakeResolver({"internal.example": ["192.168.1.5"], "a.corp.example": ["172.16.0.1"],
                             "corp.example": ["172.16.0.2"], "other.example": ["10.1.1.1"]})
    policy = EgressPolicy.from_env(" 10.0.0.0/8, internal.example ,*.corp.example,,fd00::/8",
                                   resolver=resolver)
    assert (await policy.resolve_and_check("http://10.2.3.4/")).ip == "10.2.3.4"
    mapped = await policy.resolve_and_check("http://[::ffff:10.0.0.1]/")
    assert ipaddress.ip_address(mapped.ip) == ipaddress.ip_address("::ffff:10.0.0.1")
    assert (await policy.resolve_and_check("http://other.example/")).ip == "10.1.1.1"   # by address
    assert (await policy.resolve_and_check("http://INTERNAL.example./")).ip == "192.168.1.5"  # by name
    assert (await policy.resolve_and_check("http://a.corp.example/")).ip == "172.16.0.1"
    with pytest.raises(EgressDenied):
        await policy.resolve_and_check("http://corp.example/")     # the wildcard needs a subdomain
    with pytest.raises(EgressDenied):
        await policy.resolve_and_check("http://127.0.0.1/")


async def test_metadata_needs_an_exact_entry():
    wide = EgressPolicy.from_env("169.254.0.0/16")
    assert (await wide.resolve_and_check("http://169.254.1.1/")).ip == "169.254.1.1"
    with pytest.raises(EgressDenied, match="metadata"):
        await wide.resolve_and_check("http://169.254.169.254/latest/meta-data/")
    exact = EgressPolicy.from_env("169.254.169.254")
    assert (await exact.resolve_and_check("http://169.254.169.254/")).ip == "169.254.169.254"


def test_invalid_allow_entries_are_rejected():
    with pytest.raises(ValueError):
        EgressPolicy.from_env("good.example, bad host!")


async def test_resolution_failure_is_retryable():
    policy = EgressPolicy.from_env("", resolver=FakeResolver({}))
    with pytest.raises(RequestFailed) as ei:
        await policy.resolve_and_check("https://nowhere.invalid/")
    assert ei.value.retryable


def test_safe_url_drops_credentials_and_query():
    assert safe_url("https://u:p@ex.com:8443/a?token=x#f") == "https://ex.com:8443/a"


# --- requests through a local server ---------------------------------------------------------------

class Server:
    """A tiny HTTP/1.1 server on 127.0.0.1 that records what it receives."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.port = 0
        self.release = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if l)}
            body = await reader.readexactly(int(headers.get("content-length", 0)))
            self.requests.append((method, path, headers, body))
            await self.respond(path.split("?")[0], writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def respond(self, path: str, w: asyncio.StreamWriter) -> None:
        p = self.port
        redirects = {"/to-loopback": f"http://127.0.0.1:{p}/ok", "/to-localhost": f"http://localhost:{p}/ok",
                     "/relative": "/ok", "/loop": "/loop", "/to-other": f"http://other.test:{p}/ok",
                     "/see-other": "/ok", "/to-metadata": "http://169.254.169.254/latest/",
                     "/to-ftp": "ftp://public.test/x"}
        if path in redirects:
            code = "303 See Other" if path == "/see-other" else "302 Found"
            w.write(f"HTTP/1.1 {code}\r\nLocation: {redirects[path]}\r\nContent-Length: 0\r\n\r\n".encode())
        elif path == "/big":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (2 << 20))
            w.write(b"x" * (2 << 20))
        elif path == "/big-chunked":
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(64):
                w.write(b"8000\r\n" + b"y" * 0x8000 + b"\r\n")
                await w.drain()
            w.write(b"0\r\n\r\n")
        elif path == "/slow":
            await self.release.wait()
            return
        else:
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}")
        await w.drain()


@pytest.fixture
async def server():
    srv = Server()
    s = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
    srv.port = s.sockets[0].getsockname()[1]
    yield srv
    srv.release.set()
    s.close()
    await s.wait_closed()


def names_to_loopback() -> FakeResolver:
    """public.test / other.test are fake public names the test allows by name; both reach 127.0.0.1."""
    return FakeResolver({"public.test": ["127.0.0.1"], "other.test": ["127.0.0.1"], "localhost": ["127.0.0.1"]})


def allowing_names(resolver: FakeResolver) -> EgressPolicy:
    return EgressPolicy.from_env("public.test,other.test", resolver=resolver)


async def test_connects_to_the_checked_address_keeping_the_host_header(server):
    resolver = names_to_loopback()
    resp = await safe_request(allowing_names(resolver), "GET", f"http://public.test:{server.port}/ok",
                              headers={"Idempotency-Key": "r:s:1"})
    assert resp.status_code == 200 and resp.json() == {"ok": True}
    assert server.requests[0][2]["host"] == f"public.test:{server.port}"   # no real DNS for public.test
    assert server.requests[0][2]["idempotency-key"] == "r:s:1"
    assert resolver.calls == ["public.test"]                               # resolved once: no rebinding


async def test_loopback_without_allow_is_refused_before_connecting(server):
    with pytest.raises(EgressDenied, match="127.0.0.1"):
        await safe_request(EgressPolicy.from_env(""), "GET", f"http://127.0.0.1:{server.port}/ok")
    assert server.requests == []


@pytest.mark.parametrize("path, address", [("/to-loopback", "127.0.0.1"), ("/to-localhost", "127.0.0.1"),
                                           ("/to-metadata", "169.254.169.254")])
async def test_redirect_to_an_internal_address_is_refused(server, path, address):
    with pytest.raises(EgressDenied) as ei:
        await safe_request(allowing_names(names_to_loopback()), "GET", f"http://public.test:{server.port}{path}",
                           follow_redirects=True)
    assert address in ei.value.message
    assert [r[1] for r in server.requests] == [path]          # the second hop never left


async def test_redirect_to_another_scheme_is_refused(server):
    with pytest.raises(EgressDenied, match="scheme"):
        await safe_request(allowing_names(names_to_loopback()), "GET", f"http://public.test:{server.port}/to-ftp",
                           follow_redirects=True)


async def test_redirects_are_not_followed_unless_asked(server):
    resp = await safe_request(allowing_names(names_to_loopback()), "GET",
                              f"http://public.test:{server.port}/to-loopback")
    assert resp.status_code == 302 and resp.redirects == 0


async def test_allowed_redirects_are_followed_and_counted(server):
    policy = allowing_names(names_to_loopback())
    resp = await safe_request(policy, "GET", f"http://public.test:{server.port}/relative", follow_redirects=True)
    assert resp.status_code == 200 and resp.redirects == 1 and resp.url.endswith("/ok")
    with pytest.raises(StepError, match="too many redirects") as ei:
        await safe_request(policy, "GET", f"http://public.test:{server.port}/loop", follow_redirects=True,
                           max_redirects=3)
    assert not ei.value.retryable and len(server.requests) == 2 + 4


async def test_redirect_rules_for_method_body_and_credentials(server):
    policy = allowing_names(names_to_loopback())
    await safe_request(policy, "POST", f"http://public.test:{server.port}/see-other", follow_redirects=True,
                       json={"a": 1}, headers={"Authorization": "Bearer t", "Idempotency-Key": "k"})
    (m1, _, h1, b1), (m2, _, h2, b2) = server.requests
    assert (m1, b1, m2, b2) == ("POST", b'{"a":1}', "GET", b"")
    assert h2["authorization"] == "Bearer t" and h2["idempotency-key"] == "k"    # same origin
    server.requests.clear()
    await safe_request(policy, "GET", f"http://public.test:{server.port}/to-other", follow_redirects=True,
                       headers={"Authorization": "Bearer t", "Idempotency-Key": "k"})
    h2 = server.requests[1][2]
    assert "authorization" not in h2 and h2["host"] == f"other.test:{server.port}" and h2["idempotency-key"] == "k"


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
async def test_oversized_responses_fail(server, path):
    policy = allowing_names(names_to_loopback())
    with pytest.raises(ResponseTooLarge) as ei:
        await safe_request(policy, "GET", f"http://public.test:{server.port}{path}", max_bytes=1 << 20)
    assert not ei.value.retryable and "1048576" in ei.value.message
    resp = await safe_request(policy, "GET", f"http://public.test:{server.port}{path}", max_bytes=4 << 20)
    assert len(resp.body) == 2 << 20


async def test_timeout_and_cancel(server):
    policy = allowing_names(names_to_loopback())
    with pytest.raises(RequestFailed, match="timed out") as ei:
        await safe_request(policy, "GET", f"http://public.test:{server.port}/slow", timeout=0.3)
    assert ei.value.retryable
    cancel = asyncio.Event()
    asyncio.get_running_loop().call_later(0.2, cancel.set)
    with pytest.raises(StepError, match="^cancelled$"):
        await asyncio.wait_for(safe_request(policy, "GET", f"http://public.test:{server.port}/slow",
                                            timeout=30, cancel=cancel), 2)


async def test_connection_refused_is_a_retryable_request_failure():
    with socket.socket() as s:     # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RequestFailed) as ei:
        await safe_request(allowing_names(names_to_loopback()), "GET", f"http://public.test:{port}/")
    assert ei.value.retryable


async def test_the_transport_alone_checks_every_connection(server):
    """Used directly with httpx's own redirect handling, each new connection is still checked."""
    policy = allowing_names(names_to_loopback())
    async with httpx.AsyncClient(transport=EgressTransport(policy)) as client:
        ok = await client.get(f"http://public.test:{server.port}/relative", follow_redirects=True)
        assert ok.status_code == 200
        with pytest.raises(EgressDenied, match="127.0.0.1"):
            await client.get(f"http://public.test:{server.port}/to-localhost", follow_redirects=True)


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Stands in for the socket layer: records where TCP goes and which name TLS verifies."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []
        self.sni: list[str] = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.connects.append((host, port))
        backend = self

        class Stream(httpcore.AsyncNetworkStream):
            async def start_tls(self, ssl_context, server_hostname=None, timeout=None):
                backend.sni.append(server_hostname)
                raise httpcore.ConnectError("stop after recording")

            async def aclose(self):
                pass
        return Stream()

    async def sleep(self, seconds):
        await asyncio.sleep(seconds)


async def test_tls_keeps_the_name_while_tcp_goes_to_the_pinned_address():
    seq = iter([["93.184.216.34"], ["127.0.0.1"]])     # a rebinding resolver: public first, then loopback

    async def rebinding(host, port):
        return next(seq)
    policy = EgressPolicy.from_env("", resolver=rebinding)
    backend = RecordingBackend()
    with pytest.raises(RequestFailed):
        await safe_request(policy, "GET", "https://api.example.com/v1?key=SECRET",
                           client_factory=lambda t: _with_backend(t, backend))
    assert backend.connects == [("93.184.216.34", 443)] and backend.sni == ["api.example.com"]


def _with_backend(transport: EgressTransport, backend: RecordingBackend) -> httpx.AsyncClient:
    transport.backend.inner = backend
    return httpx.AsyncClient(transport=transport)
