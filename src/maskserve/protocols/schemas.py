"""Schemas of the JSON bodies, for the OpenAPI document. Parsing stays in the protocol modules, which give
clearer messages than generic validation; these models only describe the wire format."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    error: str = Field(description="what was wrong and how to fix it")
    estimated_time: float | None = Field(None, description="seconds until the model is loaded (503 only)")


class FillMaskParameters(BaseModel):
    top_k: int | None = Field(None, ge=1, description="candidates per mask (default 5)")
    targets: str | list[str] | None = Field(None, description="restrict candidates to these words")


class HFOptions(BaseModel):
    use_cache: bool | None = None
    wait_for_model: bool | None = None


class HFRequestBody(BaseModel):
    inputs: str | list[str] = Field(description="text(s) containing the model's mask token")
    parameters: FillMaskParameters | None = None
    options: HFOptions | None = None


class HFPrediction(BaseModel):
    sequence: str
    score: float
    token: int
    token_str: str


# One input with one mask -> a list of candidates; several masks -> a list per mask; several inputs -> a list
# per input of either.
HFResponseBody = list[HFPrediction] | list[list[HFPrediction]] | list[list[list[HFPrediction]]]


class V1PredictRequest(BaseModel):
    instances: list[str] | None = Field(None, description="texts, each with a mask token")
    inputs: list[str] | None = Field(None, description="alternative to instances (read first, as KServe)")
    parameters: FillMaskParameters | None = None


class V1PredictResponse(BaseModel):
    predictions: list[Any] = Field(
        description=(
            "per input: the top-1 text; with --return_probabilities / --return_logits an object token id -> "
            "number (a list of them for several masks); with parameters, the pipeline's candidates"
        )
    )


class ModelList(BaseModel):
    models: list[str]


class ModelReady(BaseModel):
    name: str
    ready: bool


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool
