"""Schemas of the JSON bodies, for the OpenAPI document. The task parameters are their one declaration
(maskserve.params); the rest describes the wire format, which the protocol modules parse with messages
clearer than generic validation."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from maskserve.params import FillMaskParams, ScoreParams


class ErrorBody(BaseModel):
    error: str = Field(description="what was wrong and how to fix it")
    estimated_time: float | None = Field(None, description="seconds until the model is loaded (503 only)")


class OpenFillMaskParams(FillMaskParams):
    """The fill-mask parameters as V1 and V2 take them: other keys are accepted (KServe's extensions, the
    binary data extension's), where the HF API refuses them."""

    model_config = ConfigDict(extra="allow")


class HFOptions(BaseModel):
    use_cache: bool | None = None
    wait_for_model: bool | None = None


class HFRequestBody(BaseModel):
    inputs: str | list[str] = Field(description="text(s) containing the model's mask token")
    parameters: FillMaskParams | None = None
    options: HFOptions | None = None


class HFPrediction(BaseModel):
    sequence: str
    score: float
    token: int
    token_str: str
    tokens: list[int] | None = Field(None, description="every piece of a word answer (word options only)")


class ScoreRequestBody(BaseModel):
    inputs: str | list[str] = Field(description="text(s) to score, whole (no mask token)")
    parameters: ScoreParams | None = None
    options: HFOptions | None = None


class TokenLogprob(BaseModel):
    token: int
    token_str: str
    logprob: float = Field(description="natural log-probability of the token in its place")
    start: int = Field(description="first character of the token in the input")
    end: int = Field(description="one past its last character")


class WordLogprob(BaseModel):
    word: str
    logprob: float = Field(description="the sum of its tokens' log-probabilities")
    start: int
    end: int


class SentenceScoreBody(BaseModel):
    score: float = Field(description="pseudo-log-likelihood: the sum of the scored tokens' log-probabilities")
    num_tokens: int = Field(description="tokens scored")
    pseudo_perplexity: float = Field(description="exp(-score / num_tokens)")
    tokens: list[TokenLogprob] | None = Field(None, description="with parameters.tokens")
    words: list[WordLogprob] | None = Field(None, description="with parameters.words")


# A string input is answered with one object, a list of inputs with a list.
ScoreResponseBody = SentenceScoreBody | list[SentenceScoreBody]


class JointHypothesis(BaseModel):
    """One hypothesis of "decoding": "joint": a token for every mask, scored together."""

    sequence: str
    score: float
    tokens: list[int]
    token_strs: list[str]


# One input with one mask -> a list of candidates; several masks -> a list per mask; several inputs -> a list
# per input of either. A joint decoding answers each input with one list of hypotheses.
HFResponseBody = (
    list[HFPrediction]
    | list[list[HFPrediction]]
    | list[list[list[HFPrediction]]]
    | list[JointHypothesis]
    | list[list[JointHypothesis]]
)


class V1PredictRequest(BaseModel):
    instances: list[str] | None = Field(None, description="texts, each with a mask token")
    inputs: list[str] | None = Field(None, description="alternative to instances (read first, as KServe)")
    parameters: OpenFillMaskParams | None = None


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


class RepositoryModel(BaseModel):
    name: str
    version: str = ""
    state: Literal["UNAVAILABLE", "LOADING", "READY", "UNLOADING"]
    reason: str = ""


class RepositoryAction(BaseModel):
    name: str
    load: bool | None = None
    unload: bool | None = None
