"""Swagger UI at /docs, rendered by a real headless Chromium from the service's own assets.

The service runs as ``orgmirror serve`` (a real socket for the browser). Chromium resolves
no host name except 127.0.0.1, so the page renders only if it needs nothing from the internet
(SPEC 5.3: mirrors run air-gapped) — even on a CI machine that has internet access.
"""

from __future__ import annotations

import re
import struct
import subprocess
import zlib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.support.service import OrgmirrorServer, clean_env

CHROMIUM = Path("/usr/bin/chromium")
WINDOW = (1280, 1600)
OPERATIONS = {
    "createOrgMirrorConfig": ("POST", "/api/v1/organization/{orgname}/mirror"),
    "getOrgMirrorConfig": ("GET", "/api/v1/organization/{orgname}/mirror"),
    "updateOrgMirrorConfig": ("PUT", "/api/v1/organization/{orgname}/mirror"),
    "deleteOrgMirrorConfig": ("DELETE", "/api/v1/organization/{orgname}/mirror"),
    "listOrgMirrorRepositories": ("GET", "/api/v1/organization/{orgname}/mirror/repositories"),
    "syncOrgMirrorNow": ("POST", "/api/v1/organization/{orgname}/mirror/sync-now"),
    "cancelOrgMirrorSync": ("POST", "/api/v1/organization/{orgname}/mirror/sync-cancel"),
    "verifyOrgMirrorConnection": ("POST", "/api/v1/organization/{orgname}/mirror/verify"),
}
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}

requires_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium"
)


# --- the browser -----------------------------------------------------------------------------


def chromium(user_data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium that can reach 127.0.0.1 and nothing else.

    Found on Chromium 156: plain ``--dump-dom`` serialises the DOM right after the load event,
    before Swagger UI has fetched /openapi.json, so it shows an empty ``#swagger-ui``.
    ``--virtual-time-budget`` makes Chromium run the page (network, timers) until it is idle
    or the budget is spent; it finishes in ~2 s here, and the operations are in the DOM.
    """
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",  # the tests run as root
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={user_data_dir}",
        "--virtual-time-budget=10000",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


class RenderedDocs(HTMLParser):
    """What the rendered page shows: operation rows, tag sections, buttons, linked URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.operations: dict[str, tuple[str, str, str]] = {}  # id -> (tag, method, path)
        self.tags: set[str] = set()
        self.buttons: list[tuple[str, str]] = []  # (class, text)
        self.urls: set[str] = set()
        self._operation: str | None = None
        self._method = False
        self._button: list[str] | None = None
        self._button_class = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {name: value or "" for name, value in attrs}
        classes = attr.get("class", "").split()
        self.urls.update(v for k, v in attr.items() if k in {"src", "href", "xlink:href"})
        element_id = attr.get("id", "")
        if element_id.startswith("operations-tag-"):
            self.tags.add(element_id.removeprefix("operations-tag-"))
        elif "opblock" in classes and element_id.startswith("operations-"):
            tag_name, _, operation_id = element_id.removeprefix("operations-").partition("-")
            self._operation = operation_id
            self.operations[operation_id] = (tag_name, "", "")
        self._method = "opblock-summary-method" in classes
        if "data-path" in attr and self._operation:
            tag_name, method, _ = self.operations[self._operation]
            self.operations[self._operation] = (tag_name, method, attr["data-path"])
        if tag == "button":
            self._button, self._button_class = [], attr.get("class", "")

    def handle_data(self, data: str) -> None:
        if self._method and self._operation:
            tag_name, _, path = self.operations[self._operation]
            self.operations[self._operation] = (tag_name, data.strip(), path)
            self._method = False
        if self._button is not None:
            self._button.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None:
            self.buttons.append((self._button_class, "".join(self._button).strip()))
            self._button = None


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrgmirrorServer]:
    workdir = tmp_path_factory.mktemp("docs")
    with OrgmirrorServer(cwd=workdir, env=clean_env(workdir), log_dir=workdir) as running:
        yield running


@pytest.fixture(scope="module")
def rendered(server: OrgmirrorServer, tmp_path_factory: pytest.TempPathFactory) -> RenderedDocs:
    profile = tmp_path_factory.mktemp("chromium-profile")
    dom = chromium(profile, "--dump-dom", f"{server.url}/docs").stdout
    page = RenderedDocs()
    page.feed(dom)
    page.close()
    return page


@pytest.fixture(scope="module")
def docs_html(server: OrgmirrorServer) -> str:
    response = httpx.get(f"{server.url}/docs", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def asset_urls(html: str) -> set[str]:
    return set(re.findall(r"""(?:src|href)=["']([^"']+)["']""", html))


# --- the rendered page -----------------------------------------------------------------------


@requires_chromium
def test_swagger_ui_renders_all_eight_org_mirror_operations(rendered: RenderedDocs) -> None:
    shown = {
        operation_id: (method, path)
        for operation_id, (tag, method, path) in rendered.operations.items()
        if tag == "org_mirror"
    }
    assert shown == OPERATIONS


@requires_chromium
def test_swagger_ui_renders_the_org_mirror_tag_section(rendered: RenderedDocs) -> None:
    assert "org_mirror" in rendered.tags


@requires_chromium
def test_swagger_ui_offers_the_authorize_button(rendered: RenderedDocs) -> None:
    authorize = [text for classes, text in rendered.buttons if "authorize" in classes.split()]
    assert authorize == ["Authorize"]


@requires_chromium
def test_rendered_page_links_nothing_on_other_hosts(
    rendered: RenderedDocs, server: OrgmirrorServer
) -> None:
    origin = urlsplit(server.url).netloc
    foreign = {u for u in rendered.urls if urlsplit(urljoin(server.url, u)).netloc != origin}
    assert not foreign
    assert "/docs/assets/swagger-ui-bundle.js" in rendered.urls


@requires_chromium
def test_screenshot_of_docs_is_a_rendered_png(server: OrgmirrorServer, tmp_path: Path) -> None:
    shot = tmp_path / "docs.png"
    chromium(tmp_path / "profile", f"--screenshot={shot}", f"{server.url}/docs")
    width, height, distinct_rows = png_summary(shot.read_bytes())
    assert (width, height) == WINDOW
    # A blank page of this size is ~10 KB with ~12 distinct rows; Swagger UI is ~170 KB, ~650.
    assert shot.stat().st_size > 50_000
    assert distinct_rows > 200


def png_summary(data: bytes) -> tuple[int, int, int]:
    """(width, height, number of distinct scanlines) of an 8-bit RGB/RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, header, idat = 8, b"", b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        offset += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", header[:10])
    assert depth == 8, depth
    assert color in (2, 6), color  # RGB or RGBA
    stride = 1 + width * (3 if color == 2 else 4)
    raw = zlib.decompress(idat)
    assert len(raw) == stride * height
    rows = {raw[i * stride : (i + 1) * stride] for i in range(height)}
    return width, height, len(rows)


# --- the page and its assets -----------------------------------------------------------------


def test_docs_page_references_only_same_origin_urls(docs_html: str) -> None:
    assert not re.findall(r"https?://", docs_html), "absolute URLs (a CDN?) in /docs"
    assert all(url.startswith("/") and not url.startswith("//") for url in asset_urls(docs_html))


def test_docs_assets_are_served_with_their_content_types(
    docs_html: str, server: OrgmirrorServer
) -> None:
    assets = {url for url in asset_urls(docs_html) if url.startswith("/docs/assets/")}
    assert len(assets) >= 5, assets
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for url in sorted(assets):
            response = client.get(url)
            assert response.status_code == 200, url
            expected = CONTENT_TYPES[Path(url).suffix]
            assert response.headers["content-type"].startswith(expected), url
            assert len(response.content) > 100, url


def test_oauth2_redirect_page_is_served_for_the_implicit_flow(server: OrgmirrorServer) -> None:
    response = httpx.get(f"{server.url}/docs/assets/oauth2-redirect.html", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "oauth2" in response.text.lower()


def test_bundled_swagger_ui_is_version_5(server: OrgmirrorServer) -> None:
    response = httpx.get(f"{server.url}/docs/assets/swagger-ui-bundle.js", timeout=10)
    assert response.status_code == 200
    match = re.search(r'PACKAGE_VERSION:"(\d+)\.(\d+)\.(\d+)"', response.text)
    assert match is not None, "no Swagger UI version in the bundle"
    assert int(match.group(1)) == 5, match.group(0)
