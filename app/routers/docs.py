"""Swagger UI served from the service itself: mirrors run air-gapped, so no CDN (SPEC §5.3).

The assets come from the ``swagger-ui-py`` wheel (Swagger UI 5, which renders OpenAPI 3.1);
only its static files are used, located without importing the package.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "index.css": "text/css",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
    "oauth2-redirect.html": "text/html",
}

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="stylesheet" href="/docs/assets/index.css">
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="/docs/assets/favicon-16x16.png" sizes="16x16">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: {openapi_url},
      dom_id: "#swagger-ui",
      deepLinking: true,
      persistAuthorization: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      plugins: [SwaggerUIBundle.plugins.DownloadUrl],
      layout: "StandaloneLayout",
      oauth2RedirectUrl: window.location.origin + "/docs/assets/oauth2-redirect.html"
    }});
    window.ui.initOAuth({{scopes: ["org:admin"]}});
  </script>
</body>
</html>
"""


def _assets_dir() -> Path:
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed; reinstall orgmirror's dependencies")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def build_router(title: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    directory = _assets_dir()
    page = _PAGE.format(title=title, openapi_url=json.dumps("/openapi.json"))

    @router.get("/docs")
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(page)

    @router.get("/docs/assets/{name}")
    async def swagger_asset(name: str) -> FileResponse:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise HTTPException(status_code=404, detail=f"No documentation asset '{name}'")
        return FileResponse(directory / name, media_type=media_type)

    return router
