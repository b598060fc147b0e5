"""Self-contained HTML pages for people to look at: chat transcripts and benchmark reports.

Media are files next to the page (``<img>``/``<audio>`` with relative paths), so a report folder can be copied or
served as is. Text is always escaped.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from pathlib import Path

from anygpt.media import MediaKind, kind_of_file, preview_png

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; }
th { background: #f3f3f3; text-align: left; } img { image-rendering: pixelated; border: 1px solid #ddd; }
.turn { margin: .8em 0; padding: .6em .9em; border-radius: 8px; } .user { background: #eef4ff; }
.assistant { background: #f4f4f4; }
.role { font-weight: 600; margin-bottom: .3em; } .note { color: #a33; font-size: .9em; }
pre { white-space: pre-wrap; background: #fafafa; padding: .5em; border: 1px solid #eee; }
"""


class HtmlPage:
    """Build a page piece by piece; `write` saves it to ``path`` (media paths are made relative to its folder)."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]

    @staticmethod
    def text(value: object) -> str:
        return html.escape(str(value)).replace("\n", "<br>")

    @staticmethod
    def media(path: str | Path, kind: MediaKind | None, root: str | Path, width: int = 128) -> str:
        """The element a media file of ``kind`` is shown with (``<img>``, ``<audio>``, else a link), referenced relative
        to ``root``. ``kind`` None: the kind its suffix says (`anygpt.media.kind_of_file`); for a modality's files,
        `anygpt.modalities.registry.media_kind_of` gives it."""
        kind = kind if kind is not None else kind_of_file(path)
        rel = html.escape(os.path.relpath(Path(path), Path(root)))
        element = kind.html if kind is not None else None
        if element == "img":
            return f'<img src="{rel}" width="{width}" height="{width}" alt="{rel}">'
        if element == "audio":
            return f'<audio controls preload="none" src="{rel}"></audio>'
        link = f'<a href="{rel}">{rel}</a>'
        png = preview_png(kind, path) if kind is not None else None
        if png is None:
            return link
        data = base64.b64encode(png).decode("ascii")
        return (f'<img src="data:image/png;base64,{data}" width="{width}" height="{width}" alt="{kind.name} preview">'
                f"<br>{link}")

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]], escape: bool = True) -> None:
        """A table; cells are escaped unless ``escape=False`` (cells already built with `media`/`text`)."""
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{self.text(c) if escape else c}</td>" for c in row) + "</tr>"
                       for row in rows)
        self.parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def turn(self, role: str, html_body: str, note: str | None = None) -> None:
        """One chat turn; ``html_body`` is already-built HTML (escaped text and media elements)."""
        extra = f'<div class="note">{html.escape(note)}</div>' if note else ""
        css = "user" if role.lower() in ("user", "human") else "assistant"
        self.parts.append(f'<div class="turn {css}"><div class="role">{html.escape(role)}</div>{html_body}{extra}'
                          "</div>")

    def raw(self, fragment: str) -> None:
        self.parts.append(fragment)

    def render(self) -> str:
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{_STYLE}</style></head><body>{''.join(self.parts)}</body></html>")

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render(), encoding="utf-8")
        return path
