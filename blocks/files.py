"""Files: what a client stores on InstaMsg, uploaded, listed, downloaded and deleted."""

import base64
import mimetypes

from connector.engine.registry import block
from connector.errors import PayloadTooLarge
from connector.upstream.client import read_by_deadline
from connector.upstream.fetch import fetch_file
from connector.upstream.outcomes import json_result
from schemas import clients
from schemas import files as s
from schemas import results as r

FILES = "/api/v1/tenants/{tenant_id}/clients/{client_id}/files"
FILE = FILES + "/{filename}"


def content_type(response, filename):
    declared = response.headers.get("Content-Type", "").strip()
    return declared or mimetypes.guess_type(filename)[0] or "application/octet-stream"


def file_source(args, ctx):
    """The bytes to upload: from fileContent, a multipart part, or a fetched URL."""
    name = args["filename"]
    guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if "file_content" in args:
        return args["file_content"], guessed
    source = args["file"]
    if isinstance(source, str):
        return fetch_file(source, ctx.settings, gone=ctx.caller_gone)
    return source.stream, source.mimetype or guessed


def camel_content_type(item):
    """InstaMsg's ``content_type`` as ``contentType``: one spelling in every file result."""
    if not isinstance(item, dict) or "content_type" not in item:
        return item
    return {("contentType" if key == "content_type" else key): v for key, v in item.items()}


def uploaded(response, args, ctx):
    return camel_content_type(json_result(response))


def listed(response, args, ctx):
    files = json_result(response)
    return [camel_content_type(item) for item in files] if isinstance(files, list) else files


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The file is larger than {limit} bytes, the most downloadFile returns "
        "as base64. Call POST /blocks/downloadFile?stream=1 to get the raw bytes."
    )


def file_as_json(response, args, ctx):
    """The downloaded file, base64 in JSON, up to MAX_DOWNLOAD_BYTES."""
    limit = ctx.settings.max_download_bytes
    with response:  # a body that breaks off or stalls is InstaMsg's fault: its error
        data = read_by_deadline(response, limit, lambda: too_large(limit), ctx.settings)
    return {
        "filename": args["filename"],
        "contentType": content_type(response, args["filename"]),
        "size": len(data),
        "content": base64.b64encode(data).decode("ascii"),
    }


block(
    "getFiles",
    "GET",
    FILES,
    clients.OneClient,
    "Lists a client's files: filename, size and contentType of each.",
    result=listed,
    returns=[r.FileInfo],
)
block(
    "uploadFile",
    "POST",
    FILE,
    s.UploadFile,
    "Uploads a file for a client, given as base64 (fileContent), as a URL to fetch (file), "
    "or as a multipart part named file.",
    body="multipart",
    file_part=file_source,
    result=uploaded,
    returns=r.FileInfo,
)
block(
    "downloadFile",
    "GET",
    FILE,
    s.OneFile,
    "Downloads a client's file: answers filename, contentType, size and the bytes base64 "
    "in content. With ?stream=1 on the URL, answers the raw bytes instead.",
    result=file_as_json,
    streamable=True,
    returns=r.DownloadedFile,
)
block(
    "deleteFile",
    "DELETE",
    FILE,
    s.OneFile,
    "Deletes a client's file.",
    returns=r.DeletedFile,
)
