"""A stats snapshot (see `selectors.report_snapshot`) as an email body, CSV, PDF and a chart.

Pure: no ORM, no network. The one chart is drawn once, with Pillow, as a PNG; the email shows
it as an inline (CID) image and the PDF embeds the same bytes, so both always agree.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from django.template.loader import render_to_string
from PIL import Image, ImageDraw, ImageFont
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    Image as PdfImage,
)
from reportlab.platypus import (
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

CHART_CID = "puna-chart"
SENTIMENT_COLOURS = {"negative": "#c0392b", "neutral": "#95a5a6", "positive": "#27ae60"}
_CHART_SIZE = (720, 260)


def percent(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:+.0f}%" if value else "0%"


def _share(value: float) -> str:
    return f"{value * 100:.0f}%"


def chart_png(stats: dict[str, Any]) -> bytes:
    """Stacked daily bars (negative, neutral, positive) over the period, as PNG bytes."""
    width, height = _CHART_SIZE
    left, right, top, bottom = 40, 10, 28, 28
    image = Image.new("RGB", _CHART_SIZE, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=12)
    draw.text((left, 6), "Comments per day by sentiment", fill="#333333", font=font)
    x = width - right - 260
    for sentiment, colour in SENTIMENT_COLOURS.items():
        draw.rectangle((x, 9, x + 10, 19), fill=colour)
        draw.text((x + 14, 6), sentiment, fill="#333333", font=font)
        x += 86
    days = stats["trend"]
    peak = max((d["total"] for d in days), default=0) or 1
    plot_h = height - top - bottom
    draw.line((left, height - bottom, width - right, height - bottom), fill="#999999")
    draw.text((4, top - 6), str(peak), fill="#666666", font=font)
    draw.text((4, height - bottom - 8), "0", fill="#666666", font=font)
    if days:
        slot = (width - left - right) / len(days)
        bar = max(1.0, slot * 0.7)
        for i, day in enumerate(days):
            x0 = left + i * slot + (slot - bar) / 2
            y = float(height - bottom)
            for sentiment in ("negative", "neutral", "positive"):
                h = day[sentiment] / peak * plot_h
                if h > 0:
                    draw.rectangle((x0, y - h, x0 + bar, y), fill=SENTIMENT_COLOURS[sentiment])
                y -= h
            # Label a handful of days so long (monthly) periods stay readable.
            if len(days) <= 10 or i % max(1, len(days) // 8) == 0:
                draw.text((x0, height - bottom + 4), day["day"][5:], fill="#666666", font=font)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _context(stats: dict[str, Any], chart_src: str) -> dict[str, Any]:
    share = stats["sentiment_share"]
    before = stats["previous_sentiment_share"]
    return {
        "stats": stats,
        "chart_src": chart_src,
        "change": percent(stats["change"]),
        "sentiment_rows": [
            {
                "label": s.capitalize(),
                "count": stats["sentiment"][s],
                "share": _share(share[s]),
                "previous": _share(before[s]) if stats["previous_total"] else "n/a",
                "colour": SENTIMENT_COLOURS[s],
            }
            for s in ("negative", "neutral", "positive")
        ],
        "breakdowns": [
            ("Language", stats["language"]),
            ("Category", stats["category"]),
            ("Source", stats["source"]),
            ("Flagged, by reason", stats["flagged_by_reason"]),
        ],
    }


def html_body(stats: dict[str, Any], *, chart_src: str = f"cid:{CHART_CID}") -> str:
    """The email's HTML. `chart_src` is the CID in email, a data: URI in previews."""
    return render_to_string("reports/email/report.html", _context(stats, chart_src))


def text_body(stats: dict[str, Any]) -> str:
    return render_to_string("reports/email/report.txt", _context(stats, ""))


def csv_text(stats: dict[str, Any]) -> str:
    """One row per number: section, key, value (spreadsheet-friendly, stable columns)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "key", "value"])
    writer.writerow(["period", "start", stats["period_start"]])
    writer.writerow(["period", "end", stats["period_end"]])
    writer.writerow(["period", "timezone", stats["timezone"]])
    writer.writerow(["volume", "total", stats["total"]])
    writer.writerow(["volume", "previous_total", stats["previous_total"]])
    writer.writerow(["volume", "change", "" if stats["change"] is None else stats["change"]])
    writer.writerow(["volume", "flagged", stats["flagged"]])
    for section in ("sentiment", "language", "category", "source", "flagged_by_reason"):
        for key, value in stats[section].items():
            writer.writerow([section, _safe_cell(key), value])
    for day in stats["trend"]:
        for key in ("total", "negative", "neutral", "positive"):
            writer.writerow([f"day:{day['day']}", key, day[key]])
    for term in stats["rising_terms"]:
        writer.writerow(["rising_term", _safe_cell(term["term"]), term["count"]])
    return out.getvalue()


def _safe_cell(value: str) -> str:
    # Category names and terms come from users: keep spreadsheets from running them as formulas.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def pdf_bytes(stats: dict[str, Any], chart: bytes) -> bytes:
    """A one-to-two page PDF with the key numbers, the chart and the breakdowns."""
    styles = getSampleStyleSheet()
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        title=f"{stats['org']} feedback report",
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
    )
    grid = TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#bbbbbb")),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
            ("FONTSIZE", (0, 0), (-1, -1), 9),
        ]
    )
    context = _context(stats, "")
    story: list[Any] = [
        Paragraph(_esc(f"{stats['org']} — {stats['title'] or 'Feedback report'}"), styles["Title"]),
        Paragraph(_esc(f"{stats['period_label']} ({stats['timezone']})"), styles["Normal"]),
        Spacer(1, 6 * mm),
    ]
    key_numbers = [
        ["Comments", "Change vs previous", "Previous period", "Flagged"],
        [
            str(stats["total"]),
            context["change"],
            str(stats["previous_total"]),
            str(stats["flagged"]),
        ],
    ]
    story += [Table(key_numbers, style=grid, hAlign="LEFT"), Spacer(1, 5 * mm)]
    sentiment = [["Sentiment", "Count", "Share", "Previous share"]] + [
        [r["label"], str(r["count"]), r["share"], r["previous"]] for r in context["sentiment_rows"]
    ]
    story += [Table(sentiment, style=grid, hAlign="LEFT"), Spacer(1, 5 * mm)]
    width = doc.width
    story += [
        PdfImage(io.BytesIO(chart), width=width, height=width * _CHART_SIZE[1] / _CHART_SIZE[0]),
        Spacer(1, 5 * mm),
    ]
    for title, counts in context["breakdowns"]:
        if counts:
            rows = [[title, "Count"]] + [[str(k), str(v)] for k, v in counts.items()]
            story += [Table(rows, style=grid, hAlign="LEFT"), Spacer(1, 4 * mm)]
    for label, key in (
        ("Representative positive comments", "positive"),
        ("Representative negative comments", "negative"),
    ):
        if stats["highlights"][key]:
            story.append(Paragraph(label, styles["Heading3"]))
            story += [
                Paragraph(_esc(f"“{h['text']}” — {h['source']}"), styles["Normal"])
                for h in stats["highlights"][key]
            ]
    if stats["rising_terms"]:
        story.append(Paragraph("Rising terms", styles["Heading3"]))
        story.append(
            Paragraph(
                _esc(", ".join(f"{t['term']} ({t['count']})" for t in stats["rising_terms"])),
                styles["Normal"],
            )
        )
    doc.build(story)
    return out.getvalue()


def _esc(text: str) -> str:
    # ReportLab paragraphs parse a small XML markup: user text must not be read as tags.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
