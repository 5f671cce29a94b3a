"""Output validators: each output table matches its contract, and is non-empty where it must.

Attached to the synthesized output nodes with Hamilton's ``check_output_custom``; importance
``fail`` stops the run before anything wrong reaches Delta.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hamilton.data_quality.base import DataValidator, ValidationResult

from codeanatomy_assets.cpg.schemas import OUTPUT_CONTRACTS


class ContractValidator(DataValidator):
    """Schema equal to the contract; at least one row when the contract says non-empty."""

    def __init__(self, output: str) -> None:
        super().__init__(importance="fail")
        self.contract = OUTPUT_CONTRACTS[output]

    def applies_to(self, datatype: type[type]) -> bool:
        return True

    def description(self) -> str:
        return f"{self.contract.name} matches its schema contract" + (
            " and is non-empty" if self.contract.non_empty else ""
        )

    @classmethod
    def name(cls) -> str:
        return "contract"

    def validate(self, dataset: Any) -> ValidationResult:
        if not isinstance(dataset, pa.Table):
            return ValidationResult(False, f"expected a pyarrow.Table, got {type(dataset)}")
        if not dataset.schema.equals(self.contract.schema):
            return ValidationResult(
                False,
                f"{self.contract.name}: schema differs from the contract",
                {"expected": str(self.contract.schema), "actual": str(dataset.schema)},
            )
        if self.contract.non_empty and dataset.num_rows == 0:
            return ValidationResult(False, f"{self.contract.name} is empty")
        return ValidationResult(True, f"{self.contract.name}: {dataset.num_rows} rows, schema ok")
