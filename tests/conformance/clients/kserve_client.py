"""The kserve SDK (0.21) against a running maskserve: ``InferenceRESTClient`` for V1 and V2 REST,
``InferenceGRPCClient`` for the Open Inference Protocol over gRPC.

Run as ``python kserve_client.py < spec.json``; see ``_common`` for the spec and the printed JSON. Never
import this into the pytest process (protobuf duplicate symbols, see ``_common``).
"""

from __future__ import annotations

from typing import Any

from _common import Case, read_spec, run_cases, stdout_for_json, tensor

TOPK_OUTPUTS = ("token_str", "score", "token", "sequence")


def main() -> None:  # noqa: PLR0915 (one flat list of small cases, imported after the redirect)
    with stdout_for_json() as out:
        spec = read_spec()
        # Imported with stdout redirected: kserve's log handlers bind sys.stdout at import.
        import grpc
        import numpy as np
        from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
        from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
        from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
        from kserve.protocol.infer_type import RequestedOutput

        base: str = spec["http"]
        target: str = spec["grpc"]
        model: str = spec["model"]
        texts: list[str] = spec["texts"]
        top_k: int = spec["top_k"]

        def rest(protocol: str) -> InferenceRESTClient:
            return InferenceRESTClient(RESTConfig(protocol=protocol, timeout=30, retries=0))

        def bytes_array(items: list[str]) -> Any:
            return np.array([t.encode("utf-8") for t in items], dtype=np.object_)

        def decoded(response: Any) -> dict[str, Any]:
            """An InferResponse as the SDK decodes it: ``as_numpy`` reshapes to the declared shape."""
            return {
                "model_name": response.model_name,
                "outputs": {
                    o.name: tensor(o.name, o.datatype, o.shape, o.as_numpy()) for o in response.outputs
                },
            }

        def request(infer_input: Any, *, topk: bool = False) -> Any:
            return InferRequest(
                model_name=model,
                infer_inputs=[infer_input],
                request_outputs=[RequestedOutput(n) for n in TOPK_OUTPUTS] if topk else None,
                parameters={"top_k": top_k} if topk else None,
            )

        # --- V1 REST ---

        async def v1_server_live() -> bool:
            async with rest("v1") as client:
                return bool(await client.is_server_live(base))

        async def v1_model_ready() -> bool:
            async with rest("v1") as client:
                return bool(await client.is_model_ready(base, model))

        async def v1_predict() -> Any:
            async with rest("v1") as client:
                return await client.infer(base, {"instances": texts}, model_name=model)

        async def v1_predict_top_k() -> Any:
            async with rest("v1") as client:
                body = {"instances": texts, "parameters": {"top_k": top_k}}
                return await client.infer(base, body, model_name=model)

        # --- V2 REST ---

        async def v2_server_live() -> bool:
            async with rest("v2") as client:
                return bool(await client.is_server_live(base))

        async def v2_server_ready() -> bool:
            async with rest("v2") as client:
                return bool(await client.is_server_ready(base))

        async def v2_model_ready() -> bool:
            async with rest("v2") as client:
                return bool(await client.is_model_ready(base, model))

        async def v2_infer(infer_input: Any, *, topk: bool = False) -> dict[str, Any]:
            headers: dict[str, str] = {}
            async with rest("v2") as client:
                response = await client.infer(
                    base, request(infer_input, topk=topk), model_name=model, response_headers=headers
                )
            result = decoded(response)
            result["binary_response"] = "inference-header-content-length" in {h.lower() for h in headers}
            return result

        async def v2_infer_list() -> dict[str, Any]:
            return await v2_infer(InferInput("input-0", [len(texts)], "BYTES", data=list(texts)))

        async def v2_infer_numpy_json() -> dict[str, Any]:
            # An ndarray in ``data``: the SDK sends it as a JSON tensor.
            return await v2_infer(InferInput("input-0", [len(texts)], "BYTES", data=bytes_array(texts)))

        async def v2_infer_binary() -> dict[str, Any]:
            # binary_data=True: the tensor travels after the JSON header (Inference-Header-Content-Length).
            infer_input = InferInput("input-0", [len(texts)], "BYTES")
            infer_input.set_data_from_numpy(bytes_array(texts), binary_data=True)
            return await v2_infer(infer_input)

        async def v2_infer_top_k() -> dict[str, Any]:
            return await v2_infer(InferInput("input-0", [len(texts)], "BYTES", data=list(texts)), topk=True)

        # --- gRPC ---

        def grpc_client() -> InferenceGRPCClient:
            return InferenceGRPCClient(url=target, timeout=30, retries=0)

        async def grpc_server_live() -> bool:
            async with grpc_client() as client:
                return bool(await client.is_server_live())

        async def grpc_server_ready() -> bool:
            async with grpc_client() as client:
                return bool(await client.is_server_ready())

        async def grpc_model_ready() -> bool:
            async with grpc_client() as client:
                return bool(await client.is_model_ready(model))

        # InferenceGRPCClient 0.21 has no metadata methods; the SDK's own generated stub calls them.
        async def grpc_server_metadata() -> dict[str, Any]:
            async with grpc.aio.insecure_channel(target) as channel:
                reply = await GRPCInferenceServiceStub(channel).ServerMetadata(
                    pb.ServerMetadataRequest(), timeout=30
                )
            return {"name": reply.name, "version": reply.version, "extensions": list(reply.extensions)}

        async def grpc_model_metadata() -> dict[str, Any]:
            async with grpc.aio.insecure_channel(target) as channel:
                reply = await GRPCInferenceServiceStub(channel).ModelMetadata(
                    pb.ModelMetadataRequest(name=model), timeout=30
                )

            def tensors(items: Any) -> list[dict[str, Any]]:
                return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in items]

            return {
                "name": reply.name,
                "platform": reply.platform,
                "inputs": tensors(reply.inputs),
                "outputs": tensors(reply.outputs),
            }

        async def grpc_infer(infer_input: Any, *, topk: bool = False) -> dict[str, Any]:
            async with grpc_client() as client:
                response = await client.infer(request(infer_input, topk=topk))
            return decoded(response)

        async def grpc_infer_typed() -> dict[str, Any]:
            # A list in ``data``: InferTensorContents.bytes_contents.
            return await grpc_infer(InferInput("input-0", [len(texts)], "BYTES", data=list(texts)))

        async def grpc_infer_raw() -> dict[str, Any]:
            # An ndarray in ``data``: raw_input_contents (length-prefixed BYTES), answered raw.
            return await grpc_infer(InferInput("input-0", [len(texts)], "BYTES", data=bytes_array(texts)))

        async def grpc_infer_top_k() -> dict[str, Any]:
            return await grpc_infer(InferInput("input-0", [len(texts)], "BYTES", data=list(texts)), topk=True)

        cases: dict[str, Case] = {
            "v1_server_live": v1_server_live,
            "v1_model_ready": v1_model_ready,
            "v1_predict": v1_predict,
            "v1_predict_top_k": v1_predict_top_k,
            "v2_server_live": v2_server_live,
            "v2_server_ready": v2_server_ready,
            "v2_model_ready": v2_model_ready,
            "v2_infer_list": v2_infer_list,
            "v2_infer_numpy_json": v2_infer_numpy_json,
            "v2_infer_binary": v2_infer_binary,
            "v2_infer_top_k": v2_infer_top_k,
            "grpc_server_live": grpc_server_live,
            "grpc_server_ready": grpc_server_ready,
            "grpc_model_ready": grpc_model_ready,
            "grpc_server_metadata": grpc_server_metadata,
            "grpc_model_metadata": grpc_model_metadata,
            "grpc_infer_typed": grpc_infer_typed,
            "grpc_infer_raw": grpc_infer_raw,
            "grpc_infer_top_k": grpc_infer_top_k,
        }
        from importlib.metadata import version

        run_cases(out, cases, {"kserve": version("kserve"), "grpcio": version("grpcio")})


if __name__ == "__main__":
    main()
