"""The envelopes every block call answers, declared once: the OpenAPI document emits these
(connector/generate/openapi.py), and a test holds real answers against them.

A success carries the block's result under ``contextWrites.to`` (each block's own success
schema types it); an error carries an ``ErrorBody``. A call that names another key with the
``to`` argument gets its result or error under that key instead.
"""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields
from marshmallow.validate import OneOf

from connector.errors import ALL as ERRORS

WARNINGS = "Arguments that are not the block's, accepted and ignored, with the closest name."


class ErrorBody(Schema):
    status_code = fields.String(
        required=True,
        validate=OneOf([error.code for error in ERRORS]),
        metadata={"description": "What went wrong, as a code (the README's table)."},
    )
    status_msg = fields.String(
        required=True, metadata={"description": "What went wrong and what to do next."}
    )
    retryable = fields.Boolean(
        required=True,
        metadata={"description": "Sending the same call again later may succeed."},
    )
    retry_after_s = fields.Float(
        metadata={"description": "Seconds to wait first, where known (also Retry-After)."}
    )
    fields_at_fault = fields.List(
        fields.String(),
        data_key="fields",
        metadata={"description": "The arguments at fault, by name."},
    )
    errors = fields.Dict(metadata={"description": "Each argument at fault: what is wrong."})
    upstream = fields.Dict(
        metadata={"description": "InstaMsg's own answer: its status and body (no secrets)."}
    )
    request_id = fields.String(
        required=True,
        metadata={
            "description": "The X-Request-Id of the call, for the logs.",
            "example": "5fc2c87957d1586b17e9df98335dd7f4",
        },
    )


class ErrorWrites(Schema):
    """The error under ``to``, or under the key the call gave as ``to`` (the OpenAPI document
    types any such key as an ErrorBody too)."""

    class Meta:
        unknown = INCLUDE

    to = fields.Nested(ErrorBody, metadata={"description": "The error (the usual key)."})


class ErrorEnvelope(Schema):
    callback = fields.String(required=True, validate=OneOf(["error"]))
    context_writes = fields.Nested(ErrorWrites, required=True, data_key="contextWrites")
    warnings = fields.List(fields.String(), metadata={"description": WARNINGS})


class SuccessEnvelope(Schema):
    callback = fields.String(required=True, validate=OneOf(["success"]))
    context_writes = fields.Dict(
        required=True,
        data_key="contextWrites",
        metadata={"description": "The result under to (or under the key the call gave as to)."},
    )
    warnings = fields.List(fields.String(), metadata={"description": WARNINGS})
