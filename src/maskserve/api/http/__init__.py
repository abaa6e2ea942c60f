"""The HTTP transport: KServe V1, Open Inference Protocol REST and the Hugging Face Inference API."""
