"""One router per protocol."""
