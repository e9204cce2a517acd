"""Line protocol encoding and escaping."""

from __future__ import annotations

import math

import pytest

from ingest.errors import LineProtocolError
from ingest.lineproto import Point, encode


def test_telemetry_line() -> None:
    point = Point(measurement="telemetry",
                  tags={"site": "home", "device": "esp32-a1", "board": "yolo-uno"},
                  fields={"temp_c": 21.53, "rh_pct": 55.0, "seq": 1042, "boot": 17},
                  ts_ms=1763800000123)
    assert encode(point) == ("telemetry,board=yolo-uno,device=esp32-a1,site=home "
                             "boot=17i,rh_pct=55.0,seq=1042i,temp_c=21.53 1763800000123")


def test_escaping() -> None:
    point = Point(measurement="my meas,x", tags={"t k,=": "v a,l=ue"},
                  fields={"f k=,": 'say "hi" \\ bye', "b": True, "n": -1.5e-7}, ts_ms=0)
    assert encode(point) == ('my\\ meas\\,x,t\\ k\\,\\==v\\ a\\,l\\=ue '
                             'b=true,f\\ k\\=\\,="say \\"hi\\" \\\\ bye",n=-1.5e-07 0')


def test_empty_tag_values_are_left_out() -> None:
    assert encode(Point(measurement="m", tags={"a": ""}, fields={"x": 1.0}, ts_ms=5)) == "m x=1.0 5"


@pytest.mark.parametrize("point", [
    Point(measurement="m", tags={}, fields={}, ts_ms=1),
    Point(measurement="m", tags={}, fields={"x": math.nan}, ts_ms=1),
    Point(measurement="m", tags={}, fields={"x": math.inf}, ts_ms=1),
    Point(measurement="m", tags={"a": "b\nc"}, fields={"x": 1.0}, ts_ms=1),
    Point(measurement="m\n", tags={}, fields={"x": 1.0}, ts_ms=1),
    Point(measurement="m", tags={}, fields={"x\r": 1.0}, ts_ms=1),
    Point(measurement="m", tags={}, fields={"x": "a\nb"}, ts_ms=1),
    Point(measurement="m", tags={"a": "b\\"}, fields={"x": 1.0}, ts_ms=1),
    Point(measurement="", tags={}, fields={"x": 1.0}, ts_ms=1),
    Point(measurement="m", tags={}, fields={"x": 1.0}, ts_ms=1.5),  # type: ignore[arg-type]
])
def test_unencodable_points_raise(point: Point) -> None:
    with pytest.raises(LineProtocolError):
        encode(point)
