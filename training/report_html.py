"""The run report as one self-contained HTML file: report.md rendered, every plot inline.

Only the Markdown that training/report.py writes is rendered (headings, paragraphs, "- "
lists, pipe tables, **bold**, `code`, images on their own line), so no Markdown library is
needed, and every piece of text is HTML-escaped before any markup is added: a model or class
name cannot inject markup. The page's Content-Security-Policy allows no script and no
network at all, only its inline style and data: images, so it opens from disk anywhere.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 0; color: #1b1b1b; background: #fff; }
main { max-width: 60rem; margin: 0 auto; padding: 1rem 1.25rem 3rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5rem 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: .2rem .5rem; text-align: left; white-space: nowrap; }
th { background: #f3f3f3; } code { background: #f3f3f3; padding: 0 .2rem; }
img { max-width: 100%; height: auto; display: block; margin: .5rem 0; }
"""
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<path>[^)]+)\)$")
_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg"}


def _inline(text: str) -> str:
    escaped = html.escape(text, quote=True)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _image(alt: str, target: str, base: Path) -> str:
    path = (base / target).resolve()
    mime = _MIME.get(path.suffix.lower())
    if mime is None or not path.is_file():
        return f"<p>{_inline(f'(image {target} not found)')}</p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt, quote=True)}" src="data:{mime};base64,{data}">'


def render(markdown: str, base: Path, title: str) -> str:
    """The page; ``base``: the folder image paths are relative to."""
    out: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 6)
            out.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
            i += 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i])
                i += 1
            header, body = _cells(rows[0]), [r for r in rows[1:] if not set(r) <= set("|-: ")]
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in header))
            out.append("</tr></thead><tbody>")
            for row in body:
                out.append(
                    "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(row)) + "</tr>"
                )
            out.append("</tbody></table>")
        elif line.startswith("- "):
            out.append("<ul>")
            while i < len(lines) and lines[i].startswith("- "):
                out.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("</ul>")
        elif match := _IMAGE.match(line.strip()):
            out.append(_image(match["alt"], match["path"], base))
            i += 1
        else:
            paragraph = []
            while i < len(lines) and lines[i].strip() and lines[i][0] not in "#|-!":
                paragraph.append(lines[i])
                i += 1
            if not paragraph:  # a line starting like a block that is not one
                paragraph, i = [line], i + 1
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n"
        "<body><main>\n" + "\n".join(out) + "\n</main></body></html>\n"
    )
