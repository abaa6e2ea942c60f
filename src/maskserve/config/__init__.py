"""The settings: :class:`ModelSettings` (which model, and how it is loaded, run and batched: all a batch job
needs) and :class:`Settings` (a server's: those plus transport, access, limits and process). Command-line
flags and ``MASKSERVE_*`` environment variables both map onto them; each field names the flag group it
belongs to, from which every command builds its flags (no flag is declared twice)."""

from maskserve.config.fields import GROUPS, MODEL_GROUPS, parse_bytes
from maskserve.config.model import ModelSettings
from maskserve.config.server import Settings

__all__ = ["GROUPS", "MODEL_GROUPS", "ModelSettings", "Settings", "parse_bytes"]
