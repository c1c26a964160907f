"""Reads of records, always scoped to the projects a user belongs to."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

from records.models import Examination, Frame, Patient, Project, ProjectMembership, Video

AnyUser = AbstractBaseUser | AnonymousUser


def projects_visible_to(user: AnyUser) -> QuerySet[Project]:
    """Projects the user is a member of; a superuser sees every project."""
    if not user.is_authenticated:
        return Project.objects.none()
    if getattr(user, "is_superuser", False):
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def role_in_project(user: AnyUser, project: Project) -> str | None:
    if not user.is_authenticated:
        return None
    if getattr(user, "is_superuser", False):
        return ProjectMembership.Role.ADMIN
    membership = ProjectMembership.objects.filter(project=project, user=user).only("role").first()
    return membership.role if membership else None


def patients_visible_to(user: AnyUser) -> QuerySet[Patient]:
    return Patient.objects.filter(project__in=projects_visible_to(user))


def examinations_visible_to(user: AnyUser) -> QuerySet[Examination]:
    return Examination.objects.filter(patient__project__in=projects_visible_to(user))


def videos_visible_to(user: AnyUser) -> QuerySet[Video]:
    return Video.objects.filter(examination__patient__project__in=projects_visible_to(user))


def frames_visible_to(user: AnyUser) -> QuerySet[Frame]:
    return Frame.objects.filter(examination__patient__project__in=projects_visible_to(user))
