"""The ``report`` command's options: output formats, the currency and its rates (private).

Rendering lives in ``salespipeline.metrics``; this module only checks the options,
picks the renderer and writes the result where it was asked for, once it is complete.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final

from salespipeline import metrics
from salespipeline.errors import ValidationError
from salespipeline.metrics import PipelineReport
from salespipeline.metrics._money import Money, to_money

__all__ = ["FORMATS", "checked_output", "currency", "rates", "rendered", "write"]


def _json_lines(*reports: PipelineReport) -> str:
    """One ``to_dict()`` object per line (JSON Lines): one report is one JSON document."""
    return "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in reports)


_RENDERERS: Final[Mapping[str, Callable[..., str]]] = {
    "json": _json_lines,
    "csv": metrics.render_csv,
    "html": metrics.render_html,
}
FORMATS: Final = ("text", *_RENDERERS)


def rendered(form: str, reports: Sequence[PipelineReport]) -> str:
    """``reports`` in ``form`` (json, csv or html; text is rendered with follow-ups)."""
    return _RENDERERS[form](*reports)


def rates(currency: str | None, pairs: Sequence[str]) -> dict[str, Decimal] | None:
    """The ``--rate CODE=RATE`` pairs as report rates, each checked; None when none given."""
    if not pairs:
        return None
    if currency is None:
        raise ValidationError("--rate needs --currency, the currency to convert into")
    found: dict[str, Decimal] = {}
    for pair in pairs:
        checked = _money(currency, dict([_pair(pair)]), f"--rate {pair!r}").rates or {}
        [(code, rate)] = checked.items()
        if code in found:
            raise ValidationError(f"--rate names {code} twice")
        found[code] = rate
    return found


def currency(code: str | None) -> str | None:
    """The ``--currency`` code, checked as a report checks it."""
    if code is not None:
        return _money(code, None, "--currency").currency
    return None


def _pair(pair: str) -> tuple[str, Decimal]:
    code, sep, text = pair.partition("=")
    if not sep or not code.strip() or not text.strip():
        raise ValidationError(f"--rate takes CODE=RATE, for example EUR=1.08, not {pair!r}")
    try:
        return code.strip(), Decimal(text.strip())
    except InvalidOperation:
        raise ValidationError(f"--rate {pair!r}: {text!r} is not a decimal number") from None


def _money(code: str, rates: Mapping[str, Decimal] | None, option: str) -> Money:
    """The currency and rates as ``metrics.report`` checks them; a refusal names ``option``."""
    try:
        return to_money(code, rates)
    except ValidationError as error:
        reason = str(error).removeprefix("currency: ")
        raise ValidationError(f"{option}: {reason}") from None


def checked_output(path: Path | None, db: Path) -> Path | None:
    """``--output``, if the file system can name it and it is not the database itself."""
    if path is None:
        return None
    try:
        encoded = os.fsencode(path)
    except UnicodeEncodeError:
        encoded = b"\x00"
    if b"\x00" in encoded:
        raise ValidationError(f"--output {str(path)!r} cannot name a file")
    if path.exists() and db.exists() and path.samefile(db):
        raise ValidationError(f"--output {path} is the database itself: pick another file")
    return path


def write(text: str, output: Path | None) -> None:
    """``text`` to ``output`` (created or replaced, UTF-8, line ends kept), else stdout."""
    if output is None:
        sys.stdout.write(text)
        return
    with output.open("w", encoding="utf-8", newline="") as file:
        file.write(text)
