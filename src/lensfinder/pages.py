"""HTML pages, rendered from the Jinja2 templates in ``lensfinder/templates/`` (package
data) with autoescaping on: every value from a run is escaped, nothing is concatenated
into markup by hand. Snakemake's report shows these pages inline.
"""

from __future__ import annotations

import math
import os

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from lensfinder.tables import atomic_path


def pct(x) -> str:
    """A fraction as a percentage with one decimal; an en dash for missing values."""
    return "\u2013" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def ci(v) -> str:
    """A 95% interval of fractions as [lo, hi] in percent (signed when it reaches below 0)."""
    signed = v[0] < 0 or v[1] < 0
    return f"[{100 * v[0]:+.1f}, {100 * v[1]:+.1f}]" if signed else f"[{100 * v[0]:.1f}, {100 * v[1]:.1f}]"


_ENV = Environment(loader=PackageLoader("lensfinder", "templates"), autoescape=select_autoescape(["html", "j2"]),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
_ENV.filters.update(pct=pct, ci=ci)


def render(template: str, **context) -> str:
    """``template`` (a file name under ``lensfinder/templates/``) rendered with ``context``."""
    return _ENV.get_template(template).render(**context)


def write_page(path: str | os.PathLike, template: str, **context) -> None:
    """Render ``template`` and write it to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(render(template, **context))
