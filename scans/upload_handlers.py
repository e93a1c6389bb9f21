"""An upload handler that hashes and checks an upload while Django streams it to disk.

Django's default handlers keep small files in memory and write large ones to a temporary file; `scan_create`
then had to read the upload again to hash it and look for markup, and write it once more to storage. With
`ScanUploadHandler` the request body is read once: each chunk goes to a temporary file and through an
`UploadDigester` (SHA-256, size, first bytes, markup) as it arrives, and `scan_create` moves that file into
storage with a rename. The checks themselves are unchanged: `scan_create` still decides the kind from the
content and refuses what it refused before.

It is installed per view (see `ScanListApi.initialize_request`), before anything reads the body.
"""

from __future__ import annotations

import tempfile
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers

from scans.uploads import UploadDigest, UploadDigester


class DigestedUploadedFile(TemporaryUploadedFile):
    """An upload on disk under a neutral temporary name, with the `upload_digest` of its bytes."""

    upload_digest: UploadDigest | None

    def __init__(
        self,
        name: str,
        content_type: str | None,
        size: int,
        charset: str | None,
        content_type_extra: dict[str, Any] | None = None,
    ) -> None:
        # Django's own class puts the client's extension in the temporary name; nothing of it is needed here.
        file = tempfile.NamedTemporaryFile(prefix="unmask-upload-", dir=settings.FILE_UPLOAD_TEMP_DIR)  # noqa: SIM115
        UploadedFile.__init__(self, file, name, content_type, size, charset, content_type_extra)
        self.upload_digest = None


class ScanUploadHandler(FileUploadHandler):
    """Writes every uploaded file to a temporary file while computing its `UploadDigest` in the same pass."""

    file: DigestedUploadedFile

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.file = DigestedUploadedFile(self.file_name, self.content_type, 0, self.charset, self.content_type_extra)
        self.digester = UploadDigester()
        # This handler stores the file: no other handler needs to see it.
        raise StopFutureHandlers()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.digester.update(raw_data)
        self.file.write(raw_data)

    def file_complete(self, file_size: int) -> DigestedUploadedFile:
        self.file.flush()
        self.file.seek(0)
        self.file.size = file_size
        self.file.upload_digest = self.digester.digest()
        return self.file

    def upload_interrupted(self) -> None:
        if hasattr(self, "file"):
            # Closing a NamedTemporaryFile deletes it.
            self.file.close()
