"""Adapters of the notification ports: ``webhook`` (HTTP via httpx) and ``secretfiles``."""
