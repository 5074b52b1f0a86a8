"""`PlainSelect` renders what Django's `Select` renders, to the byte."""

from __future__ import annotations

from typing import Any

import pytest
from django import forms

from config.widgets import PlainSelect

CHOICES: list[tuple[Any, str]] = [
    ("", "Any"),
    ("x&1", 'A <b>"bold"</b>'),
    (2, "two"),
    ("de-CH", "Swiss German – “Grüezi”"),
]


@pytest.mark.parametrize("value", [None, "", "2", "x&1", "nope"])
@pytest.mark.parametrize("attrs", [None, {"id": "id_b", "class": 'a"b', "disabled": True}])
def test_the_same_html_as_djangos_select(value: Any, attrs: Any) -> None:
    mine = PlainSelect(choices=CHOICES).render("b", value, attrs)
    djangos = forms.Select(choices=CHOICES).render("b", value, attrs)

    assert str(mine) == str(djangos)


def test_grouped_choices_take_djangos_path() -> None:
    grouped = [("", "Any"), ("Group <1>", [("a", "A"), ("b", "B")])]

    assert str(PlainSelect(choices=grouped).render("g", "a")) == str(
        forms.Select(choices=grouped).render("g", "a")
    )


def test_in_a_form_the_bound_field_renders_the_same() -> None:
    class Mine(forms.Form):
        b = forms.ChoiceField(required=False, choices=CHOICES, widget=PlainSelect)

    class Djangos(forms.Form):
        b = forms.ChoiceField(required=False, choices=CHOICES)

    assert str(Mine({"b": "2"})["b"]) == str(Djangos({"b": "2"})["b"])
    assert 'value="2" selected' in str(Mine({"b": "2"})["b"])
