"""The dashboard's server-side SVG charts: well-formed, labelled for screen readers, scaled to
nice numbers, budget line only when it is within reach, every text escaped."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from web import charts

SVG = "{http://www.w3.org/2000/svg}"


def parsed(svg: str) -> ET.Element:
    return ET.fromstring(svg)


@pytest.mark.parametrize(("value", "expected"), [
    (0, 1), (1, 1), (1.5, 2), (3, 5), (7, 10), (10, 10), (11, 20), (45, 50), (51, 100), (999, 1000), (1001, 2000),
])
def test_nice_ceiling_rounds_up_to_one_two_or_five_times_a_power_of_ten(value, expected):
    assert charts.nice_ceiling(value) == expected


def days(*totals: tuple[int, int]) -> list[charts.DayBar]:
    return [charts.DayBar(f"{index + 1} Mar", ok, failed) for index, (ok, failed) in enumerate(totals)]


def test_daily_bars_is_a_labelled_image_with_one_group_per_day_and_stacked_failures():
    svg = charts.daily_bars(days((3, 1), (0, 0), (5, 0)), chart_id="calls", title="Calls per day", budget=8)
    root = parsed(svg)
    assert root.get("role") == "img" and root.get("aria-labelledby") == "calls-title calls-desc"
    assert root.find(f"{SVG}title").text == "Calls per day"
    description = root.find(f"{SVG}desc").text
    assert "3 days, 9 calls in all, 1 failed; busiest day 5 calls. Daily budget 8 calls." == description
    groups = root.findall(f"{SVG}g")
    assert [g.find(f"{SVG}title").text for g in groups] == [
        "1 Mar: 3 successful, 1 failed", "2 Mar: 0 successful, 0 failed", "3 Mar: 5 successful, 0 failed"]
    assert [r.get("class") for r in groups[0].findall(f"{SVG}rect")] == ["chart-ok", "chart-bad"]
    assert groups[1].findall(f"{SVG}rect") == []
    assert len(root.findall(f"{SVG}line[@class='chart-budget']")) == 1


def test_a_budget_far_above_the_bars_is_left_off_the_scale_and_said_in_words():
    svg = charts.daily_bars(days((10, 0), (20, 0)), chart_id="c", title="t", budget=1000)
    root = parsed(svg)
    assert root.findall(f"{SVG}line[@class='chart-budget']") == []
    assert root.find(f"{SVG}desc").text.endswith("Daily budget 1000 calls, above the scale shown.")
    axis = [t.text for t in root.findall(f"{SVG}text[@class='chart-axis']")]
    assert "20" in axis and "1000" not in axis


def test_bar_heights_are_proportional_to_the_scale():
    root = parsed(charts.daily_bars(days((50, 0), (25, 25)), chart_id="c", title="t", height=240))
    heights = [float(r.get("height")) for r in root.iter(f"{SVG}rect")]
    assert heights[0] == pytest.approx(heights[1] + heights[2])
    assert heights[1] == pytest.approx(heights[2])


def test_an_empty_history_still_draws_axes():
    root = parsed(charts.daily_bars([], chart_id="c", title="t"))
    assert root.findall(f"{SVG}rect") == [] and root.findall(f"{SVG}line")


def test_horizontal_bars_label_every_row_and_escape_text():
    svg = charts.horizontal_bars([charts.Bar("In transit", 12, "neutral"), charts.Bar("<b>&</b>", 3, "bad")],
                                 chart_id="s", title="By <status>")
    assert "<b>" not in svg and "&lt;b&gt;&amp;&lt;/b&gt;" in svg and "By &lt;status&gt;" in svg
    root = parsed(svg)
    assert [t.text for t in root.findall(f"{SVG}text[@class='chart-value']")] == ["12", "3"]
    rects = root.findall(f"{SVG}rect")
    assert [r.get("class") for r in rects] == ["chart-neutral", "chart-bad"]
    assert float(rects[0].get("width")) == pytest.approx(4 * float(rects[1].get("width")))
    assert root.find(f"{SVG}desc").text == "15 in all. In transit: 12; <b>&</b>: 3."


def test_horizontal_bars_with_nothing_say_so():
    assert "Nothing to show" in charts.horizontal_bars([], chart_id="s", title="t")


@pytest.mark.parametrize(("used", "total", "tone"), [
    (0, 100, "ok"), (69, 100, "ok"), (70, 100, "warn"), (89, 100, "warn"), (90, 100, "bad"), (150, 100, "bad"),
    (0, 0, "bad"),
])
def test_meter_tone_warns_at_70_and_alarms_at_90_percent(used, total, tone):
    assert charts.meter_tone(used, total) == tone


def test_the_meter_fills_its_share_and_marks_the_reserve():
    root = parsed(charts.meter(250, 1000, chart_id="m", title="Budget", width=400, reserve=950))
    track, fill = root.findall(f"{SVG}rect")
    assert (track.get("class"), fill.get("class"), fill.get("width")) == ("chart-track", "chart-ok", "100")
    assert root.find(f"{SVG}line").get("x1") == "380"
    assert root.find(f"{SVG}desc").text == "250 of 1000 used (25 %). Scheduled polls stop at 950."
    full = parsed(charts.meter(1200, 1000, chart_id="m", title="Budget", width=400))
    assert full.findall(f"{SVG}rect")[1].get("width") == "400"


def test_day_labels_count_back_from_today_and_the_last_one_stays_inside():
    root = parsed(charts.daily_bars(days(*[(1, 0)] * 12), chart_id="c", title="t", width=560, label_every=5))
    labels = [t for t in root.findall(f"{SVG}text[@class='chart-axis']") if "Mar" in (t.text or "")]
    assert [t.text for t in labels] == ["2 Mar", "7 Mar", "12 Mar"]
    assert labels[-1].get("text-anchor") == "end" and float(labels[-1].get("x")) <= 560
