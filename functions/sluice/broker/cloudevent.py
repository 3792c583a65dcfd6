"""A CloudEvent as the broker carries it: its attributes (extensions included) and data bytes.

The broker validates every event with the functions' own rules (``sluice.functions.http.decode``)
and forwards the attributes as they came, so extensions it does not know survive, and filters
can match on them. Delivery uses binary mode (``to_binary``) or, if a Trigger asks for
``format: json``, structured mode (``to_structured``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from sluice.errors import ValidationError
from sluice.functions.http import decode

STRUCTURED = "application/cloudevents+json"
_SAFE = frozenset(chr(c) for c in range(0x21, 0x7F)) - {'"', "%"}


@dataclass(frozen=True)
class RawEvent:
    attributes: Mapping[str, str]
    data: bytes

    @property
    def id(self) -> str:
        return self.attributes.get("id", "")

    @property
    def type(self) -> str:
        return self.attributes.get("type", "")

    def to_binary(self) -> dict[str, str]:
        """Binary-mode headers (the body is ``data``)."""
        headers = {
            "ce-" + k: v if _SAFE.issuperset(v) else quote(v, safe="")
            for k, v in self.attributes.items()
            if k != "datacontenttype"
        }
        headers["content-type"] = self.attributes.get("datacontenttype") or "application/json"
        return headers

    def to_json_dict(self) -> dict[str, Any]:
        """Structured-mode form: attributes plus ``data`` (parsed JSON, text, or ``data_base64``)."""
        doc: dict[str, Any] = dict(self.attributes)
        if not self.data:
            return doc
        if _is_json(self.attributes.get("datacontenttype", "")):
            try:
                doc["data"] = json.loads(self.data)
                return doc
            except ValueError:
                pass
        try:
            doc["data"] = self.data.decode()
        except UnicodeDecodeError:
            doc["data_base64"] = base64.b64encode(self.data).decode()
        return doc

    def to_structured(self) -> tuple[dict[str, str], bytes]:
        return {"content-type": STRUCTURED}, json.dumps(self.to_json_dict()).encode()


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return not media or media == "application/json" or media.endswith("+json") or media == "text/json"


def parse(headers: Mapping[str, str], body: bytes) -> RawEvent:
    """Validate an HTTP CloudEvent (binary or structured) and keep its attributes as sent.

    Raises ``ValidationError`` (with every problem) for anything the functions would refuse.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    decode(lower, body)  # the functions' own validation; the broker forwards what came
    if "ce-specversion" in lower:
        attrs = {k[3:]: unquote(v) for k, v in lower.items() if k.startswith("ce-")}
        if lower.get("content-type"):
            attrs["datacontenttype"] = lower["content-type"]
        return RawEvent(attrs, body)
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as err:  # decode accepted it, so this is not expected
        raise ValidationError("request", [f"body is not valid JSON: {err}"]) from err
    if not isinstance(doc, dict):
        raise ValidationError("request", ["structured mode: expected a JSON object"])
    attrs = {k: v if isinstance(v, str) else json.dumps(v) for k, v in doc.items() if k not in ("data", "data_base64")}
    if "data_base64" in doc:
        try:
            data = base64.b64decode(doc["data_base64"], validate=True)
        except (ValueError, TypeError) as err:
            raise ValidationError("request", [f"data_base64 is not base64: {err}"]) from err
    elif "data" not in doc or doc["data"] is None:
        data = b""
    elif isinstance(doc["data"], str) and not _is_json(attrs.get("datacontenttype", "")):
        data = doc["data"].encode()
    else:
        data = json.dumps(doc["data"]).encode()
        attrs.setdefault("datacontenttype", "application/json")
    return RawEvent(attrs, data)
