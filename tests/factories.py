"""factory-boy factories for the records and jobs apps."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from records.models import Examination, Patient, Project, ProjectMembership


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProjectMembership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = ProjectMembership.Role.READER


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    project = factory.SubFactory(ProjectFactory)
    pseudonym = factory.Sequence(lambda n: f"P-{n:016x}")


class ExaminationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Examination

    patient = factory.SubFactory(PatientFactory)
    code = factory.Sequence(lambda n: f"E{n}")
    device = "pCLE"
    anatomical_site = "colon"
