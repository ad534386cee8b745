"""What the API reads and writes to run a round (``api.schemas`` names them the same way): re-grades and
result versions, a submission's files, copies, known solutions, notes and decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import SubmissionPublic


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")

Decision = Literal["advance", "hold", "reject"]


class ResultVersionPublic(BaseModel):
    version: int
    current: bool = Field(description="The result the submission has now (the others were replaced by re-grades).")
    challenge_version: str
    status: Literal["graded", "error"] | str
    score: float | None
    max_score: float
    passed: bool
    graded_at: datetime
    superseded_at: datetime | None
    superseded_by: str | None = Field(description="Who asked for the re-grade that replaced it.")


class Regraded(BaseModel):
    submission: SubmissionPublic
    next_version: int = Field(description="The version the coming result will be.")


class CellOutputPublic(BaseModel):
    kind: Literal["stream", "result", "error", "image"]
    mime: str = Field(description="What the output was; HTML, JavaScript and SVG outputs are given as text.")
    text: str
    image_base64: str | None = Field(description="A PNG or JPEG whose bytes were checked, as base64.")
    truncated: bool


class CellPublic(BaseModel):
    number: int
    kind: Literal["code", "markdown", "raw"]
    source: str
    execution_count: int | None
    outputs: list[CellOutputPublic]


class SourceFilePublic(BaseModel):
    path: str
    size_bytes: int
    language: Literal["python", "notebook", "text", "binary"]
    text: str | None = Field(description="The file's text (None for a binary file); a notebook's raw JSON.")
    truncated: bool
    cells: list[CellPublic] | None = Field(description="A notebook's cells, with their outputs.")
    note: str = Field(description="Why something is not shown in full.")


class SubmissionFiles(BaseModel):
    submission_id: int
    filename: str
    kind: str
    sha256: str
    size_bytes: int
    entry: str | None = Field(description="The file that is graded.")
    files: list[SourceFilePublic]
    note: str


class SimilarityPublic(BaseModel):
    """How much of one submission's code another one (or a known public solution) holds too."""

    submission_id: int
    candidate: str
    other_submission_id: int | None
    other_candidate: str | None
    known_solution_id: int | None
    known_solution: str | None = Field(description="The known solution's label.")
    shared: int = Field(description="Fingerprints (runs of code) the two share.")
    share: float = Field(description="The share of the smaller one's code that the other holds too, 0 to 1.")
    identical: bool = Field(description="Byte for byte the same upload.")
    same_code: bool = Field(description="The same code once names, layout and comments are set aside.")
    flagged: bool = Field(description="Worth a look: likely one was copied from the other (or both from one source).")


class ReferenceSimilarity(BaseModel):
    submission_id: int
    candidate: str
    shared: int
    share: float = Field(description="The share of the submission's code found in the challenge's reference solution.")
    flagged: bool


class ChallengeSimilarity(BaseModel):
    challenge_id: str
    submissions: int = Field(description="Submissions compared.")
    pairs: list[SimilarityPublic] = Field(description=(
        "Every flagged pair, then the 100 closest pairs that are not flagged (sharing at least a fifth of the "
        "smaller one's code), most similar first."))
    reference: list[ReferenceSimilarity] = Field(
        description="Submissions resembling the challenge's own reference solution (flagged ones only).")


class MatchedRegion(BaseModel):
    number: int
    file: str = Field(description="The file (or notebook cell) in this submission.")
    first_line: int
    last_line: int
    other_file: str
    other_first_line: int
    other_last_line: int
    fingerprints: int


class PairDetail(BaseModel):
    similarity: SimilarityPublic
    regions: list[MatchedRegion]


class KnownSolutionPublic(BaseModel):
    id: int
    challenge_id: str
    label: str
    source_url: str
    filename: str
    sha256: str
    size_bytes: int
    fingerprints: int
    created_at: datetime


class NoteCreate(_In):
    body: Annotated[str, Field(min_length=1, max_length=10_000, description="The note, as plain text.")]


class NotePublic(BaseModel):
    id: int
    submission_id: int
    invitation_id: int
    body: str
    author: str
    created_at: datetime


class DecisionCreate(_In):
    decision: Decision
    reason: Annotated[str, Field(max_length=10_000, description="Why, as plain text (optional).")] = ""


class DecisionPublic(BaseModel):
    id: int
    invitation_id: int
    decision: Decision
    reason: str
    author: str
    created_at: datetime
