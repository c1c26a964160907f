"""Reads of records, always scoped to the projects a user belongs to."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import CharField, OuterRef, QuerySet, Subquery, Value

from records.models import Examination, Frame, Patient, Project, ProjectMembership, Video

# CLEAR uses Django's default user model (settings has no AUTH_USER_MODEL).
AnyUser = User | AnonymousUser


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


def projects_with_role(user: AnyUser) -> QuerySet[Project]:
    """The user's projects, each annotated with `role`: the user's role there ("admin" for a
    superuser, as in role_in_project)."""
    projects = projects_visible_to(user)
    if getattr(user, "is_superuser", False):
        return projects.annotate(role=Value(ProjectMembership.Role.ADMIN.value, output_field=CharField()))
    if not user.is_authenticated:
        return projects.annotate(role=Value(None, output_field=CharField()))
    role = ProjectMembership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
    return projects.annotate(role=Subquery(role, output_field=CharField()))


def project_members(project: Project) -> QuerySet[ProjectMembership]:
    return ProjectMembership.objects.filter(project=project).select_related("user").order_by("user__username")


REFERENCE_VIEWER_ROLES = frozenset(
    {
        ProjectMembership.Role.COORDINATOR,
        ProjectMembership.Role.ADMIN,
        ProjectMembership.Role.DATA_MANAGER,
        ProjectMembership.Role.REVIEWER,
    }
)


def projects_showing_reference_to(user: AnyUser) -> set[int]:
    """Ids of the projects whose reference standard (histopathology) the user may see: those where
    they curate data (coordinator, admin, data manager, reviewer; a superuser everywhere), minus
    those where they read in an open reader study. Readers never see it: it would bias their
    labels, and a study reader must be blind to it (the API, not the page, enforces that)."""
    if not user.is_authenticated:
        return set()
    from studies.models import ReaderStudy, StudyReader

    if getattr(user, "is_superuser", False):
        curated = set(Project.objects.values_list("pk", flat=True))
    else:
        curated = set(
            ProjectMembership.objects.filter(user=user, role__in=REFERENCE_VIEWER_ROLES).values_list(
                "project_id", flat=True
            )
        )
    reading = StudyReader.objects.filter(user_id=user.pk, study__status=ReaderStudy.Status.OPEN)
    return curated - set(reading.values_list("study__project_id", flat=True))
