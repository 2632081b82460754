"""The management report (``python -m starter report``): figures per procedure read from the
database, rendered as a table, JSON, CSV or one HTML page (docs/reports.md)."""

from __future__ import annotations

from starter.report.html import as_html
from starter.report.models import Report
from starter.report.render import FORMATS, as_csv, as_json, as_table
from starter.report.service import ReportService

RENDERERS = {"table": as_table, "json": as_json, "csv": as_csv, "html": as_html}

__all__ = ["FORMATS", "RENDERERS", "Report", "ReportService", "render"]


def render(report: Report, form: str) -> str:
    return RENDERERS[form](report)
