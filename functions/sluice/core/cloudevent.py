"""The one CloudEvent codec: CloudEvents 1.0 (and 0.3) over HTTP, binary and structured mode.

A ``RawEvent`` is a CloudEvent's attributes (extensions included, as strings) and its data
bytes; ``parse`` reads one from HTTP headers and a body, ``to_binary`` / ``to_structured``
write one. It knows the CloudEvents format and nothing of Sluice's event types or payloads
(``sluice.core.events`` decodes those from ``attributes`` and ``json_data()``), so the local
broker (which forwards any CloudEvent as it came: extensions it does not know survive, and
filters can match on them), the functions (their requests and replies) and the publisher
(posting to a broker) share it. Header values are percent-encoded as the HTTP binding says.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from sluice.core.frozen import frozen
from sluice.core.lexical import is_extension_name, is_rfc3339
from sluice.errors import ValidationError

STRUCTURED = "application/cloudevents+json"
_SAFE = frozenset(chr(c) for c in range(0x21, 0x7F)) - {'"', "%"}


@frozen
class RawEvent:
    """A CloudEvent as received: its attributes (strings) and its data (bytes)."""

    attributes: Mapping[str, str]
    data: bytes

    @classmethod
    def of(cls, attributes: Mapping[str, str], data: object) -> RawEvent:
        """An event with JSON ``data`` (``datacontenttype`` application/json unless given)."""
        return cls({"datacontenttype": "application/json", **attributes}, json.dumps(data).encode())

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
        """Structured-mode headers and body."""
        return {"content-type": STRUCTURED}, json.dumps(self.to_json_dict()).encode()

    def json_data(self) -> object:
        """The data as JSON (``{}`` when there is none); ``ValidationError`` when it is not JSON."""
        if not self.data:
            return {}
        try:
            return json.loads(self.data)
        except (ValueError, RecursionError) as err:
            raise ValidationError("request", [f"data is not JSON: {err}"]) from err


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return not media or media == "application/json" or media.endswith("+json") or media == "text/json"


#: Required context attributes of every CloudEvent (0.3 and 1.0).
REQUIRED = ("id", "source", "specversion", "type")
SPEC_VERSIONS = ("1.0", "0.3")


def parse(headers: Mapping[str, str], body: bytes, *, strings_only: bool = False) -> RawEvent:
    """Read an HTTP CloudEvent (binary or structured mode) and keep its attributes as sent.

    Checks only what makes it a CloudEvent — the required attributes (``id``, ``source``,
    ``specversion`` 1.0 or 0.3, ``type``), well-formed optional ones (``time`` RFC 3339,
    attribute names), a parseable structured body — as a Knative Broker's ingress does; any
    type and any payload pass. Raises ``ValidationError`` naming every problem otherwise.
    In structured mode a number or boolean attribute (an Integer or Boolean extension) is kept as
    its JSON text, unless ``strings_only`` asks for string attributes only (a reader whose
    attributes are all strings, like Sluice's events).
    """
    lower = {k.lower(): v for k, v in headers.items()}
    content_type = lower.get("content-type", "")
    if "ce-specversion" not in lower and content_type.split(";", 1)[0].strip().lower() == STRUCTURED:
        return _structured(body, strings_only)
    if "ce-specversion" not in lower:
        raise ValidationError("request", [
            "not a CloudEvent: no ce-specversion header (binary mode) and the content type is not "
            f"{STRUCTURED} (structured mode), found {content_type or 'none'!r}"
        ])
    attrs = {k[3:]: unquote(v) for k, v in lower.items() if k.startswith("ce-")}
    if content_type:
        attrs["datacontenttype"] = content_type
    _check(attrs, "header ce-")
    return RawEvent(attrs, body)


def _structured(body: bytes, strings_only: bool) -> RawEvent:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as err:  # RecursionError: 10,000-deep JSON
        raise ValidationError("request", [f"structured mode: the body is not JSON: {err}"]) from err
    if not isinstance(doc, dict):
        raise ValidationError("request", [f"structured mode: expected a JSON object, found {type(doc).__name__}"])
    problems = [
        f"attribute {k!r}: expected a string, number or boolean, found {type(v).__name__}"
        for k, v in doc.items() if k not in ("data", "data_base64") and isinstance(v, dict | list)
    ]
    if strings_only:
        problems += [f"{k}: expected a string, found {type(v).__name__}" for k, v in doc.items()
                     if k not in ("data", "data_base64") and v is not None and not isinstance(v, str | dict | list)]
    attrs = {
        k: v if isinstance(v, str) else json.dumps(v)
        for k, v in doc.items() if k not in ("data", "data_base64") and v is not None
    }
    data = b""
    if "data_base64" in doc and doc["data_base64"] is not None:
        try:
            data = base64.b64decode(doc["data_base64"], validate=True)
        except (ValueError, TypeError) as err:
            problems.append(f"data_base64 is not base64: {err}")
    elif "data" not in doc or doc["data"] is None:
        data = b""
    elif isinstance(doc["data"], str) and not _is_json(attrs.get("datacontenttype", "")):
        data = doc["data"].encode()
    else:
        data = json.dumps(doc["data"]).encode()
        attrs.setdefault("datacontenttype", "application/json")
    try:
        _check(attrs, "")
    except ValidationError as err:
        problems.extend(err.problems)
    if problems:
        raise ValidationError("request", problems)
    return RawEvent(attrs, data)


def _check(attrs: Mapping[str, str], prefix: str) -> None:
    problems = [f"{prefix}{name}: required, missing" for name in REQUIRED if not attrs.get(name)]
    version = attrs.get("specversion")
    if version and version not in SPEC_VERSIONS:
        problems.append(f"{prefix}specversion: expected one of {', '.join(SPEC_VERSIONS)}, found {version!r}")
    when = attrs.get("time")
    if when is not None and not is_rfc3339(when):
        problems.append(f"{prefix}time: expected an RFC 3339 timestamp, found {when[:60]!r}")
    bad = sorted(k for k in attrs if k != "datacontenttype" and not is_extension_name(k))
    if bad:
        problems.append(
            "attribute names must be 1-20 lower-case letters or digits, found "
            + ", ".join(repr(b[:40]) for b in bad[:5])
        )
    if problems:
        raise ValidationError("request", problems)
