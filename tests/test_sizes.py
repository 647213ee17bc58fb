"""`liif_cli.sizes`: one size rule and its arithmetic; and errors that name parameters, each face its own way."""

from __future__ import annotations

import pytest

from liif_cli.errors import InputError, UsageError, flag_name
from liif_cli.imageio import check_pixels
from liif_cli.sizes import SizeSpec, check_output_pixels, exactly_one, output_size, region_span, specs_of


def test_output_size_rounds_as_before():
    assert output_size((750, 1000), scale=4) == (3000, 4000)
    assert output_size((750, 1000), scale=(2, 3)) == (2250, 2000)
    assert output_size((3, 3), scale=1.5) == (4, 4)  # round half to even: 4.5 -> 4
    assert output_size((750, 1000), width=1921) == (1441, 1921)
    assert output_size((750, 1000), height=101) == (101, 135)
    assert output_size((7.5, 10.0), size=(3, 2)) == (2, 3)
    assert region_span((1.0, 2.0, 30.0, 20.0), (100, 100)) == (20.0, 30.0) and region_span(None, (5, 6)) == (5, 6)


def test_one_exactly_one_rule_for_every_door():
    for call in (
        lambda: exactly_one(scale=2.0, width=3),
        lambda: SizeSpec(scale=2.0, width=3),
        lambda: output_size((4, 4), scale=2.0, width=3),
        lambda: specs_of(scale=[2.0], width=[3]),
    ):
        with pytest.raises(UsageError) as caught:
            call()
        assert "(got scale, width)" in str(caught.value)
        assert caught.value.params == ("scale", "size", "width", "height")
    with pytest.raises(UsageError, match="repeat it"):
        specs_of()
    assert specs_of(width=[31, 61, 31]) == (SizeSpec(width=31), SizeSpec(width=61))
    region = (1.0, 1.0, 2.0, 2.0)
    assert [s.region for s in specs_of(scale=[2.0], region=region)] == [region]


def test_errors_name_parameters_and_each_face_names_them():
    with pytest.raises(UsageError) as caught:
        SizeSpec(scale=2.0).resolve((1000, 1000), max_out_pixels=1_000_000)
    exc = caught.value
    assert exc.param == "max_out_pixels"
    library = str(exc)
    assert "--" not in library and library.endswith("(raise it with max out pixels)")
    assert exc.render(flag_name).endswith("(raise it with --max-out-pixels)")
    assert not exc.render(lambda p: None).endswith(")")  # a face whose user cannot change it: no hint
    with pytest.raises(InputError) as caught:
        check_pixels(30, 40, 100, "upload of", "--max-pixels")  # a flag spelling is read as its parameter
    assert caught.value.param == "max_pixels" and "--" not in str(caught.value)
    with pytest.raises(UsageError, match=r"^size 20x20 \(400 pixels\)"):
        check_output_pixels(20, 20, 100, "{size}", "size")


def test_braces_in_values_are_left_alone():
    exc = UsageError("{scale} must be a number, got '{size}{x}'", param="scale")
    assert str(exc) == "scale must be a number, got '{size}{x}'"
    assert exc.render(flag_name) == "--scale must be a number, got '{size}{x}'"
    assert exc.as_kind(InputError).render(flag_name) == exc.render(flag_name)


@pytest.mark.parametrize(
    "size, param", [({"scale": 1e5}, "scale"), ({"scale": 1e308}, "scale"), ({"width": 10**7}, "width")]
)
def test_an_output_over_the_side_limit_is_refused_by_every_door(size, param, model_path):
    """No caller can allocate an output of over a million pixels a side: output_size refuses it (an infinite
    product of a huge scale included), so the API's upscale fails with the size error, not a MemoryError."""
    import numpy as np

    from liif_cli.api import load_model

    with pytest.raises(UsageError) as caught:
        output_size((16, 24), **size)
    assert caught.value.params == (param,) and f"--{param}" in caught.value.render(flag_name)
    with pytest.raises(UsageError) as caught:
        SizeSpec(**size).resolve((16, 24), None)
    assert caught.value.params == (param,)
    up = load_model(model_path, device="cpu", precision="fp32")
    with pytest.raises(UsageError) as caught:
        up.upscale(np.zeros((16, 24, 3), np.uint8), **size)
    assert caught.value.params == (param,)
