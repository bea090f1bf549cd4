"""A report as a list of sections (text, tables, images), rendered to Markdown and to HTML alike."""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Image:
    file: str
    alt: str


@dataclass
class Section:
    title: str
    level: int = 2
    blocks: list[str | Table | Image] = field(default_factory=list)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"{'#' * section.level} {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                lines.append("| " + " | ".join(_md_cell(h) for h in block.headers) + " |")
                lines.append("|" + "|".join("---" for _ in block.headers) + "|")
                lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            elif isinstance(block, Image):
                lines.append(f"![{block.alt}]({block.file})")
            else:
                lines.append(block)
            lines.append("")
    return "\n".join(lines)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; }
"""


def _looks_numeric(text: str) -> bool:
    return bool(text) and (text[0].isdigit() or text[0] in "+-−") and any(ch.isdigit() for ch in text)


def to_html(title: str, sections: list[Section]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        level = min(section.level, 6)
        parts.append(f"<h{level}>{html.escape(section.title)}</h{level}>")
        for block in section.blocks:
            if isinstance(block, Table):
                parts.append(
                    "<table><thead><tr>"
                    + "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
                    + "</tr></thead><tbody>"
                )
                for row in block.rows:
                    cells = "".join(
                        f'<td class="num">{html.escape(c)}</td>'
                        if _looks_numeric(c)
                        else f"<td>{html.escape(c)}</td>"
                        for c in row
                    )
                    parts.append(f"<tr>{cells}</tr>")
                parts.append("</tbody></table>")
            elif isinstance(block, Image):
                parts.append(f'<p><img src="{html.escape(block.file)}" alt="{html.escape(block.alt)}"></p>')
            else:
                parts.append(f"<p>{_inline_code(block)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _inline_code(text: str) -> str:
    """Escape, then turn Markdown `code` spans into <code> (the only inline markup the report uses)."""
    pieces = html.escape(text).split("`")
    return "".join(f"<code>{piece}</code>" if index % 2 else piece for index, piece in enumerate(pieces))
