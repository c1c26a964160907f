"""Query filters of the records API (django-filter).

Foreign keys are filtered by plain integer ids, not ModelChoiceFilter: a choice filter answers 400
for an id outside its queryset, which would tell a caller whether another project's row exists.
An id the caller cannot see simply matches nothing, because every queryset is already scoped.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField, RangeField
from django_filters.widgets import DateRangeWidget
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from records.models import Examination, Frame, Patient, Video


@extend_schema_field(OpenApiTypes.INT)
class IdFilter(filters.NumberFilter):
    """Filter on a primary key given as an integer."""


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, turned into UTC here. Python reads offsets up to +-23:59, PostgreSQL
    only up to +-15:59: passed on as given, "...+21:00" made the query fail (a 500). In UTC any
    valid instant is one PostgreSQL reads; one outside Python's years after the shift is a 400."""

    def to_python(self, value: Any) -> datetime.datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(datetime.UTC)
        except OverflowError as exc:
            raise ValidationError("The date-time is out of range.", code="invalid") from exc


class UtcIsoDateTimeRangeField(RangeField):
    widget = DateRangeWidget

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__((UtcIsoDateTimeField(), UtcIsoDateTimeField()), *args, **kwargs)


class IsoDateTimeRangeFilter(filters.IsoDateTimeFromToRangeFilter):
    """`<name>_after` / `<name>_before` ISO 8601 date-times, compared in UTC."""

    field_class = UtcIsoDateTimeRangeField


class PatientFilter(filters.FilterSet):
    project = IdFilter(field_name="project_id")
    cohort = filters.CharFilter()
    pseudonym = filters.CharFilter()
    created = IsoDateTimeRangeFilter(field_name="created_at")

    class Meta:
        model = Patient
        fields = ["project", "cohort", "pseudonym", "created"]


class ExaminationFilter(filters.FilterSet):
    project = IdFilter(field_name="patient__project_id")
    patient = IdFilter(field_name="patient_id")
    anatomical_site = filters.CharFilter()
    device = filters.CharFilter()
    reference_label = filters.CharFilter()
    date = filters.DateFromToRangeFilter()
    created = IsoDateTimeRangeFilter(field_name="created_at")

    class Meta:
        model = Examination
        fields = ["project", "patient", "anatomical_site", "device", "reference_label", "date", "created"]


class VideoFilter(filters.FilterSet):
    project = IdFilter(field_name="examination__patient__project_id")
    patient = IdFilter(field_name="examination__patient_id")
    examination = IdFilter(field_name="examination_id")
    kind = filters.ChoiceFilter(choices=Video.Kind.choices)
    anatomical_site = filters.CharFilter(field_name="examination__anatomical_site")
    device = filters.CharFilter(field_name="examination__device")
    created = IsoDateTimeRangeFilter(field_name="created_at")

    class Meta:
        model = Video
        fields = ["project", "patient", "examination", "kind", "anatomical_site", "device", "created"]


class FrameFilter(filters.FilterSet):
    project = IdFilter(field_name="examination__patient__project_id")
    patient = IdFilter(field_name="examination__patient_id")
    examination = IdFilter(field_name="examination_id")
    video = IdFilter(field_name="video_id")
    anatomical_site = filters.CharFilter(field_name="examination__anatomical_site")
    device = filters.CharFilter(field_name="examination__device")
    reference_label = filters.CharFilter(
        method="filter_reference_label",
        help_text="The frame's own reference label, or its examination's when the frame has none.",
    )
    mode = filters.CharFilter(help_text="Pillow mode, e.g. L (grayscale) or RGB.")
    has_crop = filters.BooleanFilter(
        field_name="crop_box", lookup_expr="isnull", exclude=True, help_text="Whether a crop box was found."
    )
    sha256 = filters.CharFilter()
    created = IsoDateTimeRangeFilter(field_name="created_at")

    class Meta:
        model = Frame
        fields = [
            "project",
            "patient",
            "examination",
            "video",
            "anatomical_site",
            "device",
            "reference_label",
            "mode",
            "has_crop",
            "sha256",
            "created",
        ]

    def filter_reference_label(self, queryset: QuerySet[Frame], name: str, value: str) -> QuerySet[Frame]:
        return queryset.filter(
            Q(reference_label=value) | Q(reference_label="", examination__reference_label=value)
        )
