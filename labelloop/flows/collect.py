"""Stage: crawl the configured sites into the store, politely and resumably."""

from __future__ import annotations

from prefect import flow

from labelloop.config import load_config
from labelloop.flows.artifacts import artifact_key, markdown_table, publish_markdown, publish_table
from labelloop.tasks.collect import check_collect_config, crawl_site_task

__all__ = ["collect_flow"]


@flow(name="collect", log_prints=True)
def collect_flow(config_path: str, run_id: str) -> dict:
    """Crawl every site of ``collect.sites``; publish pages, failures by reason, items and host rates."""
    config = load_config(config_path)
    check_collect_config(config)
    reports = [crawl_site_task(config_path, i, run_id) for i in range(len(config.collect.sites))]
    dataset = config.dataset.name

    sites = [
        {
            "site": r["crawl"],
            "pages_fetched": r["pages_fetched"],
            "rendered": r["pages_rendered"],
            "not_modified": r["pages_not_modified"],
            "skipped_robots": r["skipped"].get("robots", 0),
            "skipped_other": sum(v for k, v in r["skipped"].items() if k != "robots"),
            "failed": sum(r["failed"].values()),
            "items_added": r["items_added"],
            "items_existing": r["items_existing"],
            "near_duplicates": r["near_duplicates"],
            "retries": r["retries"],
            "pages_per_s": r["pages_per_second"],
            "parse_cpu_ms_per_page": r["parse_cpu_ms_per_page"],
            "parsed_in_pool": r["pages_parsed_in_pool"],
            "browser_subrequests": sum(r["subrequests"].values()),
            "subrequests_blocked": r["subrequests"].get("blocked_robots", 0) + r["subrequests"].get("blocked_foreign", 0),
            "pending_left": r["pending_left"],
            "resumed": r["resumed"],
        }
        for r in reports
    ]
    publish_table(artifact_key(dataset, "collect-sites"), sites, description="Pages and items per crawled site in this turn")
    failures = [
        {"site": r["crawl"], "outcome": outcome, "reason": reason, "urls": n}
        for r in reports
        for outcome, counts in (("skipped", r["skipped"]), ("failed", r["failed"]))
        for reason, n in sorted(counts.items())
    ]
    publish_table(artifact_key(dataset, "collect-failures"), failures, description="URLs skipped or failed, by reason")
    hosts = [{"site": r["crawl"], "host": host, **stats} for r in reports for host, stats in r["hosts"].items()]
    publish_table(artifact_key(dataset, "collect-hosts"), hosts, description="Requests, failures and request rate per host")

    notes = []
    for r in reports:
        if r["errors"]:
            shown = "\n".join(f"- {e}" for e in r["errors"][:30])
            notes.append(f"### {r['crawl']}: errors\n\n{shown}\n")
        if r["unmatched"]:
            shown = "\n".join(f"- {url}: {'; '.join(what)}" for url, what in list(r["unmatched"].items())[:30])
            notes.append(f"### {r['crawl']}: selectors that matched nothing\n\n{shown}\n")
    terms = "\n".join(f"- **{s.name}**: {s.terms}" for s in config.collect.sites)
    publish_markdown(
        artifact_key(dataset, "collect-summary"),
        f"## Collect\n\n{markdown_table(sites)}\n### Terms of the sources\n\n{terms}\n\n" + "\n".join(notes),
    )
    summary = {
        "sites": len(reports),
        "pages_fetched": sum(r["pages_fetched"] for r in reports),
        "skipped_robots": sum(r["skipped"].get("robots", 0) for r in reports),
        "failed": sum(sum(r["failed"].values()) for r in reports),
        "items_added": sum(r["items_added"] for r in reports),
        "items_existing": sum(r["items_existing"] for r in reports),
        "reports": reports,
    }
    print(
        f"collect: {summary['pages_fetched']} pages, {summary['items_added']} new items "
        f"({summary['items_existing']} already stored), {summary['skipped_robots']} skipped by robots.txt, "
        f"{summary['failed']} failed"
    )
    print(markdown_table(sites))
    return summary
