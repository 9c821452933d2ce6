"""The soak's samples: one reading of the server, the database, the load and meshlens's own
counters (`/metrics` text, parsed here), every few seconds."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

# `/metrics` families kept: name -> [(labels, value)]; counters are named with `_total`
Scrape = dict[str, list[tuple[dict[str, str], float]]]


def parse_metrics(text: str) -> Scrape:
    """The counters and gauges of meshlens in a Prometheus text exposition."""
    found: Scrape = defaultdict(list)
    for family in text_string_to_metric_families(text):
        if family.type not in {"counter", "gauge"} or not family.name.startswith("meshlens_"):
            continue
        for sample in family.samples:
            if not sample.name.endswith("_created"):  # when a counter was made: not a count
                found[sample.name].append((dict(sample.labels), sample.value))
    return dict(found)


def metric_total(scrape: Scrape, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(
        value
        for have, value in scrape.get(name, [])
        if all(have.get(k) == v for k, v in labels.items())
    )


def metric_by(scrape: Scrape, name: str, label: str, **labels: str) -> dict[str, float]:
    """`name`'s samples whose labels include `labels`, summed by the value of `label`."""
    totals: dict[str, float] = defaultdict(float)
    for have, value in scrape.get(name, []):
        if all(have.get(k) == v for k, v in labels.items()):
            totals[have.get(label, "")] += value
    return dict(sorted(totals.items()))


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading; counts and CPU seconds are cumulative since the start of the load."""

    second: float  # since the start of the load
    rss_mib: float  # the server and its children (decode workers)
    cpu_seconds: float  # the same processes, user + system
    machine_busy_seconds: float  # every process on the machine, every core
    database_mib: float
    sent_spans: int
    acknowledged_spans: int
    refused_requests: dict[int, int]  # by HTTP status
    dropped_requests: int  # sent, never answered
    rejected_spans: int
    web_requests: int
    web_failures: int
    scrape: Scrape  # empty when /metrics did not answer
