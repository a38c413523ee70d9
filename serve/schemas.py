"""Request and response bodies of the gateway (pydantic; unknown fields and NaN/inf are refused)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: A finite JSON number (no NaN, no ±inf, no numeric strings, no booleans).
Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Probability = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1.0)]
RequestId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")]


class DecideRequest(BaseModel):
    """One input: scores (``probe_prob`` and ``dv_score``) or a ``text`` for the probes to score.

    ``request_id`` makes the call idempotent: a repeated id gets the decision already logged.
    ``text`` may accompany the scores, for an HTTP expert to read when the input is delegated.
    """

    model_config = ConfigDict(extra="forbid")

    request_id: RequestId | None = None
    probe_prob: Probability | None = None
    dv_score: Finite | None = None
    text: Annotated[str, Field(min_length=1, strict=True)] | None = None
    group: Annotated[str, Field(min_length=1, max_length=128, strict=True)] | None = None

    @model_validator(mode="after")
    def _scores_or_text(self) -> DecideRequest:
        has_p, has_d = self.probe_prob is not None, self.dv_score is not None
        if has_p != has_d:
            missing = "dv_score" if has_p else "probe_prob"
            raise ValueError(f"{missing} is required with the other score (send both, or a text)")
        if not has_p and self.text is None:
            raise ValueError("give probe_prob and dv_score, or text")
        return self


class BatchRequest(BaseModel):
    """Many inputs in one request (at most the gateway's batch limit)."""

    model_config = ConfigDict(extra="forbid")

    items: Annotated[list[DecideRequest], Field(min_length=1)]


Outcome = Literal[
    "probe",
    "expert",
    "deferred",
    "suppressed",
    "expert_timeout_probe",
    "expert_error_probe",
    "expert_timeout_503",
    "expert_error_503",
]


class Decision(BaseModel):
    """The gateway's answer for one input (logged before it is sent)."""

    request_id: str
    verdict: Literal["unsafe", "safe"] | None = Field(
        description="None when the decision is deferred to the caller's expert or failed (503)."
    )
    probability: float | None
    delegated: bool = Field(description="The certified rule's decision: dv_score > threshold.")
    expert_called: bool
    outcome: Outcome
    probe_prob: float | None
    dv_score: float
    threshold: float | str = Field(description='The certified τ ("inf" = never delegate).')
    certificate_sha256: str
    expert: str | None
    logged_at: str
    replayed: bool = Field(description="True when the request id was already logged.")


class BatchResponse(BaseModel):
    decisions: list[Decision]
