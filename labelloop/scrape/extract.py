"""Items and links out of HTML with BeautifulSoup (lxml parser).

lxml repairs broken HTML the way browsers do, so a page with unclosed tags still
yields what can be read. A selector that matches nothing on a page is not an
error (layouts change) but it is reported per page, so a broken rule is seen.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable

from bs4 import BeautifulSoup
from bs4.element import Tag

from labelloop.config import FollowConfig, ItemRule
from labelloop.scrape.urls import in_scope, join_url, scheme_of

__all__ = ["RawItem", "PageExtract", "normalize_text", "extract_page", "LinkRules"]

_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Unicode NFKC, whitespace runs collapsed to one space, ends stripped.

    >>> normalize_text("  caf\\u00e9\\u00a0 au\\n\\n lait\\t")
    'café au lait'
    """
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


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


def _select_text(node: Tag, selector: str) -> str | None:
    found = node.select_one(selector)
    if found is None:
        return None
    return normalize_text(found.get_text(" "))


def _image_urls(node: Tag, rule: ItemRule, base_url: str) -> list[str]:
    urls: list[str] = []
    if rule.image_selector:
        for img in node.select(rule.image_selector):
            value = img.get(rule.image_attr)
            if isinstance(value, list):
                value = " ".join(value)
            if value:
                urls.append(value)
    if rule.image_regex:
        pattern = re.compile(rule.image_regex)
        for match in pattern.finditer(str(node)):
            urls.append(match.group(1) if pattern.groups else match.group(0))
    resolved: list[str] = []
    for raw in urls:
        absolute = join_url(base_url, raw)
        if absolute is not None and absolute not in resolved:
            resolved.append(absolute)
    return resolved


def extract_page(
    html: str | bytes,
    base_url: str,
    rules: Iterable[ItemRule],
    links: LinkRules | None = None,
) -> PageExtract:
    """Parse one page and apply the item rules and link rules.

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
    soup = BeautifulSoup(html, "lxml")
    base_tag = soup.find("base", href=True)
    if isinstance(base_tag, Tag):
        base_href = join_url(base_url, str(base_tag["href"]))
        if base_href:
            base_url = base_href
    out = PageExtract()
    for rule in rules:
        if rule.pages and not re.search(rule.pages, base_url):
            continue
        containers = soup.select(rule.container)
        if not containers:
            out.unmatched.append(f"{rule.name}: container {rule.container!r}")
            continue
        matched_any = False
        for node in containers:
            fields: dict[str, str] = {}
            for name, selector in rule.fields.items():
                value = _select_text(node, selector)
                if value is not None:
                    fields[name] = value
            if rule.kind == "text":
                text = _select_text(node, rule.text or "")
                if text:
                    matched_any = True
                    out.items.append(RawItem(rule.name, "text", text=text, fields=fields))
            else:
                for url in _image_urls(node, rule, base_url):
                    matched_any = True
                    out.items.append(RawItem(rule.name, "image", image_url=url, fields=fields))
        if not matched_any:
            what = rule.text if rule.kind == "text" else (rule.image_selector or rule.image_regex)
            out.unmatched.append(f"{rule.name}: {what!r} inside {rule.container!r}")
        missing = [n for n, s in rule.fields.items() if all(node.select_one(s) is None for node in containers)]
        out.unmatched.extend(f"{rule.name}: field {n!r} {rule.fields[n]!r}" for n in missing)
    if links is not None:
        seen: set[str] = set()
        for element in soup.select(links.selector):
            href = element.get("href")
            if not isinstance(href, str) or not href.strip() or href.strip().startswith("#"):
                continue
            absolute = join_url(base_url, href)
            if absolute is None:
                reason = f"scheme_{scheme_of(href) or 'none'}"
                out.skipped_links[reason] = out.skipped_links.get(reason, 0) + 1
                continue
            if absolute in seen:
                continue
            seen.add(absolute)
            verdict = links.verdict(absolute)
            if verdict:
                out.skipped_links[verdict] = out.skipped_links.get(verdict, 0) + 1
                continue
            out.links.append(absolute)
    return out

