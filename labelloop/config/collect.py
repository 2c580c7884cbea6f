"""The ``collect`` section: the polite crawler (sites, item rules, links, politeness, HTTP client, browsers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from labelloop.config.base import Section, Slug, check_entries, check_http_url, check_regex, check_regexes, distinct

__all__ = [
    "CollectConfig",
    "SiteConfig",
    "ItemRule",
    "FollowConfig",
    "PolitenessConfig",
    "FetchConfig",
    "RenderConfig",
]


def _check_css(css: str) -> str:
    # The extractor's own rule (lxml's cssselect, else soupsieve), so the config refuses exactly what it cannot apply.
    from labelloop.scrape.extract import check_selector

    return check_selector(css)


class PolitenessConfig(Section):
    """How hard the crawler may hit a site. robots.txt is always obeyed; these only add restraint."""

    per_host_concurrency: int = Field(default=8, ge=1, le=64, description="Requests in flight per host.")
    max_concurrency: int = Field(default=32, ge=1, le=512, description="Requests in flight over all hosts.")
    min_delay: float = Field(
        default=0.0, ge=0.0, le=600.0,
        description="Seconds between the starts of two requests to one host; robots.txt Crawl-delay wins when longer.",
    )
    global_rate: float | None = Field(
        default=None, gt=0.0, description="Requests per second over all hosts; none = no global cap."
    )
    failure_backoff: float = Field(
        default=1.0, ge=0.0, le=600.0,
        description="Seconds added between requests to a host after its first failure; doubles per failure in a row.",
    )
    max_backoff: float = Field(default=60.0, ge=0.0, le=3600.0, description="Cap of the per-host failure back-off.")
    max_retry_after: float = Field(
        default=120.0, ge=0.0, description="A Retry-After longer than this makes the crawler give the URL up."
    )


class FetchConfig(Section):
    """The HTTP client."""

    timeout: float = Field(default=30.0, gt=0.0, description="Seconds for connect, read and write each.")
    retries: int = Field(default=3, ge=0, le=20, description="Retries on 429, 5xx and connection errors.")
    backoff_base: float = Field(default=0.5, ge=0.0, description="First retry waits about this many seconds; doubles per retry.")
    backoff_max: float = Field(default=30.0, ge=0.0, description="Cap of the wait between retries.")
    max_bytes: int = Field(default=10_000_000, ge=1024, description="Responses larger than this are abandoned.")
    max_redirects: int = Field(default=5, ge=0, le=20, description="Redirects followed per URL (each checked against scope and robots.txt).")
    http2: bool = Field(default=True, description="Offer HTTP/2 (negotiated over TLS; plain http stays HTTP/1.1).")


class RenderConfig(Section):
    """Headless Chromium for pages that need JavaScript."""

    pool_size: int = Field(default=2, ge=1, le=16, description="Browsers kept open and reused across pages.")
    page_load_timeout: float = Field(default=30.0, gt=0.0, description="Seconds a page may take to load in the browser.")
    wait_timeout: float = Field(default=10.0, gt=0.0, description="Seconds to wait for the page's wait_selector.")
    poll_frequency: float = Field(default=0.02, gt=0.0, le=1.0, description="How often the wait checks the selector.")
    chromium: Path = Field(default=Path("/usr/bin/chromium"), description="Debian's Chromium (never downloaded).")
    chromedriver: Path = Field(default=Path("/usr/bin/chromedriver"), description="Debian's chromedriver (never downloaded).")
    extra_args: list[str] = Field(default_factory=list, description="More Chromium flags (e.g. host resolver rules).")


class ItemRule(Section):
    """Items found on a page by CSS selectors: one text item per container, or one image item per image."""

    name: str = Field(description="Rule name, reported when its selectors match nothing.")
    kind: Literal["text", "image"] = Field(default="text", description="One text item per container, or one image item per image.")
    pages: str | None = Field(default=None, description="Regex; the rule applies only to page URLs that match it.")
    container: str = Field(default="body", description="CSS selector of one item's element.")
    text: str | None = Field(default=None, description="CSS selector (inside the container) of a text item's text.")
    fields: dict[str, str] = Field(default_factory=dict, description="Extra metadata: field name -> CSS selector.")
    image_selector: str | None = Field(default=None, description="CSS selector of image elements (inside the container).")
    image_attr: str = Field(default="src", description="Attribute holding the image URL.")
    image_regex: str | None = Field(default=None, description="Regex over the container's HTML; group 1 (or 0) is an image URL.")

    @model_validator(mode="after")
    def _kind_needs_selector(self) -> "ItemRule":
        if self.kind == "text" and not self.text:
            raise ValueError(f"item rule {self.name!r}: kind 'text' needs a 'text' selector")
        if self.kind == "image" and not (self.image_selector or self.image_regex):
            raise ValueError(f"item rule {self.name!r}: kind 'image' needs 'image_selector' or 'image_regex'")
        return self

    @field_validator("pages", "image_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return value if value is None else check_regex(value)

    @field_validator("container", "text", "image_selector")
    @classmethod
    def _css(cls, value: str | None) -> str | None:
        return value if value is None else _check_css(value)

    @field_validator("fields")
    @classmethod
    def _field_css(cls, value: dict[str, str]) -> dict[str, str]:
        return check_entries(value, None, _check_css)


class FollowConfig(Section):
    """Which links are followed."""

    selector: str = Field(default="a[href]", description="CSS selector of link elements (href attribute).")
    allow: list[str] = Field(default_factory=list, description="Regexes; when set, a link must match one.")
    deny: list[str] = Field(default_factory=list, description="Regexes; a link matching one is never followed.")
    max_depth: int = Field(default=3, ge=0, le=100, description="Links from start URLs are depth 1.")

    @field_validator("allow", "deny")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        return check_regexes(value)

    @field_validator("selector")
    @classmethod
    def _css(cls, value: str) -> str:
        return _check_css(value)


class SiteConfig(Section):
    """One site to crawl."""

    name: Slug = Field(description="Crawl name (slug); the frontier and provenance are kept under it.")
    start_urls: list[str] = Field(description="Where the crawl starts (http or https).")
    scope: list[str] = Field(
        default_factory=list,
        description="URL prefixes the crawl stays inside (links and redirects); default: the start URLs' origins.",
    )
    terms: str = Field(description="Note of the source's terms of use / licence and why crawling it is allowed.")
    javascript: list[str] = Field(
        default_factory=list, description="Regexes of page URLs that need JavaScript (rendered by Chromium)."
    )
    wait_selector: str | None = Field(default=None, description="CSS selector a rendered page must show before it is read.")
    items: list[ItemRule] = Field(default_factory=list, description="Item rules (CSS selectors); their kind must match dataset.modality.")
    follow: FollowConfig = Field(default_factory=FollowConfig)
    max_pages: int | None = Field(
        default=None, ge=1,
        description="Pages requested per run (URLs skipped by robots.txt or the scope do not count); the rest stays queued.",
    )

    @field_validator("start_urls")
    @classmethod
    def _http_only(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one start URL")
        for url in value:
            check_http_url(url, "only http:// and https:// URLs are crawled")
        return value

    @field_validator("scope")
    @classmethod
    def _scope_http(cls, value: list[str]) -> list[str]:
        for url in value:
            check_http_url(url, "scope entries must be http:// or https:// URL prefixes")
        return value

    @field_validator("terms")
    @classmethod
    def _terms_written(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must say what the source's terms allow (got an empty note)")
        return value

    @field_validator("javascript")
    @classmethod
    def _js_regexes(cls, value: list[str]) -> list[str]:
        return check_regexes(value)


class CollectConfig(Section):
    """The collect stage: a polite crawler feeding items into the store."""

    sites: Annotated[list[SiteConfig], distinct("site names", key=lambda site: site.name)] = Field(
        default_factory=list, description="Sites to crawl; none = stage off."
    )
    user_agent: str = Field(
        default="labelloop/0.1 (+https://github.com/labelloop/labelloop; data-labeling crawler)",
        description="Honest User-Agent sent with every request and matched against robots.txt.",
    )
    politeness: PolitenessConfig = Field(default_factory=PolitenessConfig)
    fetch: FetchConfig = Field(default_factory=FetchConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)
    near_duplicate_distance: int = Field(
        default=4, ge=0, le=64, description="Images whose perceptual hashes differ in at most this many bits are flagged."
    )
    recrawl: bool = Field(
        default=True,
        description="A run after a finished crawl re-checks known pages with conditional requests (ETag / Last-Modified).",
    )
    parse_workers: int | None = Field(
        default=None, ge=0, le=64,
        description="Processes that parse pages once the crawl's own core is saturated; none = the other cores "
        "(at most 4), 0 = always parse in the crawl's process.",
    )

    @field_validator("user_agent")
    @classmethod
    def _ua(cls, value: str) -> str:
        if not value.strip() or value.strip().lower().startswith(("mozilla", "chrome")):
            raise ValueError(f"must be an honest, non-empty crawler name, not a browser's (got {value!r})")
        return value
