"""The Open Inference Protocol (KServe V2) over gRPC: ``inference.GRPCInferenceService`` and gRPC health.

``start_grpc_server(engine, host=..., port=...)`` starts it in the running event loop. The stubs in
``_generated`` come from ``grpc_predict_v2.proto`` through ``scripts/gen_grpc.sh``; do not edit them.
"""

from maskserve.api.grpc.service import SERVICE_NAME, STATUS_CODES, grpc_code, start_grpc_server

__all__ = ["SERVICE_NAME", "STATUS_CODES", "grpc_code", "start_grpc_server"]
