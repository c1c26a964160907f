"""REST API of reader-study results: the statistics of a question (JSON, with the generated methods
paragraph) and the CSV export of every reading. Coordinators and admins of the study's project only:
a reader of the study gets 403, anyone who cannot see the study 404. Allowed while the study is open
(interim results); the JSON says whether it is locked."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.http import Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from records.apis import IgnoreAcceptNegotiation, require_role
from studies.models import ReaderStudy
from studies.results import (
    DEFAULT_RESAMPLES,
    MAX_RESAMPLES,
    MIN_RESAMPLES,
    ResultsInputError,
    parse_parameters,
    reading_rows,
    study_results,
)
from studies.selectors import STUDY_MANAGER_ROLES, studies_visible_to


def managed_study(request: Request, pk: int, action: str) -> ReaderStudy:
    study = studies_visible_to(request.user).filter(pk=pk).select_related("project").first()
    if study is None:
        raise Http404("No such study.")
    require_role(request.user, study.project, STUDY_MANAGER_ROLES, action)
    return study


class StudyResultsView(APIView):
    @extend_schema(
        operation_id="studies_results",
        parameters=[
            OpenApiParameter("question", str, description="Task key of the question (default: the first)."),
            OpenApiParameter(
                "positive",
                str,
                description=(
                    "Choice meaning 'condition present' (default: the last choice of a two-choice task; "
                    "a task with more choices is analysed as multi-class without it)."
                ),
            ),
            OpenApiParameter(
                "resamples",
                int,
                description=f"Patient bootstrap resamples, {MIN_RESAMPLES} to {MAX_RESAMPLES} "
                f"(default {DEFAULT_RESAMPLES}).",
            ),
            OpenApiParameter("seed", int, description="Bootstrap seed (default: the study's seed)."),
        ],
        responses={
            200: OpenApiTypes.OBJECT,
            400: OpenApiResponse(description="An unknown question or choice, or resamples out of range."),
            403: OpenApiResponse(description="Not a coordinator or admin of the study's project."),
        },
        description=(
            "Results of one question (coordinators and admins; interim while the study is open): per "
            "condition per-reader and pooled sensitivity, specificity and accuracy (Wilson; pooled also a "
            "patient bootstrap), AUC (DeLong) and ROC points from answer + confidence, Fleiss' kappa, "
            "Krippendorff's alpha, pairwise Cohen's kappa, agreement with the AI and reading time; per AI "
            "comparison the Fleiss' kappa difference (patient bootstrap) and Obuchowski-Rockette MRMC of "
            "AUC, sensitivity and specificity; automation bias of sequential arms; a methods paragraph. "
            "Training cases are excluded. See studies.results for the definitions."
        ),
    )
    def get(self, request: Request, pk: int) -> Response:
        study = managed_study(request, pk, "see study results")
        try:
            question, positive, resamples, seed = parse_parameters(
                study,
                question_key=request.query_params.get("question"),
                positive=request.query_params.get("positive"),
                resamples=request.query_params.get("resamples"),
                seed=request.query_params.get("seed"),
            )
        except ResultsInputError as error:
            raise ValidationError({error.field: [str(error)]}) from None
        return Response(
            study_results(study, question=question, positive=positive, resamples=resamples, seed=seed)
        )


class _Echo:
    """A file-like object whose write returns the text, so csv.writer yields row by row."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: Iterator[list[str]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(row)


class StudyReadingsCsvView(APIView):
    content_negotiation_class = IgnoreAcceptNegotiation

    @extend_schema(
        operation_id="studies_readings_csv",
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            403: OpenApiResponse(description="Not a coordinator or admin of the study's project."),
        },
        description=(
            "Every reading of the study as CSV, streamed (coordinators and admins): reader, session, arm, "
            "period, case position, case, frame, examination, patient pseudonym, question, phase, answer, "
            "confidence, times, AI exposure, the AI's answer, training flag and reference value. Cells a "
            "spreadsheet would run as a formula are prefixed with '."
        ),
    )
    def get(self, request: Request, pk: int) -> StreamingHttpResponse:
        study = managed_study(request, pk, "export study readings")
        response = StreamingHttpResponse(
            _csv_lines(reading_rows(study)), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="study-{study.pk}-readings.csv"'
        return response
