"""Webhook sender over httpx (imported only when a message is sent)."""

from __future__ import annotations

from collections.abc import Mapping

from sluice.errors import RetryableError


class HttpWebhookSender:
    """Posts with no redirects followed (a 3xx is an answer, not a place to send secrets to)."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
        import httpx

        try:
            with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
                return client.post(url, content=body, headers=dict(headers)).status_code
        except httpx.TimeoutException as err:
            raise RetryableError(f"no answer within {timeout_s:g} s") from err
        except httpx.HTTPError as err:
            raise RetryableError(f"{type(err).__name__}: {err or 'connection failed'}") from err
