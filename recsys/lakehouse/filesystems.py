"""The one way from a path or URI to a pyarrow filesystem, for every file the Python side reads or writes.

Spark names object stores by their Hadoop connector (``s3a://bucket/...``, the scheme the deploy scripts and
cluster configs use), pyarrow by the store (``s3://``), and ``pyarrow.fs.FileSystem.from_uri`` refuses the
connector names. Here ``s3a://``/``s3n://`` map to pyarrow's S3 filesystem, configured from the same
``AWS_*`` settings delta-rs reads (the environment, overridden by ``storage.storage_options``), so one URI
works for Spark, delta-rs and pyarrow alike. Schemes pyarrow has no filesystem for (``abfss://``,
``viewfs://``, ...) go through fsspec when a package for them is installed (``adlfs``, ...).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa
from pyarrow import fs as pafs

_S3_SCHEMES = frozenset({"s3", "s3a", "s3n"})
_TRUE = frozenset({"1", "true", "yes"})


class UnsupportedFilesystemError(ValueError):
    """No filesystem is installed for a URI's scheme."""


def resolve_filesystem(
    uri: str, storage_options: Mapping[str, str] | None = None
) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, path inside it)`` for a local path, ``file://`` URI or object-store URI.

    Args:
        uri: e.g. ``./lakehouse``, ``/data/raw``, ``s3a://bucket/raw/ml-25m``, ``gs://bucket/lakehouse``.
        storage_options: delta-rs style options (``AWS_REGION``, ``AWS_ENDPOINT_URL``, ``AWS_ALLOW_HTTP``,
            ...); they override the environment variables of the same names.

    URIs are read percent-encoded, as Spark (``inputFiles``, ``_metadata.file_path``) and the Delta log give
    them (``a%20b`` is the key ``a b``; a raw space reads as itself); paths without a scheme are taken as they
    are.

    Raises:
        UnsupportedFilesystemError: neither pyarrow nor an installed fsspec package handles the scheme.
    """
    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    scheme = uri.split("://", 1)[0].lower()
    if scheme in _S3_SCHEMES:
        return _s3(uri, storage_options or {})
    try:
        return pafs.FileSystem.from_uri(uri)
    except pa.ArrowInvalid as exc:
        if "Unrecognized filesystem type" not in str(exc):  # a scheme pyarrow knows, a URI it refuses
            raise
        return _fsspec(uri, scheme, exc)


_SECRET_WORDS = ("SECRET", "TOKEN", "PASSWORD", "ACCESS_KEY", "ACCOUNT_KEY", "SAS")


def without_secrets(storage_options: Mapping[str, str]) -> dict[str, str]:
    """``storage_options`` minus credentials, for copies that may be persisted (e.g. Ray's run config):
    whoever reads with them uses its environment's credentials."""
    return {k: v for k, v in storage_options.items() if not any(w in k.upper() for w in _SECRET_WORDS)}


def resolve_paths(
    uris: Sequence[str], storage_options: Mapping[str, str] | None = None
) -> tuple[pafs.FileSystem, list[str]]:
    """One filesystem for URIs of one store (same scheme and bucket/host) and each URI's path inside it.

    The filesystem is built once (an S3 filesystem costs a client, and a region lookup without
    ``AWS_REGION``); the paths follow the same rules as :func:`resolve_filesystem`'s.

    Raises:
        ValueError: the URIs name more than one store.
    """
    if not uris:
        raise ValueError("resolve_paths needs at least one URI")
    stores = {_store(u) for u in uris}
    if len(stores) > 1:
        raise ValueError(f"URIs of one store expected, got {sorted(stores)}")
    filesystem, _ = resolve_filesystem(uris[0], storage_options)
    scheme = stores.pop()[0]
    if scheme in _S3_SCHEMES or scheme in ("gs", "gcs"):
        paths = [_bucket_key(u) for u in uris]
    elif scheme == "":  # local paths and file:// URIs: no client to build
        paths = [resolve_filesystem(u)[1] for u in uris]
    elif isinstance(filesystem, pafs.PyFileSystem):  # fsspec: its own path rule, on a cached instance
        paths = [resolve_filesystem(u, storage_options)[1] for u in uris]
    else:  # hdfs:// and pyarrow's other stores: the URI's path
        paths = [unquote(urlsplit(u).path) for u in uris]
    return filesystem, paths


def _store(uri: str) -> tuple[str, str]:
    """(scheme, bucket or host); every local path and file:// URI is one store, ("", "")."""
    if "://" not in uri or uri.lower().startswith("file://"):
        return "", ""
    parts = urlsplit(uri)
    return parts.scheme.lower(), parts.netloc


def _option(options: Mapping[str, str], *names: str) -> str | None:
    """The first of ``names`` set in ``options``, else the first set in the environment."""
    upper = {k.upper(): v for k, v in options.items()}
    for source in (upper, os.environ):
        for name in names:
            if value := source.get(name):
                return str(value)
    return None


def _credentials(options: Mapping[str, str]) -> dict[str, Any]:
    """Key id, secret and session token from one source (options, else environment), never mixed."""
    upper = {k.upper(): v for k, v in options.items()}
    for source in (upper, os.environ):
        if source.get("AWS_ACCESS_KEY_ID") and source.get("AWS_SECRET_ACCESS_KEY"):
            return {"access_key": str(source["AWS_ACCESS_KEY_ID"]), "secret_key": str(source["AWS_SECRET_ACCESS_KEY"]),
                    "session_token": str(source.get("AWS_SESSION_TOKEN") or "") or None}
    return {}  # the AWS SDK's default chain (profile, instance or pod role)


def _bucket_key(uri: str) -> str:
    """``bucket/key`` of an object-store URI (its path percent-decoded), as pyarrow's S3 and GCS name it."""
    parts = urlsplit(uri)
    return f"{parts.netloc}/{unquote(parts.path).lstrip('/')}".rstrip("/")


def _s3(uri: str, options: Mapping[str, str]) -> tuple[pafs.FileSystem, str]:
    bucket = urlsplit(uri).netloc
    if not bucket:
        raise UnsupportedFilesystemError(f"{uri}: an S3 URI needs a bucket (s3a://bucket/path)")
    kwargs: dict[str, Any] = {}
    endpoint = _option(options, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")
    if endpoint:
        split = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs["endpoint_override"] = split.netloc
        allow_http = (_option(options, "AWS_ALLOW_HTTP") or "").lower() in _TRUE
        kwargs["scheme"] = "http" if split.scheme == "http" or allow_http else "https"
    region = _option(options, "AWS_REGION", "AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    elif not endpoint:  # what from_uri does: ask S3 where the bucket lives
        kwargs["region"] = pafs.resolve_s3_region(bucket)
    kwargs.update(_credentials(options))
    return pafs.S3FileSystem(**kwargs), _bucket_key(uri)


def _fsspec(uri: str, scheme: str, cause: Exception) -> tuple[pafs.FileSystem, str]:
    try:
        import fsspec

        filesystem, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise UnsupportedFilesystemError(
            f"{uri}: no filesystem for {scheme}:// (pyarrow: {cause}; fsspec: {exc}); install the fsspec "
            f"package for it (e.g. adlfs for abfs/abfss) or use an s3a/s3/gs/hdfs/file URI"
        ) from exc
    return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem)), str(path)
