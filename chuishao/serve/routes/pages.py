"""The operator page (static HTML, with its script and style as files: the page's
Content-Security-Policy allows no inline code; see headers.py)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter()


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")


@router.api_route("/static/app.js", methods=["GET", "HEAD"], include_in_schema=False)
async def script() -> FileResponse:
    return FileResponse(STATIC / "app.js", media_type="text/javascript; charset=utf-8")


@router.api_route("/static/app.css", methods=["GET", "HEAD"], include_in_schema=False)
async def style() -> FileResponse:
    return FileResponse(STATIC / "app.css", media_type="text/css; charset=utf-8")
