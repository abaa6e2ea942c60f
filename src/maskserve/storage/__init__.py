"""Model sources: a local directory, ``file://``, the Hugging Face Hub (``hf://`` or a bare id), ``s3://``,
``gs://`` and ``http(s)://`` archives, resolved to a local directory (docs/storage.md)."""

from maskserve.storage.atomic import DestinationExists
from maskserve.storage.hub import HubRef, parse_hub_ref
from maskserve.storage.resolve import download_cache_root, download_model, resolve_model_source
from maskserve.storage.s3 import S3Options
from maskserve.storage.safety import Limits
from maskserve.storage.uri import ModelURI, parse_model_uri

__all__ = [
    "DestinationExists",
    "HubRef",
    "Limits",
    "ModelURI",
    "S3Options",
    "download_cache_root",
    "download_model",
    "parse_hub_ref",
    "parse_model_uri",
    "resolve_model_source",
]
