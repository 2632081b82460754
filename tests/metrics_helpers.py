"""Reading a Prometheus endpoint the way Prometheus does: its text format, parsed by
``prometheus_client.parser``, then summed over the samples whose labels match."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    """One scrape: every metric family by name."""

    families: dict[str, Metric]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        return cls({family.name: family for family in text_string_to_metric_families(text)})

    def value(self, family: str, sample: str | None = None, **labels: str) -> float:
        """The sum of ``family``'s samples carrying ``labels`` (and any others); ``sample``
        picks one series of a histogram (``<family>_count``, ``_sum``). 0 when absent."""
        metric = self.families.get(family)
        if metric is None:
            return 0.0
        # The parser names a counter's samples <family>_total, whatever the exporter wrote.
        names = {sample} if sample else {family, f"{family}_total"}
        return sum(
            s.value
            for s in metric.samples
            if s.name in names and labels.items() <= s.labels.items()
        )

    def label_values(self, family: str, label: str) -> set[str]:
        metric = self.families.get(family)
        return {s.labels[label] for s in metric.samples if label in s.labels} if metric else set()


async def scrape(url: str, http: httpx.AsyncClient | None = None) -> Scrape:
    """GET ``url`` (a /metrics endpoint) and parse it."""
    if http is not None:
        response = await http.get(url)
    else:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape.parse(response.text)


async def scraped_until(
    url: str, ready: Callable[[Scrape], bool], *, seconds: float = 30
) -> Scrape:
    """Scrape ``url`` until ``ready`` holds (the exporter and the gauges lag a little)."""
    last = await scrape(url)
    for _ in range(int(seconds / 0.1)):
        if ready(last):
            return last
        await asyncio.sleep(0.1)
        last = await scrape(url)
    raise AssertionError(f"{url} never showed what was expected; last families: {last.families}")
