"""A real CNCF distribution registry (`/usr/bin/docker-registry`, 2.8.2) on a loopback port.

Each `RegistryServer` writes its own config into a work directory, runs
`docker-registry serve CONFIG` on a free 127.0.0.1 port (never 5000, the package default) and
stops the process by PID (terminate, then kill). Start-up to the first `/v2/` answer takes
≈ 30 ms, so tests get a fresh, empty registry instead of sharing state.

The config is written as JSON: it is valid YAML, and distribution's YAML parser reads it, so
no YAML library is needed.

Access log, as measured on distribution 2.8.2:

- Every request is logged to the process's **stdout** in Apache "combined" format (gorilla
  `CombinedLoggingHandler`), independently of `log.level` — it is on unless
  `log.accesslog.disabled: true`. Example::

      127.0.0.1 - - [04/Dec/2026:20:59:44 +0000] "HEAD /v2/foo/manifests/latest HTTP/1.1" 404 96
      "" "curl/7.88.1"

  (one line in the log, wrapped here).

  The user field is always `-` (even with Basic auth), the URI includes the query string, and
  401 challenges are logged like any other request.
- `log.level: info` additionally prints a structured "response completed" line per request to
  **stderr**; it adds nothing the access log lacks, so the default level here is `warn`.
- The line is written after the handler returns, i.e. possibly a moment *after* the client
  has its response. `RegistryServer.flush_log()` therefore sends a marker request and waits
  until the marker shows up before any counting; marker requests are filtered out.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from tests.support.certs import ServerCert

REGISTRY_BINARY = "/usr/bin/docker-registry"
HTPASSWD_BINARY = "/usr/bin/htpasswd"
# bcrypt runs on every request; cost 5 costs ≈ 3 ms per request, cost 12 ≈ 220 ms.
HTPASSWD_COST = 5
_MARK_PARAM = "orgmirror-log-mark"
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ACCESS_LINE = re.compile(
    r'^(?P<remote>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<uri>\S+) [^"]*" '
    r"(?P<status>\d{3}) (?P<size>\d+|-)"
)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class RegistryStartError(RuntimeError):
    """The registry process exited or never answered `/v2/`."""


@dataclass(frozen=True)
class TokenAuth:
    """The `auth.token` section: where clients get tokens and whose signatures to trust."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: Path


@dataclass(frozen=True)
class AccessEntry:
    """One parsed access-log line."""

    method: str
    uri: str
    status: int

    @property
    def path(self) -> str:
        return self.uri.split("?", 1)[0]


def free_port() -> int:
    """A currently free loopback port; the caller retries if it is taken before use."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port != 5000:
            return port


def write_htpasswd(path: Path, users: Mapping[str, str]) -> Path:
    """Write an htpasswd file with bcrypt (cost 5) entries, via Apache's `htpasswd`."""
    path.touch(mode=0o600)
    for user, password in users.items():
        subprocess.run(
            [HTPASSWD_BINARY, "-B", "-C", str(HTPASSWD_COST), "-b", str(path), user, password],
            check=True,
            capture_output=True,
            timeout=30,
        )
    return path


class RegistryServer:
    """A `docker-registry` process with plain HTTP, htpasswd, TLS and/or token auth.

    `users` turns on htpasswd (Basic) auth, `token` turns on token auth (they exclude each
    other, as in distribution), `tls` serves HTTPS with the given certificate. `ca_file` is
    what the helpers' own HTTP client trusts when `tls` is set.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        users: Mapping[str, str] | None = None,
        token: TokenAuth | None = None,
        tls: ServerCert | None = None,
        ca_file: Path | None = None,
        access_log: bool = True,
        log_level: str = "warn",
        start_timeout: float = 10.0,
    ) -> None:
        if users and token:
            raise ValueError("distribution supports one auth method at a time")
        if tls and ca_file is None:
            raise ValueError("a TLS registry needs the CA file to check its own readiness")
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="registry-"))
        self.storage_dir = self.workdir / "storage"
        self.config_path = self.workdir / "config.yml"
        self.stdout_path = self.workdir / "stdout.log"
        self.stderr_path = self.workdir / "stderr.log"
        self.htpasswd_path = self.workdir / "htpasswd"
        self.users = dict(users or {})
        self.token = token
        self.tls = tls
        self.ca_file = ca_file
        self.access_log = access_log
        self.log_level = log_level
        self.start_timeout = start_timeout
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, the form skopeo references and authfiles use."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What httpx's `verify=` needs to talk to this registry (httpx ≥ 0.28 deprecates a
        CA path there, hence a context)."""
        if self.tls and self.ca_file:
            return ssl.create_default_context(cafile=str(self.ca_file))
        return True

    def start(self) -> Self:
        """Start on a free port, retrying a couple of times if another process grabs it."""
        if self._process is not None:
            raise RuntimeError("registry already started")
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        if self.users:
            write_htpasswd(self.htpasswd_path, self.users)
        for attempt in range(3):
            self.port = free_port()
            self._write_config()
            self._spawn()
            try:
                self._wait_ready()
                return self
            except RegistryStartError as exc:
                self.stop(cleanup=False)
                if "address already in use" not in str(exc) or attempt == 2:
                    raise
            except BaseException:
                self.stop(cleanup=False)  # never leak the process, e.g. on KeyboardInterrupt
                raise
        raise AssertionError("unreachable")

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop and start again on the same port and storage (a registry restart or a short
        outage, as clients see it). The access log starts afresh with the new process."""
        self.stop(cleanup=False)
        time.sleep(down_seconds)
        self._spawn()
        try:
            self._wait_ready()
        except BaseException:
            self.stop(cleanup=False)
            raise

    def stop(self, *, cleanup: bool = True) -> None:
        """Terminate, then kill, the process; remove the work dir if we created it."""
        process, self._process = self._process, None
        if process is not None:
            _terminate(process)
        if cleanup and self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def stdout(self) -> str:
        """The raw access log (stdout)."""
        return _read(self.stdout_path)

    def stderr(self) -> str:
        """The application log (stderr): start-up messages, errors, auth failures."""
        return _read(self.stderr_path)

    def config(self) -> dict[str, object]:
        """The configuration this registry runs with (see `_write_config`)."""
        storage = {
            "filesystem": {"rootdirectory": str(self.storage_dir)},
            "delete": {"enabled": True},
            # The purge job only adds log noise in short-lived test registries.
            "maintenance": {"uploadpurging": {"enabled": False}},
        }
        http: dict[str, object] = {"addr": self.host, "secret": secrets.token_hex(16)}
        if self.tls:
            http["tls"] = {
                "certificate": str(self.tls.cert_file),
                "key": str(self.tls.key_file),
            }
        log = {"level": self.log_level, "accesslog": {"disabled": not self.access_log}}
        config: dict[str, object] = {"version": "0.1", "log": log, "storage": storage}
        config["http"] = http
        if auth := self._auth_config():
            config["auth"] = auth
        return config

    def _auth_config(self) -> dict[str, object] | None:
        if self.users:
            return {"htpasswd": {"realm": "orgmirror-test", "path": str(self.htpasswd_path)}}
        if self.token:
            return {
                "token": {
                    "realm": self.token.realm,
                    "service": self.token.service,
                    "issuer": self.token.issuer,
                    "rootcertbundle": str(self.token.rootcertbundle),
                }
            }
        return None

    def _write_config(self) -> None:
        self.config_path.write_text(json.dumps(self.config(), indent=2))

    def _spawn(self) -> None:
        # Truncate: a retry after a port clash must not see the previous attempt's errors.
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self._process = subprocess.Popen(
                [REGISTRY_BINARY, "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.workdir,
                start_new_session=True,
            )

    def _wait_ready(self) -> None:
        """Poll `/v2/` until it answers (200, or 401 behind auth) or the process dies."""
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        with httpx.Client(verify=self.verify, timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise RegistryStartError(
                        f"docker-registry exited with {self._process.returncode}:\n{self.stderr()}"
                    )
                # A bare TCP probe first: TLS handshakes against a registry that is still
                # starting (or dying) can leave sockets behind in httpcore's error paths.
                if _port_open(self.port):
                    try:
                        if client.get(f"{self.url}/v2/").status_code in (200, 401):
                            return
                    except httpx.TransportError:
                        pass
                time.sleep(0.01)
        raise RegistryStartError(
            f"docker-registry did not answer {self.url}/v2/ within {self.start_timeout} s:\n"
            f"{self.stderr()}"
        )

    # --- request counting -----------------------------------------------------------------

    def flush_log(self, timeout: float = 5.0) -> None:
        """Make every request answered so far visible in the access log.

        Sends a marker request and waits for its line: the registry writes each line after
        the response, so without this a count taken right after a request may miss it.
        """
        if not self.access_log:
            raise RuntimeError("access log is disabled for this registry")
        marker = uuid.uuid4().hex
        with httpx.Client(verify=self.verify, timeout=timeout) as client:
            client.get(f"{self.url}/v2/", params={_MARK_PARAM: marker})
        deadline = time.monotonic() + timeout
        while marker not in self.stdout():
            if time.monotonic() > deadline:
                raise TimeoutError(f"marker request never reached the access log of {self.url}")
            time.sleep(0.005)

    def requests(self, since: int = 0) -> list[AccessEntry]:
        """Requests served so far (after `flush_log`), skipping the first `since` of them."""
        self.flush_log()
        entries = [
            AccessEntry(m["method"], m["uri"], int(m["status"]))
            for line in self.stdout().splitlines()
            if (m := _ACCESS_LINE.match(line)) and _MARK_PARAM not in m["uri"]
        ]
        return entries[since:]

    def mark(self) -> int:
        """A position in the log: pass it as `since=` to count only what happens afterwards."""
        return len(self.requests())

    def count_requests(
        self,
        method: str | None = None,
        path: str | None = None,
        *,
        status: int | None = None,
        since: int = 0,
    ) -> int:
        """How many requests match `method` and the `path` regex (`re.fullmatch` on the path
        without query string), e.g. `count_requests("HEAD", r"/v2/org/app/manifests/.*")`."""
        pattern = re.compile(path) if path is not None else None
        return sum(
            1
            for entry in self.requests(since)
            if (method is None or entry.method == method.upper())
            and (pattern is None or pattern.fullmatch(entry.path))
            and (status is None or entry.status == status)
        )

    def writes(self, since: int = 0) -> list[AccessEntry]:
        """Requests that could change the registry (POST/PUT/PATCH/DELETE), including refused
        ones: "nothing was written" means this list is empty."""
        return [entry for entry in self.requests(since) if entry.method in _WRITE_METHODS]


def _terminate(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
