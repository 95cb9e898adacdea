"""`Folder`: the directory beside a Lance dataset that holds its codec files, on a local disk
or on an object store (`s3://`, `gs://`, `az://`, ...).

Local folders are plain directories written with `qetvec.io.write_bytes_atomic`. Object-store
folders go through Lance's own object store (`lance.file.LanceFileSession`, from the `pylance`
package of the `distributed` extra) with the same `storage_options` a Lance dataset or a
LanceDB connection takes (`aws_endpoint`, `aws_access_key_id`, `allow_http`, ...), so one
dictionary configures the data and the codec files alike. An object store's PUT is atomic:
readers see the whole object or none.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from qetvec._optional import require
from qetvec.io import write_bytes_atomic

LANCE_SUFFIX = ".lance"
FOLDER_SUFFIX = ".qetvec"


class Folder:
    """Files under `uri` (a local path, `file://` URI or object-store URI)."""

    def __init__(self, uri: str, storage_options: dict[str, str] | None = None):
        self.uri = str(uri).rstrip("/")
        self.storage_options = storage_options
        path = self.uri.removeprefix("file://")
        self.local = None if "://" in path else Path(path)

    @classmethod
    def beside(cls, dataset_uri: str, storage_options: dict[str, str] | None = None) -> "Folder":
        """`<parent>/<name>.qetvec` for the dataset `<parent>/<name>.lance` (or `<uri>.qetvec`
        for a dataset URI without the `.lance` suffix): where `create_table` keeps a LanceDB
        table's codec."""
        uri = str(dataset_uri).rstrip("/")
        return cls(uri.removesuffix(LANCE_SUFFIX) + FOLDER_SUFFIX, storage_options)

    def location(self, name: str) -> str:
        """The file's path or URI, for messages."""
        return str(self.local / name) if self.local is not None else f"{self.uri}/{name}"

    def read(self, name: str) -> bytes:
        """The file's bytes; FileNotFoundError if there is none."""
        if self.local is not None:
            return (self.local / name).read_bytes()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                self._session().download_file(name, f"{tmp}/{name}")
            except OSError as err:
                if not self._session().contains(name):
                    raise FileNotFoundError(self.location(name)) from err
                raise
            return Path(tmp, name).read_bytes()

    def exists(self, name: str) -> bool:
        return (self.local / name).exists() if self.local is not None else self._session().contains(name)

    def write(self, name: str, data: bytes) -> None:
        """Write the file whole: readers see the old file, or none, or all of `data`."""
        if self.local is not None:
            self.local.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(self.local / name, data)
            return
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, name).write_bytes(data)
            self._session().upload_file(f"{tmp}/{name}", name)

    def delete(self, name: str) -> None:
        """Remove the file if it exists (and a local folder left empty)."""
        if self.local is None:
            if self._session().contains(name):
                self._session().delete_file(name)
            return
        (self.local / name).unlink(missing_ok=True)
        try:
            self.local.rmdir()
        except OSError:  # other files remain
            pass

    def _session(self):  # lance.file.LanceFileSession
        lance_file = require("lance.file", "distributed")
        return lance_file.LanceFileSession(self.uri, storage_options=self.storage_options)
