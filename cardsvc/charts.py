"""Charts as plain SVG, for reports a person would rather look at than read (no plotting
library: a bar chart is a few rectangles, and the file opens in any browser)."""

from __future__ import annotations

from collections.abc import Sequence


def bar_chart(title: str, bars: Sequence[tuple[str, int | str]]) -> str:
    """A horizontal bar chart. A bar whose value is text (a suppressed small cell, "<5") is
    drawn as a hatched stub with that text."""
    width, bar_h, left = 640, 22, 220
    height = 60 + bar_h * max(1, len(bars))
    top = max([v for _, v in bars if isinstance(v, int)] or [1]) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12" role="img">',
             f'<title>{_esc(title)}</title>',
             '<defs><pattern id="h" width="6" height="6" patternUnits="userSpaceOnUse">'
             '<path d="M0,6 L6,0" stroke="#999"/></pattern></defs>',
             f'<text x="8" y="20" font-size="14" font-weight="bold">{_esc(title)}</text>']
    for n, (label, value) in enumerate(bars):
        y = 36 + n * bar_h
        parts.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">'
                     f'{_esc(label[:30])}</text>')
        if isinstance(value, int):
            w = max(1, int((width - left - 60) * value / top))
            parts.append(f'<rect x="{left}" y="{y + 3}" width="{w}" height="{bar_h - 6}" '
                         'fill="#2b6cb0"/>')
            parts.append(f'<text x="{left + w + 4}" y="{y + 15}">{value:,}</text>')
        else:
            parts.append(f'<rect x="{left}" y="{y + 3}" width="24" height="{bar_h - 6}" '
                         'fill="url(#h)" stroke="#999"/>')
            parts.append(f'<text x="{left + 28}" y="{y + 15}">{_esc(value)} '
                         '(suppressed)</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
