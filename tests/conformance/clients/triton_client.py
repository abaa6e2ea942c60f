"""tritonclient (``http`` or ``grpc``, the first argument) against a running maskserve.

Run as ``python triton_client.py http|grpc < spec.json``; see ``_common`` for the spec and the printed
JSON. Never import this into the pytest process (tritonclient.grpc's protobuf symbols, see ``_common``).
"""

from __future__ import annotations

import sys
from typing import Any

from _common import Case, read_spec, run_cases, stdout_for_json, tensor

TOPK_OUTPUTS = ("token_str", "score", "token", "sequence")


def http_cases(spec: dict[str, Any]) -> dict[str, Case]:
    import numpy as np
    import tritonclient.http as httpclient

    model: str = spec["model"]
    texts: list[str] = spec["texts"]
    two_mask_texts: list[str] = spec["two_mask_texts"]
    top_k: int = spec["top_k"]
    client = httpclient.InferenceServerClient(
        url=spec["http_hostport"], connection_timeout=30.0, network_timeout=30.0
    )

    def text_input(items: list[str], *, binary: bool) -> Any:
        tensor_in = httpclient.InferInput("input-0", [len(items)], "BYTES")
        tensor_in.set_data_from_numpy(
            np.array([t.encode("utf-8") for t in items], dtype=np.object_), binary_data=binary
        )
        return tensor_in

    def infer(
        items: list[str],
        *,
        binary_in: bool,
        outputs: tuple[str, ...] | None,
        binary_out: bool = False,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        requested = (
            None
            if outputs is None
            else [httpclient.InferRequestedOutput(n, binary_data=binary_out) for n in outputs]
        )
        result = client.infer(
            model, [text_input(items, binary=binary_in)], outputs=requested, parameters=params
        )
        response = result.get_response()
        decoded: dict[str, Any] = {}
        for output in response["outputs"]:
            name = output["name"]
            binary = "binary_data_size" in (output.get("parameters") or {})
            decoded[name] = tensor(
                name, output["datatype"], output["shape"], result.as_numpy(name), binary=binary
            )
        return {"model_name": response["model_name"], "outputs": decoded}

    topk_params = {"top_k": top_k}
    return {
        "server_live": client.is_server_live,
        "server_ready": client.is_server_ready,
        "model_ready": lambda: client.is_model_ready(model),
        "server_metadata": client.get_server_metadata,
        "model_metadata": lambda: client.get_model_metadata(model),
        "infer_json": lambda: infer(texts, binary_in=False, outputs=("output-0",)),
        # No outputs named: the client adds "binary_data_output": true and decodes either answer.
        "infer_default_outputs": lambda: infer(texts, binary_in=False, outputs=None),
        "infer_binary_input": lambda: infer(texts, binary_in=True, outputs=("output-0",)),
        "infer_binary_output": lambda: infer(texts, binary_in=False, outputs=("output-0",), binary_out=True),
        "infer_binary": lambda: infer(texts, binary_in=True, outputs=("output-0",), binary_out=True),
        "top_k_json": lambda: infer(texts, binary_in=False, outputs=TOPK_OUTPUTS, params=topk_params),
        "top_k_two_masks_json": lambda: infer(
            two_mask_texts, binary_in=False, outputs=TOPK_OUTPUTS, params=topk_params
        ),
        "top_k_binary": lambda: infer(
            texts, binary_in=True, outputs=TOPK_OUTPUTS, binary_out=True, params=topk_params
        ),
    }


def grpc_cases(spec: dict[str, Any]) -> dict[str, Case]:
    import numpy as np
    import tritonclient.grpc as grpcclient

    model: str = spec["model"]
    texts: list[str] = spec["texts"]
    two_mask_texts: list[str] = spec["two_mask_texts"]
    top_k: int = spec["top_k"]
    client = grpcclient.InferenceServerClient(url=spec["grpc"])

    def infer(
        items: list[str], *, outputs: tuple[str, ...] | None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        # tritonclient.grpc always sends tensors in raw_input_contents.
        tensor_in = grpcclient.InferInput("input-0", [len(items)], "BYTES")
        tensor_in.set_data_from_numpy(np.array([t.encode("utf-8") for t in items], dtype=np.object_))
        requested = None if outputs is None else [grpcclient.InferRequestedOutput(n) for n in outputs]
        result = client.infer(model, [tensor_in], outputs=requested, parameters=params, client_timeout=30.0)
        response = result.get_response()
        binary = len(response.raw_output_contents) > 0
        decoded = {
            o.name: tensor(o.name, o.datatype, list(o.shape), result.as_numpy(o.name), binary=binary)
            for o in response.outputs
        }
        return {"model_name": response.model_name, "outputs": decoded}

    topk_params = {"top_k": top_k}
    return {
        "server_live": lambda: client.is_server_live(client_timeout=30.0),
        "server_ready": lambda: client.is_server_ready(client_timeout=30.0),
        "model_ready": lambda: client.is_model_ready(model, client_timeout=30.0),
        "server_metadata": lambda: client.get_server_metadata(as_json=True, client_timeout=30.0),
        "model_metadata": lambda: client.get_model_metadata(model, as_json=True, client_timeout=30.0),
        "infer": lambda: infer(texts, outputs=("output-0",)),
        "infer_default_outputs": lambda: infer(texts, outputs=None),
        "top_k": lambda: infer(texts, outputs=TOPK_OUTPUTS, params=topk_params),
        "top_k_two_masks": lambda: infer(two_mask_texts, outputs=TOPK_OUTPUTS, params=topk_params),
    }


def main() -> None:
    flavour = sys.argv[1]
    with stdout_for_json() as out:
        spec = read_spec()
        cases = http_cases(spec) if flavour == "http" else grpc_cases(spec)
        from importlib.metadata import version

        run_cases(out, cases, {"tritonclient": version("tritonclient"), "flavour": flavour})


if __name__ == "__main__":
    main()
