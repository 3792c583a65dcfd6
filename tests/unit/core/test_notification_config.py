"""Notification configurations under generated hostile input: refused with a sentence, never
accepted when unsafe."""

from __future__ import annotations

from urllib.parse import urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.core import notification as nt

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
HOSTS = st.sampled_from(["127.0.0.1", "localhost", "[::1]", "example.com", "10.0.0.1", "127.0.0.1.nip.io",
                         "localhost.example.com", "0.0.0.0", "[::ffff:127.0.0.1]", "evil@127.0.0.1", "127.1"])
SCHEMES = st.sampled_from(["http", "https", "ftp", "file", "javascript", "HTTP", ""])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20), st.dictionaries(st.sampled_from(["url", "urlSecret", "on", "format", "stage", "secret", "x"]),
                                             JSONISH, max_size=6))
def test_any_document_is_parsed_or_refused_with_value_error(name: str, doc: dict) -> None:
    """Whatever a ConfigMap holds, parsing either yields a valid notification or raises
    ValueError naming the notification — never anything else."""
    try:
        config = nt.parse_notification(name, doc)
    except ValueError as err:
        assert "notification" in str(err)
        return
    assert set(config.on) <= set(nt.TRIGGERS) and config.format in nt.FORMATS
    assert bool(config.url) != bool(config.url_secret)
    if config.url:
        assert nt.url_problem(config.url) is None


@settings(max_examples=400, deadline=None)
@given(SCHEMES, HOSTS, st.text(alphabet="/?#:@%abc.", max_size=12))
def test_only_https_or_loopback_http_is_accepted(scheme: str, host: str, rest: str) -> None:
    """An accepted URL is https, or http to a loopback address; never with credentials."""
    url = f"{scheme}://{host}{rest}" if scheme else f"{host}{rest}"
    if nt.url_problem(url) is not None:
        return
    parts = urlsplit(url)
    assert parts.scheme in ("http", "https") and not parts.username and not parts.password
    if parts.scheme == "http":
        assert parts.hostname in ("127.0.0.1", "localhost", "::1", "127.1") or parts.hostname.startswith("127.")  # type: ignore[union-attr]
