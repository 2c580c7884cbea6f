"""Crawl benchmark: labelloop vs Scrapy on one generated local site, same settings, same run.

Site (the shape of ANCHORS.md): 1,950 public pages of ~5.8 KB with 5-10 links each, all reachable
from index.html within depth 5, 50 pages under /private/ linked from public pages, 1-2 images per page
out of 200 distinct 64x64 PNGs, robots.txt with ``Disallow: /private/``. It is served by a threaded
HTTP/1.1 server in its own process (``labelloop.scrape.localsite``) that logs every request with a time.

Protocols, each crawler in its own fresh process, pages/s = unique public pages (from the server's log)
/ the crawler's own crawl seconds (process start excluded):

1. ``static-8-per-host``: robots.txt without Crawl-delay; 8 requests in flight per host, 32 in all.
2. ``crawl-delay-0.01``: robots.txt says ``Crawl-delay: 0.01``. labelloop reads it; Scrapy ignores
   Crawl-delay, so it gets ``DOWNLOAD_DELAY=0.01`` (not randomised) by hand: like for like. The share
   of request gaps under 10 ms (from the server's log) shows whether the delay really held.
3. ``js-render``: 50 pages built by a script 50 ms after load, waiting for a selector: labelloop's
   crawler with a pool of 2 Chromium drivers vs a fresh browser per page.

Both crawlers extract the text items and download + verify (Pillow) + store every image by hash;
labelloop also writes items to its SQLite store, keeps its frontier there and computes pHashes.

4. ``real-site-delay`` / ``real-site-nodelay``: a real documentation site, Debian's ``python-pandas-doc``
   (4,100 Sphinx pages of 20-170 KB, installed by this bench when missing), served from 127.0.0.1 with a
   robots.txt written here: ``Disallow: /development/`` (linked from every page's navigation bar) and, in
   the delay protocol, ``Crawl-delay: 0.02`` (Scrapy: ``DOWNLOAD_DELAY`` by hand). Both crawl at most 1,500
   pages, following .html links, one text item per ``main section``. Runs interleave labelloop / Scrapy /
   labelloop / Scrapy. Metrics: pages/s, requests into /development/ (server log), the share of
   client-side request gaps under the delay, and parse CPU per page (HTML parse + links + items).

Run: ``.venv/bin/python bench/scrape.py`` (about 8 minutes; ``--only real`` or ``--only synthetic``).
Results: bench/results/scrape.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, row, write_results  # noqa: E402

from labelloop.process import Process  # noqa: E402
from labelloop.scrape import localsite  # noqa: E402

UA = "labelloop-bench/0.1 (+https://github.com/labelloop/labelloop)"
WORDS = (
    "data label model crowd expert weak pseudo train fold score image text page link site robot polite "
    "queue store frontier render browser driver pool delay host rate retry backoff status header item"
).split()


# -- the site ---------------------------------------------------------------------------------------
def generate_site(root: Path, n_public: int = 1950, n_private: int = 50, n_images: int = 200, n_js: int = 50, seed: int = 0) -> None:
    import numpy as np
    from PIL import Image

    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "private").mkdir(exist_ok=True)
    (root / "js").mkdir(exist_ok=True)
    for k in range(n_images):
        small = Image.fromarray(nrng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "RGB")
        small.resize((64, 64), Image.BICUBIC).save(root / "img" / f"{k}.png")

    def name(i: int) -> str:
        return "index.html" if i == 0 else f"p{i}.html"

    # A tree with fan-out 8 keeps every page within depth 4 of index.html; extra links make a web.
    children: dict[int, list[int]] = {i: [] for i in range(n_public)}
    for i in range(1, n_public):
        children[(i - 1) // 8].append(i)
    for i in range(n_public):
        links = [f"/{name(c)}" for c in children[i]]
        while len(links) < rng.randint(5, 10):
            links.append(f"/{name(rng.randrange(n_public))}")
        if i % 39 == 1:
            links.append(f"/private/s{(i // 39) % n_private}.html")
        items = []
        for j in range(rng.randint(1, 2)):
            quote = " ".join(rng.choice(WORDS) for _ in range(12))
            items.append(
                f'<div class="item"><p class="text">page {i} item {j}: {quote}</p>'
                f'<img src="/img/{rng.randrange(n_images)}.png" alt="picture"></div>'
            )
        filler = " ".join(rng.choice(WORDS) for _ in range(700))
        nav = " ".join(f'<a href="{link}">{link}</a>' for link in links)
        html = (
            f"<!doctype html><html><head><title>page {i}</title></head><body><nav>{nav}</nav>"
            f"{''.join(items)}<article><p>{filler}</p></article></body></html>"
        )
        (root / name(i)).write_text(html)
    for s in range(n_private):
        (root / "private" / f"s{s}.html").write_text(f'<html><body><div class="item"><p class="text">secret {s}</p></div></body></html>')
    script = (
        "<script>setTimeout(function(){var a=document.getElementById('app');"
        "for(var i=0;i<3;i++){var d=document.createElement('div');d.className='item';"
        "d.innerHTML='<p class=\"text\">'+document.title+' item '+i+'</p>';a.appendChild(d);}"
        "var r=document.createElement('div');r.id='ready';a.appendChild(r);},50);</script>"
    )
    for k in range(n_js):
        (root / "js" / f"{k}.html").write_text(f'<!doctype html><html><head><title>js {k}</title></head><body><div id="app"></div>{script}</body></html>')


def set_robots(root: Path, crawl_delay: float | None) -> None:
    delay = f"Crawl-delay: {crawl_delay}\n" if crawl_delay else ""
    (root / "robots.txt").write_text(f"User-agent: *\nDisallow: /private/\n{delay}")


def start_server(root: Path, log: Path) -> tuple[str, Process]:
    return localsite.start({"root": str(root), "log": str(log)}, root.parent / "spec.json")


def read_log(log: Path, start: int) -> tuple[list[dict], int]:
    lines = log.read_text().splitlines()
    return [json.loads(line) for line in lines[start:] if line.strip()], len(lines)


def log_stats(entries: list[dict], delay: float | None) -> dict:
    public = {e["path"] for e in entries if e["path"].endswith(".html") and not e["path"].startswith(("/private/", "/js/"))}
    public |= {"/index.html"} if any(e["path"] == "/" for e in entries) else set()
    times = sorted(e["t"] for e in entries if e["path"] != "/robots.txt")
    gaps = [b - a for a, b in zip(times, times[1:])]
    under = sum(g < delay for g in gaps) / len(gaps) if delay and gaps else None
    # Busiest 1-second window: robust to arrival jitter at a busy server (one late request compresses
    # one gap), so it is the fair check of a per-host rate limit (Crawl-delay 0.01 s = at most ~100).
    busiest, lo = 0, 0
    for hi in range(len(times)):
        while times[hi] - times[lo] >= 1.0:
            lo += 1
        busiest = max(busiest, hi - lo + 1)
    return {
        "max_requests_in_1s": busiest,
        "public_pages": len(public),
        "private_requests": sum(e["path"].startswith("/private/") for e in entries),
        "requests": len(entries),
        "gaps_under_delay_pct": None if under is None else 100 * under,
    }


# -- the crawlers (each in its own process) --------------------------------------------------------------
def labelloop_static(url: str, per_host: int, work: Path) -> dict:
    from labelloop.config import CollectConfig, SiteConfig
    from labelloop.scrape.crawler import Crawler
    from labelloop.scrape.sink import StoreSink
    from labelloop.store import Store

    store = Store(f"sqlite:///{work / 'labelloop.db'}").create()
    site = SiteConfig(
        name="bench", start_urls=[url + "/index.html"], terms="generated local site",
        items=[
            {"name": "quotes", "container": "div.item", "text": "p.text"},
        ],
        follow={"max_depth": 10, "deny": [r"/js/"]},
    )
    images = SiteConfig(
        name="bench", start_urls=[url + "/index.html"], terms="x",
        items=[{"name": "pictures", "kind": "image", "container": "div.item", "image_selector": "img"}],
    ).items
    site.items = site.items + images  # text and image rules on the same pages
    collect = CollectConfig(
        user_agent=UA, politeness={"per_host_concurrency": per_host, "max_concurrency": 32},
        fetch={"retries": 2},
    )
    report = Crawler(site, collect, store.engine, work / "data", sink=StoreSink(store, "bench")).run()
    return {"elapsed": report.elapsed, "items": report.items_added, "images": report.images_fetched,
            "failed": dict(report.failed), "skipped": dict(report.skipped)}


def labelloop_js(url: str, n_js: int, work: Path) -> dict:
    from labelloop.config import CollectConfig, SiteConfig
    from labelloop.scrape.crawler import Crawler
    from labelloop.scrape.extract import extract_page
    from labelloop.scrape.render import DriverPool

    resolver = "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"
    urls = [f"{url}/js/{k}.html" for k in range(n_js)]
    site = SiteConfig(
        name="bench-js", start_urls=urls, terms="generated local site", javascript=[r"/js/"], wait_selector="#ready",
        items=[{"name": "quotes", "container": "div.item", "text": "p.text"}], follow={"max_depth": 0},
    )
    collect = CollectConfig(user_agent=UA, render={"pool_size": 2, "extra_args": [resolver]})
    report = Crawler(site, collect, f"sqlite:///{work / 'js.db'}", work / "data-js").run()
    pooled = {"elapsed": report.elapsed, "pages": report.pages_rendered, "items": report.items_found}

    # Baseline: a fresh browser for every page (what a naive Selenium script does).
    start = time.perf_counter()
    items = 0
    for u in urls:
        with DriverPool(size=1, user_agent=UA, extra_args=[resolver]) as pool:
            result = pool.render(u, "#ready")
        items += len(extract_page(result.html, u, site.items).items)
    fresh = {"elapsed": time.perf_counter() - start, "pages": len(urls), "items": items}
    return {"pooled": pooled, "fresh": fresh}


# -- the real site ------------------------------------------------------------------------------------
REAL_DOC = Path("/usr/share/doc/python-pandas-doc/html")
REAL_PACKAGE = "python-pandas-doc"
REAL_MAX_PAGES = 1500
REAL_DELAY = 0.02


def ensure_real_site() -> Path:
    """Debian's pandas documentation (4,100 HTML pages); installed with apt when missing."""
    if not (REAL_DOC / "index.html").exists():
        print(f"installing {REAL_PACKAGE} (apt) for the real-site protocol", flush=True)
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", REAL_PACKAGE], check=True,
                       stdout=subprocess.DEVNULL)
    return REAL_DOC


def real_robots(delay: float | None) -> str:
    return "User-agent: *\nDisallow: /development/\n" + (f"Crawl-delay: {delay}\n" if delay else "")


def start_real_server(doc: Path, work: Path, delay: float | None, log: Path) -> tuple[str, Process]:
    robots = {"status": 200, "headers": {"Content-Type": "text/plain"}, "body": real_robots(delay)}
    return localsite.start({"root": str(doc), "log": str(log), "routes": {"/robots.txt": robots}},
                           work / f"real-spec-{delay}.json")


def labelloop_real(url: str, per_host: int, work: Path) -> dict:
    from labelloop.config import CollectConfig, SiteConfig
    from labelloop.scrape.crawler import Crawler
    from labelloop.scrape.sink import StoreSink
    from labelloop.store import Store

    store = Store(f"sqlite:///{work / 'labelloop.db'}").create()
    site = SiteConfig(
        name="pandas-doc", start_urls=[url + "/index.html"], terms="Debian python-pandas-doc, BSD-3-Clause",
        items=[{"name": "section", "container": "main section", "text": "p", "fields": {"title": "h1, h2, h3"}}],
        follow={"max_depth": 50, "allow": [r"(\.html|/)$"]}, max_pages=REAL_MAX_PAGES,
    )
    collect = CollectConfig(user_agent=UA, politeness={"per_host_concurrency": per_host, "max_concurrency": 32},
                            fetch={"retries": 2})
    report = Crawler(site, collect, store.engine, work / "data", sink=StoreSink(store, "bench")).run()
    host = next(iter(report.hosts.values()))
    return {"elapsed": report.elapsed, "items": report.items_added, "pages": report.pages_fetched,
            "parse_cpu_s": report.parse_cpu_seconds, "pages_parsed": report.pages_parsed,
            "pages_parsed_in_pool": report.pages_parsed_in_pool,
            "requests": host["requests"], "gaps_under_interval": host["gaps_under_interval"],
            "failed": dict(report.failed), "skipped": dict(report.skipped)}


def real_site_protocol(
    tmp_path: Path, per_host: int, repeats: int, rows: list[dict], only: str | None = None
) -> list[tuple]:
    """Pairs in the order delay l/S, no-delay l/S, delay l/S, ...: a load change hits both systems alike."""
    doc = ensure_real_site()
    tasks = tuple(t for t in (("real-site-delay", REAL_DELAY), ("real-site-nodelay", None)) if only in (None, t[0]))
    servers, logs, seen = {}, {}, {}
    table = []
    try:
        for task, delay in tasks:
            logs[task] = tmp_path / f"{task}.jsonl"
            logs[task].touch()
            servers[task] = start_real_server(doc, tmp_path, delay, logs[task])
            seen[task] = 0
        for rep in range(repeats):
            for task, delay in tasks:
                url = servers[task][0]
                pair = {}
                for system in ("labelloop", "scrapy"):
                    work = tmp_path / f"{task}-{system}-{rep}"
                    work.mkdir()
                    if system == "labelloop":
                        run = in_subprocess("labelloop-real", url, str(per_host), str(work))
                        gaps = run["gaps_under_interval"] / max(1, run["requests"] - 1)
                    else:
                        run = in_subprocess("scrapy", url + "/index.html", str(work / "img"), str(per_host),
                                            str(delay or 0), UA, str(REAL_MAX_PAGES))
                        starts = sorted(run.pop("starts"))
                        gaps = sum(b - a < (delay or 0) for a, b in zip(starts, starts[1:])) / max(1, len(starts) - 1)
                    entries, seen[task] = read_log(logs[task], seen[task])
                    pages = {e["path"] for e in entries if e["path"].endswith((".html", "/"))}
                    disallowed = sum(e["path"].startswith("/development/") for e in entries)
                    result = {
                        "pages_per_s": len(pages) / run["elapsed"],
                        "disallowed_requests": disallowed,
                        "gaps_under_delay_pct": 100 * gaps,
                        "parse_cpu_ms_per_page": 1000 * run["parse_cpu_s"] / max(1, run["pages_parsed"]),
                    }
                    pair[system] = result
                    for metric, value in result.items():
                        if metric == "gaps_under_delay_pct" and not delay:
                            continue
                        rows.append(row(task, system, metric, round(value, 3)))
                    print(f"  {task} [{rep}] {system}: {len(pages)} pages in {run['elapsed']:.2f} s = "
                          f"{result['pages_per_s']:.1f} pages/s, /development/ requests {disallowed}, gaps < delay "
                          f"{result['gaps_under_delay_pct']:.2f}%, parse {result['parse_cpu_ms_per_page']:.2f} ms/page; "
                          f"{run}", flush=True)
                table.append((task, rep, pair["labelloop"], pair["scrapy"]))
                write_results("scrape", rows)  # what is measured so far survives an interrupted bench
    finally:
        for _url, server in servers.values():
            server.kill()
    return sorted(table, key=lambda t: (t[0], t[1]))


def in_subprocess(kind: str, *args: str) -> dict:
    # This checkout first on the path (not an installed labelloop), and never a Selenium Manager download.
    env = {**os.environ, "SE_OFFLINE": "true", "PYTHONPATH": str(ROOT)}
    if kind == "scrapy":
        cmd = [sys.executable, str(ROOT / "bench" / "_scrape_scrapy.py"), *args]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), f"--{kind}", *args]
    # Generous: on a shared, overloaded machine Scrapy took ~15 min for 1,500 real pages.
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def synthetic(tmp_path: Path, args: argparse.Namespace, rows: list[dict], table: list[tuple]) -> None:
    """Protocols 1-3 on the generated site."""
    site_root = tmp_path / "site"
    generate_site(site_root)
    log = tmp_path / "requests.jsonl"
    log.touch()
    url, server = start_server(site_root, log)
    seen = 0
    try:
        for task, delay in (("static-8-per-host", None), ("crawl-delay-0.01", 0.01)):
            set_robots(site_root, delay)
            for rep in range(args.repeats):
                results = {}
                for system in ("labelloop", "scrapy"):
                    work = tmp_path / f"{task}-{system}-{rep}"
                    work.mkdir()
                    if system == "labelloop":
                        run = in_subprocess("labelloop-static", url, str(args.per_host), str(work))
                    else:
                        run = in_subprocess("scrapy", url + "/index.html", str(work / "img"), str(args.per_host), str(delay or 0), UA)
                    entries, seen = read_log(log, seen)
                    stats = log_stats(entries, delay)
                    pps = stats["public_pages"] / run["elapsed"]
                    results[system] = (pps, stats, run)
                    rows.append(row(task, system, "pages_per_s", round(pps, 1)))
                    rows.append(row(task, system, "private_requests", stats["private_requests"]))
                    if delay:
                        rows.append(row(task, system, "gaps_under_delay_pct", round(stats["gaps_under_delay_pct"], 2)))
                        rows.append(row(task, system, "max_requests_in_1s", stats["max_requests_in_1s"]))
                    print(f"  {task} [{rep}] {system}: {stats['public_pages']} pages in {run['elapsed']:.2f} s = {pps:.1f} pages/s; "
                          f"{stats['requests']} requests, /private/: {stats['private_requests']}; run: {run}", flush=True)
                ratio = results["labelloop"][0] / results["scrapy"][0]
                table.append((task, rep, results["labelloop"][0], results["scrapy"][0], ratio,
                              results["labelloop"][1]["gaps_under_delay_pct"], results["scrapy"][1]["gaps_under_delay_pct"],
                              results["labelloop"][1]["max_requests_in_1s"], results["scrapy"][1]["max_requests_in_1s"]))
        js = None
        if not args.skip_js:
            work = tmp_path / "js"
            work.mkdir()
            js = in_subprocess("labelloop-js", url, "50", str(work))
            pooled = js["pooled"]["pages"] / js["pooled"]["elapsed"]
            fresh = js["fresh"]["pages"] / js["fresh"]["elapsed"]
            rows.append(row("js-render-50", "labelloop", "pages_per_s", round(pooled, 2)))
            rows.append(row("js-render-50", "fresh-browser-per-page", "pages_per_s", round(fresh, 2)))
            print(f"  js-render-50: pool of 2: {pooled:.2f} pages/s; fresh browser per page: {fresh:.2f} pages/s "
                  f"({pooled / fresh:.1f}x)", flush=True)
    finally:
        server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-host", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-js", action="store_true")
    parser.add_argument("--labelloop-static", nargs=3, metavar=("URL", "PER_HOST", "WORK"))
    parser.add_argument("--labelloop-js", nargs=3, metavar=("URL", "N", "WORK"))
    parser.add_argument("--labelloop-real", nargs=3, metavar=("URL", "PER_HOST", "WORK"))
    parser.add_argument("--only", choices=("real", "synthetic"), help="Run one part of the bench.")
    parser.add_argument("--real-repeats", type=int, default=2, help="labelloop/Scrapy pairs per real-site protocol.")
    parser.add_argument("--real-task", choices=("real-site-delay", "real-site-nodelay"), help="One real-site protocol only.")
    args = parser.parse_args()
    if args.labelloop_real:
        u, p, w = args.labelloop_real
        print(json.dumps(labelloop_real(u, int(p), Path(w))))
        return
    if args.labelloop_static:
        u, p, w = args.labelloop_static
        print(json.dumps(labelloop_static(u, int(p), Path(w))))
        return
    if args.labelloop_js:
        u, n, w = args.labelloop_js
        print(json.dumps(labelloop_js(u, int(n), Path(w))))
        return

    rows: list[dict] = []
    table: list[tuple] = []
    real_table: list[tuple] = []
    with tempfile.TemporaryDirectory(prefix="labelloop-bench-scrape-") as tmp:
        tmp_path = Path(tmp)
        if args.only != "synthetic":
            real_table = real_site_protocol(tmp_path, args.per_host, args.real_repeats, rows, args.real_task)
        if args.only != "real":
            synthetic(tmp_path, args, rows, table)

    if table:
        print("\n| task | run | labelloop pages/s | Scrapy pages/s | ratio | gaps < delay (labelloop / Scrapy) | busiest 1 s (labelloop / Scrapy) |")
        print("|---|---|---|---|---|---|---|")
        for task, rep, lp, sp, ratio, lg, sg, lb, sb in table:
            fmt = lambda g: "-" if g is None else f"{g:.1f}%"  # noqa: E731
            print(f"| {task} | {rep} | {lp:.1f} | {sp:.1f} | {ratio:.2f}x | {fmt(lg)} / {fmt(sg)} | {lb} / {sb} |")
    if real_table:
        print("\n| task | run | labelloop pages/s | Scrapy pages/s | ratio | /development/ requests (l / S) | "
              "client gaps < delay (l / S) | parse CPU ms/page (l / S) |")
        print("|---|---|---|---|---|---|---|---|")
        for task, rep, lo, sc in real_table:
            print(f"| {task} | {rep} | {lo['pages_per_s']:.1f} | {sc['pages_per_s']:.1f} | "
                  f"{lo['pages_per_s'] / sc['pages_per_s']:.2f}x | {lo['disallowed_requests']} / {sc['disallowed_requests']} | "
                  f"{lo['gaps_under_delay_pct']:.2f}% / {sc['gaps_under_delay_pct']:.2f}% | "
                  f"{lo['parse_cpu_ms_per_page']:.2f} / {sc['parse_cpu_ms_per_page']:.2f} |")

    print_table([r for r in rows if r["system"] in ("labelloop", "scrapy")], baseline="scrapy")
    print(f"\nresults: {write_results('scrape', rows)}")


if __name__ == "__main__":
    main()
