"""Every resolution fixture case, and the one repository that holds them all."""

from __future__ import annotations

from codeanatomy_assets_tests.resolution.case import Case
from codeanatomy_assets_tests.resolution.cases_calls import CALL_CASES
from codeanatomy_assets_tests.resolution.cases_imports import IMPORT_CASES
from codeanatomy_assets_tests.resolution.cases_names import (
    ANNOTATION_CASES,
    INHERITANCE_CASES,
    NAME_CASES,
)

CASES: list[Case] = [
    *IMPORT_CASES,
    *NAME_CASES,
    *CALL_CASES,
    *INHERITANCE_CASES,
    *ANNOTATION_CASES,
]


def all_files() -> dict[str, str]:
    """The files of every case, in one tree (each case under its own directory)."""
    files: dict[str, str] = {}
    for case in CASES:
        for path, text in case.files.items():
            assert path.startswith(case.under), (case.name, path)
            files[path] = text
    return files
