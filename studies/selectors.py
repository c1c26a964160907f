"""Reads of reader studies. Coordinators and admins of a project see its studies in full; a reader
sees only the open or locked studies they are assigned to, and only their own sessions, never the
cases' reference standard."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from records.models import ProjectMembership
from records.selectors import AnyUser
from studies.models import ReaderStudy, ReadingSession

Role = ProjectMembership.Role
STUDY_MANAGER_ROLES = frozenset({Role.COORDINATOR, Role.ADMIN})


def _managed_projects_filter(user: AnyUser, prefix: str = "") -> Q:
    if getattr(user, "is_superuser", False):
        return Q()
    return Q(
        **{
            f"{prefix}project__memberships__user": user,
            f"{prefix}project__memberships__role__in": STUDY_MANAGER_ROLES,
        }
    )


def studies_managed_by(user: AnyUser) -> QuerySet[ReaderStudy]:
    if not user.is_authenticated:
        return ReaderStudy.objects.none()
    return ReaderStudy.objects.filter(_managed_projects_filter(user)).distinct()


def studies_visible_to(user: AnyUser) -> QuerySet[ReaderStudy]:
    """Studies the user manages, plus the non-draft ones they read in (a superuser: every study)."""
    if not user.is_authenticated:
        return ReaderStudy.objects.none()
    if getattr(user, "is_superuser", False):
        # Not through _managed_projects_filter: its empty Q() would vanish from the OR below
        # (Q() | reading == reading) and leave a superuser only the studies they read in.
        return ReaderStudy.objects.all()
    reading = Q(readers__user=user) & ~Q(status=ReaderStudy.Status.DRAFT)
    return ReaderStudy.objects.filter(_managed_projects_filter(user) | reading).distinct()


def sessions_of_reader(user: AnyUser) -> QuerySet[ReadingSession]:
    """The user's own reading sessions in open or locked studies."""
    if not user.is_authenticated:
        return ReadingSession.objects.none()
    return ReadingSession.objects.filter(reader__user=user).exclude(
        reader__study__status=ReaderStudy.Status.DRAFT
    )
