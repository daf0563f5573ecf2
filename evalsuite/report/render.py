"""Render a :class:`~evalsuite.report.model.Report` to one self-contained HTML file.

Jinja2 with autoescape on: every string from the results (query texts, document titles,
system names, gate messages) is escaped; the only unescaped fragments are the SVG charts
(built by :mod:`evalsuite.report.charts`, which escapes its own text) and the page's own CSS
and script. The page loads nothing: no external CSS, script, font or image, and a Content
Security Policy (``default-src 'none'``, the inline style and script allowed by their
SHA-256 hashes) makes the browser refuse any request and any script that is not the
report's own, so even a markup injection that escaped the escaping could not run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from evalsuite.report.model import Report, build_report
from evalsuite.report.verdict import format_p
from evalsuite.results import SuiteResults

__all__ = ["render_html", "report_html"]

#: the report stays one file that a mail or a CI artifact can carry
SIZE_BUDGET = 2 * 1024 * 1024


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    from evalsuite import __version__

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("evalsuite.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = _num
    env.filters["ci"] = _ci
    env.filters["pretty_json"] = lambda v: json.dumps(v, indent=1, sort_keys=True, ensure_ascii=False, default=str)
    env.filters["compact_json"] = lambda v: json.dumps(v, ensure_ascii=False, default=str)
    env.filters["seconds"] = _seconds
    env.filters["grade_mark"] = _grade_mark
    env.filters["pval"] = format_p
    env.globals["evalsuite_version"] = __version__
    return env


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "—" if math.isnan(number) else f"{number:.{digits}f}"


def _ci(ci: Any, digits: int = 3) -> str:
    if ci is None or math.isnan(ci.low) or ci.n < 2:
        return ""
    return f"[{ci.low:.{digits}f}, {ci.high:.{digits}f}]"


def _seconds(value: Any) -> str:
    if value is None:
        return "—"
    s = float(value)
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def _grade_mark(grade: int | None) -> str:
    """● relevant (grade >= 1, repeated per grade up to 3), ○ judged not relevant, · not judged."""
    if grade is None:
        return "·"
    return "○" if grade < 1 else "●" * min(grade, 3)


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def report_html(report: Report) -> str:
    """The HTML text of ``report`` (see the module docstring)."""
    from markupsafe import Markup

    env = _environment()
    css = env.get_template("report.css.j2").render()
    script = env.get_template("report.js.j2").render()
    csp = (f"default-src 'none'; style-src {_csp_hash(css)}; script-src {_csp_hash(script)}; img-src data:; "
           "base-uri 'none'; form-action 'none'")
    return str(env.get_template("report.html.j2").render(report=report, css=Markup(css), script=Markup(script),
                                                         csp=csp))


def render_html(
    results: SuiteResults | Sequence[SuiteResults] | Report,
    output: str | Path,
    *,
    baseline_system: str | None = None,
    compare_system: str | None = None,
    **options: Any,
) -> Path:
    """Write the HTML report of ``results`` to ``output`` (folders created) and return its path.

    ``results``: one or more suite results (their run files and details are read from the
    folder of each ``results.json``) or a prebuilt :class:`Report`. ``baseline_system``: the
    system the others are tested against (default: the first); ``compare_system``: the
    challenger of the per-query drill-down (default: the best other system per task). Other
    keyword options go to :func:`~evalsuite.report.model.build_report`.
    """
    from evalsuite.io._text import atomic_write

    report = results if isinstance(results, Report) else build_report(
        results, baseline_system=baseline_system, compare_system=compare_system, **options)
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as fh:
        fh.write(report_html(report))
    return path
