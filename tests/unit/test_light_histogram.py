"""The light histogram is exported exactly as prometheus_client's Histogram would export the same
observations (buckets, count, sum), so dashboards and alert rules do not see the difference."""
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from web.metrics import LightHistogram

BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def series(text: bytes) -> list[str]:
    return sorted(line for line in text.decode().splitlines()
                  if line.startswith("reads_seconds_") and "_created" not in line)


@given(st.lists(st.tuples(st.sampled_from(["guest", "customer"]),
                          st.one_of(st.sampled_from(BUCKETS), st.floats(0, 3))), max_size=40))
def test_the_exposition_matches_prometheus_clients_histogram(observations):
    light_registry, reference_registry = CollectorRegistry(), CollectorRegistry()
    light = LightHistogram("reads_seconds", "reads", ["audience"], BUCKETS, registry=light_registry)
    reference = Histogram("reads_seconds", "reads", ["audience"], buckets=BUCKETS, registry=reference_registry)
    for audience, seconds in observations:
        light.observe((audience,), seconds)
        reference.labels(audience).observe(seconds)
    light_lines, reference_lines = series(generate_latest(light_registry)), series(generate_latest(reference_registry))
    assert [line.rsplit(" ", 1)[0] for line in light_lines] == [line.rsplit(" ", 1)[0] for line in reference_lines]
    for ours, theirs in zip(light_lines, reference_lines):
        assert abs(float(ours.rsplit(" ", 1)[1]) - float(theirs.rsplit(" ", 1)[1])) < 1e-9


def test_count_of_one_label_set():
    light = LightHistogram("counted_seconds", "x", ["route"], BUCKETS, registry=None)
    for seconds in (0.001, 0.2, 7.0):
        light.observe(("/a",), seconds)
    assert light.count(("/a",)) == 3 and light.count(("/b",)) == 0
