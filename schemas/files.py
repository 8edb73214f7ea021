"""Arguments of the file blocks."""

from marshmallow import ValidationError, validates_schema

from schemas.base import ClientScoped
from schemas.fields import Base64, File, Id

SOURCES = {"file_content": "fileContent", "file": "file"}


class OneFile(ClientScoped):
    filename = Id("The file's name.", required=True, example="firmware.bin")


class UploadFile(OneFile):
    one_of = (*ClientScoped.one_of, (("file_content",), ("file",)))

    file_content = Base64(
        "The file's bytes, base64-encoded (a data:<type>;base64, URL is read too). Give this "
        "or file, not both.",
        data_key="fileContent",
        into="file",
    )
    file = File(
        "An http(s) URL the connector downloads the file from, or a multipart part named "
        "file. Give this or fileContent, not both.",
        into="file",
    )

    @validates_schema
    def check_one_source(self, data, **kwargs):
        given = [SOURCES[name] for name in SOURCES if name in data]
        if len(given) > 1:
            raise ValidationError("Give only one of fileContent and file.", field_name="file")
        if not given:
            raise ValidationError(
                "Give the file: fileContent (base64), file (a URL), or a multipart part "
                "named file.",
                field_name="file",
            )
