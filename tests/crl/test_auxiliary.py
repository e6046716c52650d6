"""Auxiliary covariates for the iVAE prior: design matrix and clear errors."""

from __future__ import annotations

import pandas as pd
import pytest

from personax.crl._auxiliary import auxiliary_design


def test_missing_or_absent_auxiliary_columns_fail_naming_column_and_row():
    table = pd.DataFrame({"group": ["a", None, "b"], "year": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=r"column 'group' of the person table is missing in row 1"):
        auxiliary_design(table, ["group"])
    with pytest.raises(ValueError, match=r"has no column 'league'"):
        auxiliary_design(table, ["league"])
    design, names = auxiliary_design(table, ["year"])
    assert names == ["year"] and abs(float(design.mean())) < 1e-6
