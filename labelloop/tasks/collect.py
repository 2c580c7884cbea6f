"""Collect tasks: crawl one configured site into the store.

A crawl is resumable (its frontier is in the store), so a retried task picks up
where the failed attempt stopped instead of starting over: that is why this task,
unlike pure transforms, has retries (:data:`~labelloop.tasks.policies.NETWORK_RETRIES`).
There is no cache: a crawl must look at the site every time it runs (conditional
requests keep unchanged pages cheap).
"""

from __future__ import annotations

import os
from typing import Callable

from prefect import task
from prefect.cache_policies import NO_CACHE

from labelloop.config import LabelloopConfig
from labelloop.exceptions import ConfigError
from labelloop.runtime import open_stage
from labelloop.scrape.crawler import Crawler, CrawlReport
from labelloop.scrape.sink import StoreSink
from labelloop.tasks.policies import NETWORK_RETRIES

__all__ = ["check_collect_config", "crawl_site_task", "CRAWL_LISTENERS"]

# Callables told `(site name, CrawlReport so far)` during a crawl; `labelloop collect` hangs its progress bar here.
CRAWL_LISTENERS: list[Callable[[str, CrawlReport], None]] = []


def check_collect_config(config: LabelloopConfig) -> None:
    """Item rules must produce the dataset's modality; checked before any site is crawled."""
    source = config.config_path.name if config.config_path else "<config>"
    modality = config.dataset.modality
    for i, site in enumerate(config.collect.sites):
        for j, rule in enumerate(site.items):
            if rule.kind != modality:
                raise ConfigError(
                    f"{source}: collect.sites[{i}].items[{j}].kind: must be {modality!r} to match "
                    f"dataset.modality (got {rule.kind!r})"
                )


@task(task_run_name="crawl-{site_index}", cache_policy=NO_CACHE, **NETWORK_RETRIES)
def crawl_site_task(config_path: str, site_index: int, run_id: str) -> dict:
    """Crawl site number ``site_index`` of the config; returns the crawl report as a dict."""
    # Selenium Manager must never download a driver: Debian's chromedriver is given by path.
    os.environ.setdefault("SE_OFFLINE", "true")
    config, store = open_stage(config_path)
    site = config.collect.sites[site_index]
    try:
        provenance = store.add_provenance(
            "scrape", site.name, uri=site.start_urls[0], run_id=run_id,
            details={"start_urls": site.start_urls, "terms": site.terms, "user_agent": config.collect.user_agent},
        )
        sink = StoreSink(store, config.dataset.name, provenance)
        crawler = Crawler(
            site, config.collect, store.engine, config.data_path, sink=sink, run_id=run_id,
            on_progress=lambda report: [listener(site.name, report) for listener in list(CRAWL_LISTENERS)],
        )
        report = crawler.run()
    finally:
        store.close()
    return report.as_dict()
