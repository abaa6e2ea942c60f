"""Pure translation between wire formats and the engine's values; no web framework here."""
