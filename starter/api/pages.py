"""Serving the staff pages: where their files are, the headers every page is sent with, and
the addresses that lead to My work (the home page, and the retired approvals page's)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# The pages load only their own scripts and styles and talk only to this API, so a script
# injected through data shown on them has nowhere to load from or send to.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter()


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/work")


@router.get("/approvals", include_in_schema=False)
async def approvals_page() -> RedirectResponse:
    """The approvals page was folded into My work; its bookmarks and links lead there. The
    browser keeps the fragment, and My work reads the ``#case/<id>`` form they use."""
    return RedirectResponse("/work", status_code=301)
