"""The collect Prefect flow on a static site with ETags: items into the store, re-runs add nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from labelloop.exceptions import ConfigError
from labelloop.flows.collect import collect_flow
from labelloop.store import Store
from labelloop.tasks.collect import check_collect_config
from labelloop.config import load_config


def write_site(root: Path, n: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /drafts/\n")
    links = "".join(f'<a href="/p{i}.html">{i}</a>' for i in range(n)) + '<a href="/drafts/x.html">draft</a>'
    (root / "index.html").write_text(f"<html><body>{links}</body></html>")
    for i in range(n):
        (root / f"p{i}.html").write_text(f'<html><body><blockquote><p>saying number {i}</p></blockquote></body></html>')


def write_config(tmp_path: Path, url: str, kind: str = "text") -> Path:
    config = {
        "dataset": {"name": "sayings", "modality": "text", "classes": ["a", "b"]},
        "data_dir": "data",
        "collect": {
            "user_agent": "labelloop-test/1.0 (+tests)",
            "politeness": {"per_host_concurrency": 4, "failure_backoff": 0},
            "sites": [{
                "name": "sayings-site",
                "start_urls": [url + "/"],
                "terms": "Local test site written by the test; no terms restrict it.",
                "items": [{"name": "saying", "kind": kind, "container": "blockquote", "text": "p", "image_selector": "img"}],
            }],
        },
    }
    path = tmp_path / "labelloop.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_collect_flow_is_idempotent_and_conditional(prefect_harness, local_site, tmp_path: Path) -> None:
    root = tmp_path / "www"
    write_site(root, 5)
    site = local_site({}, root=root)
    config_path = write_config(tmp_path, site.url)

    first = collect_flow(str(config_path), "run-1")
    assert first["pages_fetched"] == 6 and first["items_added"] == 5 and first["skipped_robots"] == 1
    assert "/drafts/x.html" not in site.paths()
    store = Store(f"sqlite:///{tmp_path / 'data' / 'labelloop.db'}")
    items = store.items("sayings")
    assert sorted(items["text"]) == [f"saying number {i}" for i in range(5)]
    assert items["provenance_id"].notna().all()
    assert all(m["crawl"] == "sayings-site" and m["crawl_id"] == "run-1" and m["http_status"] == 200 for m in items["meta"])

    # Second turn: every known page is revalidated with its ETag; the server answers 304; nothing is added.
    seen = len(site.requests())
    second = collect_flow(str(config_path), "run-2")
    again = site.requests()[seen:]
    pages = [r for r in again if r["path"] != "/robots.txt"]
    assert pages and all(r["inm"] for r in pages)
    assert second["reports"][0]["pages_not_modified"] == 6 and second["items_added"] == 0
    assert store.count_items("sayings") == 5

    # A changed page is downloaded again and its new item stored; the others stay 304.
    (root / "p2.html").write_text("<html><body><blockquote><p>a brand new saying</p></blockquote></body></html>")
    third = collect_flow(str(config_path), "run-3")
    assert third["reports"][0]["pages_not_modified"] == 5 and third["items_added"] == 1
    assert store.count_items("sayings") == 6
    store.close()


def test_item_kind_must_match_the_dataset(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9", kind="image")
    with pytest.raises(ConfigError, match=r"collect\.sites\[0\]\.items\[0\]\.kind: must be 'text' to match dataset\.modality \(got 'image'\)"):
        check_collect_config(load_config(path))
