"""The package's argument types, one marshmallow field class each.

Flow builders send strings for nearly everything, so every type accepts the
textual form of its value as well as the native JSON one, and turns it into
what the InstaMsg API wants on the wire. Each class carries:

* ``manifest_type``: the type name flow builders see in the manifest;
* ``openapi_schema()``: the JSON-schema fragment of what it *accepts*;
* ``to_wire(value)``: how a loaded value is written into a JSON body.

Error messages never repeat the value they refuse: a secret pasted into the
wrong field must not come back in a response.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from marshmallow import Schema, ValidationError, fields
from marshmallow.utils import missing as _MISSING

from connector import jsonx

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)
# Unix times below this are seconds, from it on milliseconds (connector-api.md).
SECONDS_LIMIT = 100_000_000_000


class ArgField:
    """Mixin for every block argument: its manifest text and where it goes.

    ``info``      the description shown to flow builders (required: no silent args);
    ``secret``    never logged, echoed or kept in an error;
    ``into``      where the value goes upstream when the method's default is wrong
                  (``"query"``, ``"body"``, ``"file"``, ``"auth"``, ``"local"``);
    ``group``     the JSON body object the value is nested in (``provisioning_params``);
    ``example``   a value to show in forms and documents (else the type's own example);
    ``default``   what InstaMsg does when the argument is left out, where the docs say so
                  and the connector sends nothing (a ``load_default`` is shown as it is).
    """

    manifest_type = "String"
    #: the type's example, for arguments that name none of their own.
    example = "text"

    def __init__(
        self, info, *, secret=False, into=None, group=None, example=None, default=None, **kwargs
    ):
        metadata = dict(kwargs.pop("metadata", None) or {})
        metadata.update(info=info, secret=secret, into=into, group=group)
        if example is not None:
            metadata["example"] = example
        if default is not None:
            metadata["default"] = default
        super().__init__(metadata=metadata, **kwargs)

    def to_wire(self, value):
        return value

    def openapi_schema(self) -> dict:
        return {"type": "string"}

    def form_schema(self) -> dict:
        """What the argument looks like as a form field: always text (the string branch of
        what it accepts, where it has one)."""
        schema = self.openapi_schema()
        for branch in [schema, *schema.get("anyOf", ())]:
            if branch.get("type") == "string":
                return dict(branch)
        return {"type": "string"}

    def manifest_extra(self) -> dict:
        return {}

    @property
    def shown_example(self):
        return self.metadata.get("example", self.example)

    @property
    def shown_default(self):
        """The default to show, or None: a ``load_default`` first, else the documented one."""
        value = getattr(self, "load_default", None)
        if value is not None and not callable(value) and value is not _MISSING:
            return value
        return self.metadata.get("default")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _option_labels(options, labels) -> list[str] | None:
    """Each option's name in words, in the options' order; refused at import unless every
    option has one (a form would otherwise show some in words and some raw)."""
    if not labels:
        return None
    if set(labels) != set(options):
        raise ValueError(f"labels {sorted(map(str, labels))} do not name the options {options}")
    return [labels[option] for option in options]


def _options_extra(options, labels) -> dict:
    """The manifest's view of a fixed set of options: the values, and their words if named."""
    extra = {"options": list(options)}
    if labels:
        extra["optionLabels"] = labels
    return extra


#: The longest credential (access token, client key or secret, password, PIN) a secret
#: argument takes, in bytes of UTF-8. InstaMsg's tokens and keys are tens of characters; an
#: HTTP header line rarely takes more than 8 KiB. A value past this is no credential, and it
#: is refused before anything reads it (connector.engine.redaction).
MAX_SECRET_BYTES = 4096
#: The longest identifier: a path segment or a file's name (file systems stop at 255 too).
MAX_ID_BYTES = 255
#: The longest text argument without a bound of its own: names, descriptions, APN settings,
#: network filters. The message payload and file contents are bounded by the request body
#: (MAX_REQUEST_BYTES) instead: they are the body.
MAX_TEXT_BYTES = 4096
#: The most items a list argument holds (topics): each at most MAX_TEXT_BYTES, like any text.
MAX_ITEMS = 500
#: The most digits a number written as text may have: the widest InstaMsg keeps has 19.
MAX_DIGITS = 30


def parsed_json(text: str):
    """JSON text given as an argument, parsed: ValueError when it is not JSON or nests deeper
    than a request body may (jsonx.MAX_DEPTH, the same bound, whatever the spelling). The
    standard library's parser recursed without bound: "[" * 100000 was a RecursionError."""
    value = jsonx.loads(text)
    problem = jsonx.request_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class String(ArgField, fields.String):
    """Text. A number is taken as its text; objects and lists are refused.

    ``max_bytes`` caps the UTF-8 length (the type's ``default_max_bytes`` when not given);
    ``pattern`` with ``pattern_hint`` checks the shape and says what is allowed.
    """

    #: the bound of an argument of this type that names none of its own (None: the body's)
    default_max_bytes: int | None = MAX_TEXT_BYTES

    default_error_messages = {
        "invalid": "Must be text, not an object or a list.",
        "too_long": "Must be at most {max_bytes} bytes of UTF-8.",
        "pattern": "{hint}",
        "blank": "Must not be blank.",
    }

    nonblank = False

    def __init__(
        self, info, *, max_bytes=None, pattern=None, pattern_hint=None, nonblank=None, **kwargs
    ):
        super().__init__(info, **kwargs)
        if nonblank is not None:
            self.nonblank = nonblank
        self.max_bytes = self.default_max_bytes if max_bytes is None else max_bytes
        self.pattern = re.compile(pattern) if pattern else None
        self.pattern_hint = pattern_hint or "Has the wrong format."

    def too_long(self, value: str) -> bool:
        """``value`` is over ``max_bytes``, told at a cost bounded by the limit, not by the
        value: a text of more characters than the limit has bytes is over it unencoded."""
        if self.max_bytes is None:
            return False
        if len(value) > self.max_bytes:
            return True
        return len(value.encode("utf-8", "surrogatepass")) > self.max_bytes

    def _deserialize(self, value, attr, data, **kwargs):
        if _is_number(value):
            if isinstance(value, float) and not math.isfinite(value):
                raise self.make_error("invalid")
            value = str(value)
        if not isinstance(value, str):
            raise self.make_error("invalid")
        # The length first: every later check reads the whole value.
        if self.too_long(value):
            raise self.make_error("too_long", max_bytes=self.max_bytes)
        if self.nonblank and not value.strip():
            raise self.make_error("blank")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise self.make_error("pattern", hint=self.pattern_hint)
        return value

    def openapi_schema(self):
        # An optional argument given as "" counts as not given (flow builders send empty
        # fields): only a required one is refused for it.
        schema = {"type": "string"}
        if self.pattern is not None:
            body = self.pattern.pattern
            schema["pattern"] = f"^{body}$" if self.required else f"^(?:{body})?$"
        if self.nonblank and self.required:
            schema["minLength"] = 1
        if self.max_bytes is not None:
            # Characters, not bytes: the byte limit is checked on loading.
            schema["maxLength"] = self.max_bytes
        return schema


class Credentials(String):
    """A secret: an account credential, an access token, a password or key. Never logged or
    echoed; non-empty unless ``nonblank=False`` keeps an optional secret as it was."""

    manifest_type = "credentials"
    nonblank = True
    example = "demo-secret"
    default_max_bytes = MAX_SECRET_BYTES

    def __init__(self, info, **kwargs):
        super().__init__(info, secret=True, **kwargs)


class AccessToken(Credentials):
    """An OAuth2 access token. It travels in an ``Authorization: Bearer`` header, so it must
    be visible ASCII, and a value that already starts with ``Bearer `` is refused with a
    sentence saying to drop the prefix (a common paste from curl examples)."""

    default_error_messages = {
        "bearer": (
            'Give the access token without the "Bearer " prefix: drop "Bearer " and keep '
            "the rest (the connector adds the prefix itself)."
        ),
    }
    example = "pxlsbzDwv42Uw5WS9yq7OD0vQJtb67ET"

    def __init__(self, info, **kwargs):
        kwargs.setdefault("pattern", r"[\x21-\x7e]+")
        kwargs.setdefault(
            "pattern_hint", "Must be an access token: letters, digits and symbols, no spaces."
        )
        super().__init__(info, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and value.lstrip()[:7].lower() == "bearer ":
            raise self.make_error("bearer")
        return super()._deserialize(value, attr, data, **kwargs)


class JSONText(String):
    """Text, where a JSON object or array is taken as its JSON text: a flow builder maps an
    earlier step's object straight into it (publishMessage's payload)."""

    default_max_bytes = None

    default_error_messages = {
        "invalid": "Must be text, or a JSON object or array (sent as its JSON text).",
        "not_json": "Must be a JSON object or array without NaN or Infinity.",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, (Mapping, list)):
            try:
                value = json.dumps(
                    value, ensure_ascii=False, separators=(",", ":"), allow_nan=False
                )
            except (TypeError, ValueError, RecursionError):
                raise self.make_error("not_json") from None
        return super()._deserialize(value, attr, data, **kwargs)

    def openapi_schema(self):
        return {
            "anyOf": [
                super().openapi_schema(),
                {"type": "object", "additionalProperties": True},
                {"type": "array", "items": {}},
            ]
        }


class Id(String):
    """An identifier placed in a URL path: one segment, never ``.`` or ``..``."""

    example = "t494609aaec00"

    default_error_messages = {
        "dot": "Must be an identifier; '.' and '..' are not allowed.",
        "control": "Must not contain control characters (line breaks, tabs and the like).",
    }
    nonblank = True
    default_max_bytes = MAX_ID_BYTES
    #: C0 controls and DEL: a filename goes into a multipart header, where a line break
    #: would start a header of its own.
    CONTROL = re.compile(r"[\x00-\x1f\x7f]")

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if value in (".", ".."):
            raise self.make_error("dot")
        if self.CONTROL.search(value):
            raise self.make_error("control")
        return value


#: The widest whole number InstaMsg keeps (a signed 64-bit integer, as the sandbox's store
#: holds it): a whole-number argument without a narrower range of its own stays inside it.
MAX_INTEGER = 2**63 - 1
MIN_INTEGER = -(2**63)


class Number(ArgField, fields.Field):
    """A number, or a string holding one in ASCII digits. ``integer`` refuses fractions;
    a whole number is never wider than MIN_INTEGER..MAX_INTEGER."""

    manifest_type = "Number"
    example = 1
    default_error_messages = {
        "invalid": "Must be a number.",
        "whole": "Must be a whole number.",
        "range": "Must be between {lo} and {hi}.",
        "min": "Must be {lo} or more.",
        "max": "Must be {hi} or less.",
        "choice": "Must be one of: {options}.",
        "wide_high": "Must be a whole number InstaMsg can hold: {hi} or less.",
        "wide_low": "Must be a whole number InstaMsg can hold: {lo} or more.",
    }

    def __init__(
        self,
        info,
        *,
        integer=True,
        minimum=None,
        maximum=None,
        choices=None,
        labels=None,
        **kwargs,
    ):
        super().__init__(info, **kwargs)
        self.integer = integer
        self.minimum = minimum
        self.maximum = maximum
        self.choices = list(choices) if choices else None
        self.labels = _option_labels(self.choices, labels)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            text = value.strip()
            # ASCII only: int("١٠") is 10 and float("٣.٥") is 3.5, but no flow builder's
            # user typed those as numbers; the documented pattern is [0-9].
            if not text.isascii() or len(text) > MAX_DIGITS:
                raise self.make_error("invalid")
            try:
                value = int(text)
            except ValueError:
                try:
                    value = float(text)
                except ValueError:
                    raise self.make_error("invalid") from None
        elif not _is_number(value):
            raise self.make_error("invalid")
        if isinstance(value, float):
            if not math.isfinite(value):
                raise self.make_error("invalid")
            if self.integer:
                if not value.is_integer():
                    raise self.make_error("whole")
                value = int(value)
        if self.choices is not None and value not in self.choices:
            raise self.make_error("choice", options=", ".join(map(str, self.choices)))
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None and not lo <= value <= hi:
            raise self.make_error("range", lo=lo, hi=hi)
        if lo is not None and value < lo:
            raise self.make_error("min", lo=lo)
        if hi is not None and value > hi:
            raise self.make_error("max", hi=hi)
        if self.integer and value > MAX_INTEGER:
            raise self.make_error("wide_high", hi=MAX_INTEGER)
        if self.integer and value < MIN_INTEGER:
            raise self.make_error("wide_low", lo=MIN_INTEGER)
        return value

    def openapi_schema(self):
        num = {"type": "integer" if self.integer else "number"}
        if self.choices is not None:
            num["enum"] = self.choices
        if self.minimum is not None:
            num["minimum"] = self.minimum
        if self.maximum is not None:
            num["maximum"] = self.maximum
        return {"anyOf": [num, {"type": "string", "pattern": self.text_pattern()}]}

    def text_pattern(self) -> str:
        """The number as text, no wider than the range allows at its low end: with a minimum
        of 0 no minus sign, with a minimum of 1 no zero (the maximum is left to loading)."""
        if self.choices is not None:
            digits = "|".join(str(c) for c in self.choices)
            return rf"^\s*({digits})\s*$"
        if not self.integer:
            sign = "" if self.minimum is not None and self.minimum >= 0 else "-?"
            return rf"^\s*{sign}[0-9]+(\.[0-9]+)?\s*$"
        if self.minimum is not None and self.minimum >= 1:
            return r"^\s*0*[1-9][0-9]*\s*$"
        if self.minimum is not None and self.minimum >= 0:
            return r"^\s*[0-9]+\s*$"
        return r"^\s*-?[0-9]+\s*$"

    def manifest_extra(self):
        return _options_extra(self.choices, self.labels) if self.choices is not None else {}


class Boolean(ArgField, fields.Field):
    """``true``/``false``, ``1``/``0``, ``yes``/``no`` in any case, as JSON or text.

    ``wire`` says how a JSON body carries it: ``"bool"`` (true/false),
    ``"int"`` (1/0) or ``"str"`` ("1"/"0"). Query strings always carry 1/0.
    """

    manifest_type = "Boolean"
    example = True
    TRUE = frozenset({"true", "1", "yes"})
    FALSE = frozenset({"false", "0", "no"})
    default_error_messages = {"invalid": "Must be true or false (also accepted: 1/0, yes/no)."}

    def __init__(self, info, *, wire="bool", **kwargs):
        super().__init__(info, **kwargs)
        if wire not in ("bool", "int", "str"):
            raise ValueError(f"unknown boolean wire form {wire!r}")
        self.wire = wire

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            return value
        if _is_number(value) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            text = value.strip().lower()
            if text in self.TRUE:
                return True
            if text in self.FALSE:
                return False
        raise self.make_error("invalid")

    def to_wire(self, value):
        if self.wire == "int":
            return int(value)
        if self.wire == "str":
            return "1" if value else "0"
        return value

    def openapi_schema(self):
        return {
            "anyOf": [
                {"type": "boolean"},
                {"type": "integer", "enum": [0, 1]},
                {
                    "type": "string",
                    "pattern": "^\\s*([Tt]rue|TRUE|[Ff]alse|FALSE|[Yy]es|YES|[Nn]o|NO|1|0)\\s*$",
                },
            ]
        }


class Select(ArgField, fields.String):
    """One of a fixed set of options; any case is accepted and normalized."""

    manifest_type = "Select"
    default_error_messages = {"invalid": "Must be one of: {options}."}

    @property
    def example(self):
        return self.options[0]

    def __init__(self, info, *, options, labels=None, **kwargs):
        super().__init__(info, **kwargs)
        self.options = list(options)
        self.labels = _option_labels(self.options, labels)
        self._by_folded = {option.casefold(): option for option in self.options}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            option = self._by_folded.get(value.strip().casefold())
            if option is not None:
                return option
        raise self.make_error("invalid", options=", ".join(self.options))

    def openapi_schema(self):
        return {"type": "string", "enum": self.options}

    def manifest_extra(self):
        return _options_extra(self.options, self.labels)


class List(ArgField, fields.Field):
    """A list of strings: a JSON array, a string holding one, or ``"a, b, c"``."""

    manifest_type = "List"
    example = ["topic1", "topic2"]
    default_error_messages = {
        "invalid": "Must be a list of strings: a JSON array or comma-separated text.",
        "item": "Every item must be text (item {index} is not).",
        "many": f"Must hold at most {MAX_ITEMS} items.",
        "item_long": f"Every item must be at most {MAX_TEXT_BYTES} bytes (item {{index}} is not).",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = parsed_json(text)
                except ValueError:
                    raise self.make_error("invalid") from None
            else:
                if text.count(",") >= MAX_ITEMS:  # counted before anything is split
                    raise self.make_error("many")
                value = [item.strip() for item in text.split(",") if item.strip()]
        if not isinstance(value, (list, tuple)):
            raise self.make_error("invalid")
        if len(value) > MAX_ITEMS:
            raise self.make_error("many")
        items = []
        for index, item in enumerate(value):
            if _is_number(item) and math.isfinite(item):
                item = str(item)
            if not isinstance(item, str):
                raise self.make_error("item", index=index)
            if len(item.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
                raise self.make_error("item_long", index=index)
            items.append(item)
        return items

    def openapi_schema(self):
        return {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]}


class JSON(ArgField, fields.Field):
    """A JSON object, or a string holding one."""

    manifest_type = "JSON"
    example = {"PING_REQ_INTERVAL": 180}
    default_error_messages = {
        "invalid": "Must be a JSON object (or a string holding one).",
        "syntax": "Is not valid JSON: {reason}.",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            try:
                value = parsed_json(value)
            except ValueError as exc:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                raise self.make_error("syntax", reason=reason) from None
        if not isinstance(value, Mapping):
            raise self.make_error("invalid")
        return dict(value)

    def openapi_schema(self):
        return {"anyOf": [{"type": "object"}, {"type": "string"}]}


class Datepicker(ArgField, fields.Field):
    """A date and time, sent upstream as unix time in milliseconds.

    Accepts ISO 8601 (with ``Z``, an offset, or none: then UTC), ``YYYY-MM-DD``
    (midnight UTC), ``YYYY-MM-DD HH:MM[:SS]``, or unix time as a number or
    digits: below 100,000,000,000 seconds, from there on milliseconds.
    """

    manifest_type = "Datepicker"
    example = "2026-11-25T10:00:00Z"
    default_error_messages = {
        "invalid": (
            "Must be a date and time: ISO 8601 such as 2026-11-25T10:00:00Z, "
            "2026-11-25 10:00, 2026-11-25, or unix time in seconds or milliseconds."
        ),
        "negative": "Must not be before 1970-01-01.",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        # ASCII digits only: "²".isdigit() is true, but it is no number.
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            if len(value.strip()) > MAX_DIGITS:  # no time is that long; int() would refuse
                raise self.make_error("invalid")
            value = int(value.strip())
        if _is_number(value):
            if not math.isfinite(value):
                raise self.make_error("invalid")
            if value < 0:
                raise self.make_error("negative")
            return int(value * 1000) if value < SECONDS_LIMIT else int(value)
        if not isinstance(value, str):
            raise self.make_error("invalid")
        text = value.strip()
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise self.make_error("invalid") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        millis = (moment - EPOCH) // MS
        if millis < 0:
            raise self.make_error("negative")
        return millis

    def openapi_schema(self):
        return {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "integer", "minimum": 0},
            ],
            "x-unit": "unix-ms",
        }

    def form_schema(self):
        return {"type": "string"}

    def manifest_extra(self):
        return {"format": "date-time", "unit": "unix-ms"}


class Map(ArgField, fields.Field):
    """A point on the map, written as ``"lat,lng"``."""

    manifest_type = "Map"
    example = "12.97,77.59"
    default_error_messages = {
        "invalid": (
            'Must be a location: "lat,lng", {{"lat": .., "lng": ..}}, '
            '{{"latitude": .., "longitude": ..}} or [lat, lng].'
        ),
        "lat": "Latitude must be between -90 and 90.",
        "lng": "Longitude must be between -180 and 180.",
    }

    def _pair(self, value):
        if isinstance(value, str):
            parts = value.split(",")
            if len(parts) == 2:
                return parts
        elif isinstance(value, Mapping):
            for lat_key, lng_key in (("lat", "lng"), ("latitude", "longitude")):
                if lat_key in value and lng_key in value:
                    return value[lat_key], value[lng_key]
        elif isinstance(value, (list, tuple)) and len(value) == 2:
            return value
        raise self.make_error("invalid")

    def _coordinate(self, value):
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise self.make_error("invalid") from None
        if not _is_number(value) or not math.isfinite(value):
            raise self.make_error("invalid")
        return value

    def _deserialize(self, value, attr, data, **kwargs):
        lat, lng = (self._coordinate(part) for part in self._pair(value))
        if not -90 <= lat <= 90:
            raise self.make_error("lat")
        if not -180 <= lng <= 180:
            raise self.make_error("lng")
        return f"{lat:g},{lng:g}"

    def openapi_schema(self):
        return {"anyOf": [{"type": "string"}, {"type": "object"}, {"type": "array"}]}


class Array(ArgField, fields.Field):
    """A list of objects, each validated by the block's ``structure`` schema."""

    manifest_type = "Array"
    example = [{"name": "a"}]
    default_error_messages = {
        "invalid": "Must be a list of objects (or a string holding one).",
    }

    def __init__(self, info, *, structure: type[Schema], **kwargs):
        super().__init__(info, **kwargs)
        self.structure = structure
        self._item_schema = structure()

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            try:
                value = parsed_json(value)
            except ValueError:
                raise self.make_error("invalid") from None
        if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
            raise self.make_error("invalid")
        errors, items = {}, []
        for index, item in enumerate(value):
            try:
                items.append(self._item_schema.load(item))
            except ValidationError as exc:
                errors[index] = exc.messages
        if errors:
            raise ValidationError(errors)
        return items

    def openapi_schema(self):
        return {"anyOf": [{"type": "array", "items": {"type": "object"}}, {"type": "string"}]}

    def manifest_extra(self):
        return {
            "structure": [
                {"name": f.data_key or name, "type": f.manifest_type, "info": f.metadata["info"]}
                for name, f in self._item_schema.fields.items()
            ]
        }


class Base64(String):
    """Bytes written as base64 text, or as a ``data:<type>;base64,<data>`` URL (what a
    browser's FileReader gives); becomes the decoded bytes."""

    default_error_messages = {
        "base64": "Must be base64-encoded bytes.",
        "data_url": "A data: URL must be base64-encoded: data:<type>;base64,<data>.",
    }
    example = "aGVsbG8="
    default_max_bytes = None
    DATA_URL = re.compile(r"(?is)\s*data:([^,]*),")

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        found = self.DATA_URL.match(text)
        if found:
            if not found.group(1).strip().lower().endswith(";base64"):
                raise self.make_error("data_url")
            text = text[found.end() :]
        try:
            return base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            raise self.make_error("base64") from None


class File(ArgField, fields.Field):
    """A file to send: an http(s) URL to fetch, or a multipart part named like the arg."""

    manifest_type = "File"
    example = "https://example.com/firmware.bin"
    default_error_messages = {
        "invalid": "Must be an http:// or https:// URL, or a multipart file part.",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            text = value.strip()
            if re.match(r"(?i)^https?://[^/\s]", text):
                return text
            raise self.make_error("invalid")
        # A multipart upload arrives as werkzeug's FileStorage: anything with a stream.
        if hasattr(value, "stream") and hasattr(value, "filename"):
            return value
        raise self.make_error("invalid")

    def openapi_schema(self):
        return {"type": "string", "format": "uri"}

    def form_schema(self):
        # A multipart part (the bytes) or a URL to fetch: both are text to a form.
        return {"type": "string", "format": "binary"}


#: Every argument type a block may use, as the manifest names them.
TYPES = (Credentials, String, Number, Boolean, Select, List, JSON, Datepicker, Map, Array, File)
