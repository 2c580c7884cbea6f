"""URL helpers shared by the crawler: normalisation, scheme and scope checks."""

from __future__ import annotations

from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

__all__ = ["ALLOWED_SCHEMES", "normalize_url", "join_url", "origin", "in_scope", "default_scope"]

# Only these are ever fetched: file://, ftp://, data:, javascript: and the rest never leave the page.
ALLOWED_SCHEMES = ("http", "https")


def normalize_url(url: str) -> str:
    """Lower-case scheme and host, drop the fragment and default ports, give an empty path a ``/``.

    >>> normalize_url("HTTP://Example.COM:80/a?b=1#frag")
    'http://example.com/a?b=1'
    """
    url, _ = urldefrag(url.strip())
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    if parts.username:
        # Credentials in a URL would be sent to the site and stored in provenance: keep them out.
        pass
    path = parts.path or "/"
    return urlunsplit((scheme, host, path, parts.query, ""))


def join_url(base: str, href: str) -> str | None:
    """Resolve a link against its page; ``None`` for empty or non-http(s) links."""
    href = (href or "").strip()
    if not href or href.startswith("#"):
        return None
    absolute = urljoin(base, href)
    if urlsplit(absolute).scheme.lower() not in ALLOWED_SCHEMES:
        return None
    return normalize_url(absolute)


def scheme_of(url: str) -> str:
    """The URL's scheme, lower-cased ('' when it has none)."""
    return urlsplit(url.strip()).scheme.lower()


def origin(url: str) -> str:
    """``scheme://host[:port]``: the unit robots.txt and politeness are kept per."""
    parts = urlsplit(normalize_url(url))
    return f"{parts.scheme}://{parts.netloc}"


def default_scope(start_urls: list[str]) -> list[str]:
    """Without a configured scope a crawl stays on its start URLs' origins."""
    return sorted({origin(u) + "/" for u in start_urls})


def in_scope(url: str, scope: list[str]) -> bool:
    """True when ``url`` is http(s) and starts with one of the ``scope`` prefixes."""
    if scheme_of(url) not in ALLOWED_SCHEMES:
        return False
    url = normalize_url(url)
    return any(url.startswith(normalize_url(prefix)) or url + "/" == normalize_url(prefix) for prefix in scope)
