"""Real clients (huggingface_hub, the kserve SDK, tritonclient, @huggingface/inference) against a running
``maskserve serve``, their answers compared with the in-process engine's on the same inputs."""

import pytest

# The comparisons live in harness.py; rewrite its asserts so that failures show both sides.
pytest.register_assert_rewrite("conformance.harness")
