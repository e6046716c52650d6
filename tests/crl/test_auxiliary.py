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


def test_category_codes_named_as_categorical_are_one_hot_not_a_number():
    """Ingest stores occupation as codes 0..7 (with a label map); as a number it would order the
    occupations on a line. Named as categorical, each code is its own indicator."""
    table = pd.DataFrame({"group": [0, 2, 1, 2], "birth_year": [1950, 1960, 1970, 1980]})
    design, names = auxiliary_design(table, ["group", "birth_year"], categorical=["group"])
    assert names == ["group=1", "group=2", "birth_year"]
    assert design[:, :2].tolist() == [[0, 0], [0, 1], [1, 0], [0, 1]]
    assert auxiliary_design(table, ["group"])[1] == ["group"]  # not named: a standardised number
