"""Study reports: tables and plots from the store (Markdown, HTML, PNG).

from biotune.report import write_report
files = write_report(Path("runs/quick"))   # report.md, report.html, seeds_<dataset>.png
"""

from biotune.report.build import ReportFiles, build_sections, write_report
from biotune.report.tables import CellSummary, Stats, summarize_cells

__all__ = ["CellSummary", "ReportFiles", "Stats", "build_sections", "summarize_cells", "write_report"]
