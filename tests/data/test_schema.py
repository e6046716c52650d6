"""Schema validation: canonical dtypes, derived dates, and one clear reason per bad value."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from personax.data.schema import (
    CANONICAL_COLUMNS,
    DataValidationError,
    date_features,
    empty_person_table,
    validate_persons,
)


def _validate(rows: list[dict], **kwargs):
    return validate_persons(pd.DataFrame(rows, dtype=object), source="bios.csv", dataset="celeb", **kwargs)


def test_valid_rows_get_canonical_dtypes_and_derived_dates():
    result = _validate(
        [
            {"person_id": "p1", "birth_year": "1990", "birth_month": "12", "birth_day": "31", "height_cm": "180.5",
             "group": "actor", "gender": "male", "Big_Nose": "1", "trait_gpt_o": "2"},
            {"person_id": "p2", "birth_year": 1991, "birth_month": 1, "birth_day": 1, "group": "writer",
             "gender": "female", "Big_Nose": -1, "trait_gpt_o": 0},
        ]
    )
    table = result.table
    assert result.problems == []
    assert list(table.columns) == [*CANONICAL_COLUMNS, "trait_gpt_o"]
    assert str(table.birth_year.dtype) == "Int64" and str(table.Big_Nose.dtype) == "Int8"
    assert table.height_cm.tolist()[0] == 180.5 and math.isnan(table.height_cm.tolist()[1])
    assert table.day_of_year.tolist() == [365, 1]
    # 31 Dec and 1 Jan are neighbours on the circle.
    assert table.day_cos.tolist()[1] == pytest.approx(1.0)
    assert table.day_cos.tolist()[0] == pytest.approx(math.cos(2 * math.pi * 364 / 365))
    assert result.label_maps == {"group": {"actor": 0, "writer": 1}, "gender": {"female": 0, "male": 1}}
    assert table.group.tolist() == [0, 1] and table.dataset.tolist() == ["celeb", "celeb"]


def test_leap_day_is_valid_only_in_leap_years():
    result = _validate(
        [
            {"person_id": "a", "birth_year": 2000, "birth_month": 2, "birth_day": 29},
            {"person_id": "b", "birth_year": 1999, "birth_month": 2, "birth_day": 29},
        ]
    )
    assert result.table.person_id.tolist() == ["a"]
    assert result.problems[0].reason == "impossible date 1999-02-29"
    assert date_features(2000, 2, 29)[0] == 60


def test_integer_codes_are_kept_and_checked_against_a_given_label_map():
    result = _validate(
        [{"person_id": "a", "group": 1}, {"person_id": "b", "group": "7"}],
        label_maps={"group": {"NBA": 0, "NFL": 1}},
    )
    assert result.table.group.tolist() == [1]
    assert "code 7 is not in the label map" in result.problems[0].reason


def test_nothing_valid_is_dropped_and_order_is_kept():
    rows = [{"person_id": f"p{i}", "height_cm": 170 + i} for i in range(6)]
    rows[2]["height_cm"] = -5
    rows[4]["weight_kg"] = "heavy"
    result = _validate(rows)
    assert result.table.person_id.tolist() == ["p0", "p1", "p3", "p5"]
    assert result.kept == [0, 1, 3, 5]
    assert [(p.row, p.column) for p in result.problems] == [(3, "height_cm"), (5, "weight_kg")]


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        ({"person_id": "x", "birth_year": 1990, "birth_month": 2, "birth_day": 30}, "birth_day", "impossible date 1990-02-30"),
        ({"person_id": "x", "height_cm": "-170"}, "height_cm", "negative value -170 outside the plausible range"),
        ({"person_id": "x", "height_cm": "tall"}, "height_cm", "expected a number, got 'tall'"),
        ({"person_id": "x", "weight_kg": "inf"}, "weight_kg", "not a finite number"),
        ({"person_id": "x", "birth_year": "nineteen"}, "birth_year", "expected an integer, got 'nineteen'"),
        ({"person_id": "x", "birth_year": "1990.5"}, "birth_year", "expected an integer"),
        ({"person_id": "x", "birth_year": 3020}, "birth_year", "birth year 3020 outside"),
        ({"person_id": "x", "birth_month": 13}, "birth_month", "birth month 13 outside 1..12"),
        ({"person_id": "x", "birth_day": 5}, "birth_month", "birth day given without a birth month"),
        ({"person_id": "x", "latitude": 91}, "latitude", "outside the plausible range [-90, 90]"),
        ({"person_id": "x", "Big_Nose": 0}, "Big_Nose", "face attribute must be -1 or +1"),
        ({"person_id": "x", "trait_gpt_o": 7}, "trait_gpt_o", "trait score must be a number in [0, 5]"),
        ({"person_id": "x", "bio": "caf\udce9"}, "bio", "not valid UTF-8 text (byte 0xe9"),
        ({"person_id": "x", "bio": b"caf\xe9"}, "bio", "not valid UTF-8 text"),
        ({"person_id": None}, "person_id", "missing person_id"),
        ({"person_id": "x", "dataset": "footballers"}, "dataset", "dataset must be one of"),
    ],
)
def test_bad_values_are_reported_with_row_column_and_reason(row, column, reason):
    result = _validate([{"person_id": "ok"}, row])
    assert result.table.person_id.tolist() == ["ok"]
    assert len(result.problems) == 1
    problem = result.problems[0]
    assert (problem.source, problem.row, problem.column) == ("bios.csv", 2, column)
    assert reason in problem.reason
    assert "bios.csv row 2" in problem.describe() and f"column '{column}'" in problem.describe()


def test_duplicate_ids_keep_the_first_and_name_it():
    result = _validate([{"person_id": "a"}, {"person_id": "b"}, {"person_id": " a "}])
    assert result.table.person_id.tolist() == ["a", "b"]
    assert result.problems[0].reason == "duplicate person_id (first at row 1)"
    assert result.problems[0].row == 3


def test_missing_id_column_and_unknown_columns_fail_with_the_column_lists():
    with pytest.raises(DataValidationError, match=r"missing required column 'person_id'.*unexpected columns \['heigth'\]"):
        _validate([{"name": "x", "heigth": 170}])


def test_a_row_with_several_problems_lists_each():
    result = _validate([{"person_id": "x", "height_cm": -1, "latitude": 200}])
    assert sorted(p.column for p in result.problems) == ["height_cm", "latitude"]


def test_error_message_lists_problems_and_the_way_out():
    result = _validate([{"person_id": f"p{i}", "height_cm": -1} for i in range(30)])
    err = DataValidationError(result.problems, hint="set data.strict=false")
    text = str(err)
    assert text.startswith("30 problem(s)") and "... and 10 more" in text and "data.strict=false" in text


def test_empty_table_has_canonical_columns():
    assert list(empty_person_table().columns) == list(CANONICAL_COLUMNS)
