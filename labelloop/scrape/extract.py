"""Items and links out of HTML: one lxml parse per page, CSS selectors compiled to XPath once.

Item rules are the CSS selectors users already write for BeautifulSoup's ``select``
(container, text, fields, image selector). They are translated once per crawl by
cssselect (the translator Scrapy's parsel uses) into XPath and evaluated on the lxml
tree that also gives the links, so a page is parsed exactly once; text is read the way
``Tag.get_text(" ")`` reads it (no script, style or template content, no comments).
A selector that only soupsieve understands (``:-soup-contains()`` and friends) still
works: the rule falls back to BeautifulSoup on that page (a second parse, for such
rules only; links never need it).

Why not BeautifulSoup for everything: its tree builder runs Python code for every tag,
which made parsing 3-4x Scrapy's CPU cost on real 20-60 KB documentation pages; lxml
builds the tree in C. Link resolution (urljoin + normalisation) is cached per directory,
because documentation sites repeat the same few hundred navigation links on every page.

lxml repairs broken HTML the way browsers do, so a page with unclosed tags still yields
what can be read. A selector that matches nothing on a page is not an error (layouts
change) but it is reported per page, so a broken rule is seen.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable, Sequence

from lxml import etree
from lxml import html as lxml_html

from labelloop.config import FollowConfig, ItemRule
from labelloop.scrape.urls import in_scope, join_url, scheme_of

__all__ = ["RawItem", "PageExtract", "normalize_text", "extract_page", "LinkRules", "Extractor", "Selector", "check_selector"]

_SPACE = re.compile(r"\s+")
# Text nodes get_text() reads: not inside script/style/template (comments are not text() nodes).
_TEXT = etree.XPath("descendant-or-self::text()[not(ancestor::script or ancestor::style or ancestor::template)]")
_BASE = etree.XPath("(//base[@href])[1]/@href")
_HAS_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def normalize_text(text: str) -> str:
    """Unicode NFKC, whitespace runs collapsed to one space, ends stripped.

    >>> normalize_text("  caf\\u00e9\\u00a0 au\\n\\n lait\\t")
    'café au lait'
    """
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def node_text(node: Any) -> str:
    """The node's text as ``BeautifulSoup``'s ``get_text(" ")`` gives it, normalised.

    >>> node_text(lxml_html.fromstring("<div>a <b>b</b><script>x()</script><!-- c --> d</div>"))
    'a b d'
    """
    return normalize_text(" ".join(_TEXT(node)))


class Selector:
    """A CSS selector (BeautifulSoup ``select`` syntax) compiled once for lxml trees.

    ``select(node)`` returns the matching descendants of ``node`` in document order, like
    ``Tag.select``; ``soup`` is ``True`` when only soupsieve understands the selector.

    >>> Selector("p.t").select(lxml_html.fromstring('<div><p class="t">x</p><p>y</p></div>'))[0].text
    'x'
    """

    def __init__(self, css: str) -> None:
        from cssselect import HTMLTranslator
        from cssselect.parser import SelectorError

        self.css = css
        self.soup = False
        self._xpath: etree.XPath | None = None
        try:
            self._xpath = etree.XPath(HTMLTranslator().css_to_xpath(css, prefix="descendant::"))
        except SelectorError:
            self._check_soupsieve(css)
            self.soup = True

    @staticmethod
    def _check_soupsieve(css: str) -> None:
        import soupsieve

        try:
            soupsieve.compile(css)
        except soupsieve.SelectorSyntaxError as exc:
            raise ValueError(f"not a valid CSS selector ({str(exc).splitlines()[0]}) (got {css!r})") from None

    def select(self, node: Any) -> list[Any]:
        assert self._xpath is not None, "soupsieve-only selectors are applied by the BeautifulSoup fallback"
        return self._xpath(node)


@lru_cache(maxsize=512)
def _selector(css: str) -> Selector:
    return Selector(css)


def check_selector(css: str) -> str:
    """``css`` if the extractor can apply it (lxml, else soupsieve); ``ValueError`` naming it otherwise.

    The config checks its item and link selectors with this, so a bad one is refused
    when the config loads, under its key path, not when the crawl starts.

    >>> check_selector("div.q > p")
    'div.q > p'
    >>> check_selector("div[")
    Traceback (most recent call last):
    ...
    ValueError: not a valid CSS selector (Malformed attribute selector at position 3) (got 'div[')
    """
    _selector(css)
    return css


@dataclass
class RawItem:
    """One item found on a page, before images are downloaded."""

    rule: str
    kind: str  # "text" | "image"
    text: str | None = None
    image_url: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class PageExtract:
    """What one page gave: items, links to follow, and what did not match."""

    items: list[RawItem] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # "rule: selector" that matched nothing
    skipped_links: dict[str, int] = field(default_factory=dict)  # reason -> count
    cpu_seconds: float = 0.0  # CPU time of parsing and extraction (where it ran: this process or a pool worker)


@dataclass
class LinkRules:
    """Which links are followed: compiled from :class:`~labelloop.config.FollowConfig` and a scope."""

    selector: str
    scope: list[str]
    allow: list[re.Pattern[str]]
    deny: list[re.Pattern[str]]

    @classmethod
    def from_config(cls, follow: FollowConfig, scope: list[str]) -> "LinkRules":
        return cls(follow.selector, scope, [re.compile(p) for p in follow.allow], [re.compile(p) for p in follow.deny])

    def verdict(self, url: str) -> str | None:
        """``None`` when the link is followed, else why not."""
        if not in_scope(url, self.scope):
            return "out_of_scope"
        if self.allow and not any(p.search(url) for p in self.allow):
            return "not_allowed_by_pattern"
        if any(p.search(url) for p in self.deny):
            return "denied_by_pattern"
        return None


class _LinkResolver:
    """``href`` on a page -> (absolute URL or None, verdict), cached.

    A relative link means the same URL on every page of one directory, so the cache is
    keyed by the base URL's directory (the full base for query-only links).
    """

    def __init__(self, rules: LinkRules, size: int = 65536) -> None:
        self.rules = rules
        self.resolve: Callable[[str, str], tuple[str | None, str | None]] = lru_cache(maxsize=size)(self._resolve)

    def _resolve(self, base: str, href: str) -> tuple[str | None, str | None]:
        absolute = join_url(base, href)
        if absolute is None:
            return None, f"scheme_{scheme_of(href) or 'none'}"
        return absolute, self.rules.verdict(absolute)

    def __call__(self, base_url: str, href: str) -> tuple[str | None, str | None]:
        if href[:1] == "?":
            key = base_url  # a query-only link keeps the page's path
        elif href[:1] == "/" or _HAS_SCHEME.match(href):
            key = base_url[: base_url.find("/", base_url.find("//") + 2) + 1] or base_url  # the origin decides
        else:
            key = base_url[: base_url.rfind("/") + 1] or base_url  # the directory decides
        return self.resolve(key, href)


@dataclass
class _CompiledRule:
    rule: ItemRule
    pages: re.Pattern[str] | None
    container: Selector
    text: Selector | None
    fields: dict[str, Selector]
    images: Selector | None
    image_regex: re.Pattern[str] | None

    @property
    def needs_soup(self) -> bool:
        parts = [self.container, self.text, self.images, *self.fields.values()]
        return any(p is not None and p.soup for p in parts)


class Extractor:
    """Item rules and link rules compiled once, applied to many pages (one lxml parse each).

    Parameters
    ----------
    rules : iterable of ItemRule
        Item rules; a rule with ``pages`` applies only where the regex matches the page URL.
    links : LinkRules or None
        Link following rules; ``None`` collects no links.
    """

    def __init__(self, rules: Iterable[ItemRule], links: LinkRules | None = None) -> None:
        self.rules = [
            _CompiledRule(
                rule,
                re.compile(rule.pages) if rule.pages else None,
                _selector(rule.container),
                _selector(rule.text) if rule.text else None,
                {name: _selector(css) for name, css in rule.fields.items()},
                _selector(rule.image_selector) if rule.image_selector else None,
                re.compile(rule.image_regex) if rule.image_regex else None,
            )
            for rule in rules
        ]
        self.links = links
        self._link_selector = _selector(links.selector) if links is not None else None
        self._resolver = _LinkResolver(links) if links is not None else None

    def __call__(self, html: str | bytes, base_url: str) -> PageExtract:
        """Parse one page (broken HTML is repaired by lxml) and apply the rules."""
        import time

        started = time.thread_time()
        out = PageExtract()
        root = _parse(html)
        if root is not None:
            base = _BASE(root)
            if base:
                base_url = join_url(base_url, str(base[0])) or base_url
            soup = None
            for compiled in self.rules:
                if compiled.pages is not None and not compiled.pages.search(base_url):
                    continue
                if compiled.needs_soup:
                    if soup is None:
                        soup = _soup_of(html)
                    _apply_rule_soup(compiled.rule, soup, base_url, out)
                else:
                    _apply_rule(compiled, root, base_url, out)
            if self._link_selector is not None:
                self._collect_links(root if not self._link_selector.soup else None, html, base_url, out)
        else:
            for compiled in self.rules:
                if compiled.pages is None or compiled.pages.search(base_url):
                    out.unmatched.append(f"{compiled.rule.name}: container {compiled.rule.container!r}")
        out.cpu_seconds = time.thread_time() - started
        return out

    def _collect_links(self, root: Any, html: str | bytes, base_url: str, out: PageExtract) -> None:
        assert self._link_selector is not None and self._resolver is not None
        if root is not None:
            hrefs = (el.get("href") for el in self._link_selector.select(root))
        else:
            hrefs = (el.get("href") for el in _soup_of(html).select(self._link_selector.css))
        seen: set[str] = set()
        followed: set[str] = set()
        skipped = out.skipped_links
        for href in hrefs:
            if not isinstance(href, str):
                continue
            href = href.strip()
            cut = href.find("#")
            if cut >= 0:
                href = href[:cut]
            if not href or href in seen:
                continue
            seen.add(href)
            absolute, verdict = self._resolver(base_url, href)
            if verdict:
                skipped[verdict] = skipped.get(verdict, 0) + 1
            elif absolute not in followed:
                followed.add(absolute)  # type: ignore[arg-type]
                out.links.append(absolute)  # type: ignore[arg-type]


def _parse(html: str | bytes) -> Any:
    """The page's root element, or ``None`` for an empty document."""
    if isinstance(html, str):
        # lxml refuses str input with an XML encoding declaration; bytes with a declared encoding always work.
        data, parser = html.encode("utf-8"), _UTF8_PARSER
    else:
        data, parser = html, _PARSER
    if not data.strip():
        return None
    try:
        return lxml_html.document_fromstring(data, parser=parser)
    except (etree.ParserError, ValueError):
        return None


_PARSER = lxml_html.HTMLParser()
_UTF8_PARSER = lxml_html.HTMLParser(encoding="utf-8")


def _apply_rule(compiled: _CompiledRule, root: Any, base_url: str, out: PageExtract) -> None:
    rule = compiled.rule
    containers = compiled.container.select(root)
    if not containers:
        out.unmatched.append(f"{rule.name}: container {rule.container!r}")
        return
    matched_any = False
    found_field = dict.fromkeys(compiled.fields, False)
    for node in containers:
        fields: dict[str, str] = {}
        for name, selector in compiled.fields.items():
            hits = selector.select(node)
            if hits:
                found_field[name] = True
                fields[name] = node_text(hits[0])
        if rule.kind == "text":
            assert compiled.text is not None
            hits = compiled.text.select(node)
            text = node_text(hits[0]) if hits else ""
            if text:
                matched_any = True
                out.items.append(RawItem(rule.name, "text", text=text, fields=fields))
        else:
            raw: list[str] = []
            if compiled.images is not None:
                for img in compiled.images.select(node):
                    value = img.get(rule.image_attr)
                    if value:
                        raw.append(value)
            if compiled.image_regex is not None:
                markup = lxml_html.tostring(node, encoding="unicode", with_tail=False)
                raw.extend(_regex_urls(compiled.image_regex, markup))
            for url in _resolve_all(base_url, raw):
                matched_any = True
                out.items.append(RawItem(rule.name, "image", image_url=url, fields=fields))
    _report_unmatched(rule, matched_any, [n for n, ok in found_field.items() if not ok], out)


def _regex_urls(pattern: re.Pattern[str], markup: str) -> list[str]:
    return [m.group(1) if pattern.groups else m.group(0) for m in pattern.finditer(markup)]


def _resolve_all(base_url: str, urls: Sequence[str]) -> list[str]:
    resolved: list[str] = []
    for raw in urls:
        absolute = join_url(base_url, raw)
        if absolute is not None and absolute not in resolved:
            resolved.append(absolute)
    return resolved


def _report_unmatched(rule: ItemRule, matched_any: bool, missing_fields: list[str], out: PageExtract) -> None:
    if not matched_any:
        what = rule.text if rule.kind == "text" else (rule.image_selector or rule.image_regex)
        out.unmatched.append(f"{rule.name}: {what!r} inside {rule.container!r}")
    out.unmatched.extend(f"{rule.name}: field {n!r} {rule.fields[n]!r}" for n in missing_fields)


# -- the BeautifulSoup fallback, for selectors only soupsieve understands --------------------------------
def _soup_of(html: str | bytes) -> Any:
    from bs4 import BeautifulSoup

    return BeautifulSoup(html, "lxml")


def _apply_rule_soup(rule: ItemRule, soup: Any, base_url: str, out: PageExtract) -> None:
    containers = soup.select(rule.container)
    if not containers:
        out.unmatched.append(f"{rule.name}: container {rule.container!r}")
        return
    matched_any = False
    for node in containers:
        fields: dict[str, str] = {}
        for name, css in rule.fields.items():
            found = node.select_one(css)
            if found is not None:
                fields[name] = normalize_text(found.get_text(" "))
        if rule.kind == "text":
            found = node.select_one(rule.text or "")
            text = normalize_text(found.get_text(" ")) if found is not None else ""
            if text:
                matched_any = True
                out.items.append(RawItem(rule.name, "text", text=text, fields=fields))
        else:
            raw: list[str] = []
            if rule.image_selector:
                for img in node.select(rule.image_selector):
                    value = img.get(rule.image_attr)
                    if isinstance(value, list):
                        value = " ".join(value)
                    if value:
                        raw.append(value)
            if rule.image_regex:
                raw.extend(_regex_urls(re.compile(rule.image_regex), str(node)))
            for url in _resolve_all(base_url, raw):
                matched_any = True
                out.items.append(RawItem(rule.name, "image", image_url=url, fields=fields))
    missing = [n for n, s in rule.fields.items() if all(node.select_one(s) is None for node in containers)]
    _report_unmatched(rule, matched_any, missing, out)


def extract_page(
    html: str | bytes,
    base_url: str,
    rules: Iterable[ItemRule],
    links: LinkRules | None = None,
) -> PageExtract:
    """Parse one page and apply the item rules and link rules (compiles them; a crawl keeps an
    :class:`Extractor` instead).

    Parameters
    ----------
    html : str or bytes
        The page (broken HTML is repaired by lxml).
    base_url : str
        The page's URL (a ``<base href>`` in the page wins), for resolving relative links.
    rules : iterable of ItemRule
        Item rules; a rule with ``pages`` applies only where the regex matches ``base_url``.
    links : LinkRules or None
        Link following rules; ``None`` collects no links.
    """
    return Extractor(rules, links)(html, base_url)
