"""mypy agrees with tests/typing/check_public_api.py (skipped where mypy is not installed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")

ROOT = Path(__file__).resolve().parents[2]
CHECKS = Path(__file__).with_name("check_public_api.py")


def mypy(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_public_api_types_are_as_documented() -> None:
    result = mypy(CHECKS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_type_assertion_is_caught(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "from typing_extensions import assert_type\n"
        "from salespipeline import presets\n"
        "assert_type(presets.five_stage().stage_names, tuple[int, ...])\n",
        encoding="utf-8",
    )
    result = mypy(wrong)
    assert result.returncode == 1
    assert "assert-type" in result.stdout
