"""factory-boy factories for the records and jobs apps."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User

from records.models import Examination, Frame, Patient, Project, ProjectMembership, Video


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests")


class ProjectFactory(factory.django.DjangoModelFactory[Project]):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")


class MembershipFactory(factory.django.DjangoModelFactory[ProjectMembership]):
    class Meta:
        model = ProjectMembership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = ProjectMembership.Role.READER


class PatientFactory(factory.django.DjangoModelFactory[Patient]):
    class Meta:
        model = Patient

    project = factory.SubFactory(ProjectFactory)
    pseudonym = factory.Sequence(lambda n: f"P-{n:016x}")


class ExaminationFactory(factory.django.DjangoModelFactory[Examination]):
    class Meta:
        model = Examination

    patient = factory.SubFactory(PatientFactory)
    code = factory.Sequence(lambda n: f"E{n}")
    device = "pCLE"
    anatomical_site = "colon"


def _tiny_image_bytes(seed: int, fmt: str) -> bytes:
    """A distinct 8x6 image per seed, so that every frame has its own sha256."""
    import io

    from PIL import Image

    image = Image.new("L", (8, 6), color=seed % 256)
    image.putpixel((0, 0), (seed // 256) % 256)
    image.putpixel((1, 0), (seed // 65536) % 256)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


class VideoFactory(factory.django.DjangoModelFactory[Video]):
    class Meta:
        model = Video

    examination = factory.SubFactory(ExaminationFactory)
    name = factory.Sequence(lambda n: f"video-{n}.mp4")
    kind = Video.Kind.VIDEO_FILE
    frame_rate = 25.0
    frame_count = 100


class FrameFactory(factory.django.DjangoModelFactory[Frame]):
    """A frame with a real tiny PNG and JPEG preview written under MEDIA_ROOT (content-addressed)."""

    class Meta:
        model = Frame

    video = None
    examination = factory.Maybe(
        "video",
        yes_declaration=factory.SelfAttribute("video.examination"),
        no_declaration=factory.SubFactory(ExaminationFactory),
    )
    seed = factory.Sequence(lambda n: n + 1)
    source_name = factory.Sequence(lambda n: f"frame_{n:05d}.png")
    width = 8
    height = 6
    mode = "L"
    preview_width = 8
    preview_height = 6

    @classmethod
    def _create(cls, model_class: type[Frame], *args: object, **kwargs: object) -> Frame:
        import hashlib

        from records import media

        seed = int(kwargs.pop("seed"))  # type: ignore[call-overload]
        png = _tiny_image_bytes(seed, "PNG")
        sha256 = hashlib.sha256(png).hexdigest()
        kwargs.setdefault("sha256", sha256)
        kwargs.setdefault("file", media.content_path("frames", sha256, ".png"))
        kwargs.setdefault("preview_file", media.content_path("previews", sha256, ".jpg"))
        kwargs.setdefault("file_bytes", len(png))
        media.save_bytes(str(kwargs["file"]), png)
        media.save_bytes(str(kwargs["preview_file"]), _tiny_image_bytes(seed, "JPEG"))
        return super()._create(model_class, *args, **kwargs)


# --- annotations ----------------------------------------------------------------------------------

from annotations.models import Adjudication, Annotation, LabelChoice, LabelTask  # noqa: E402


class LabelTaskFactory(factory.django.DjangoModelFactory[LabelTask]):
    class Meta:
        model = LabelTask

    project = factory.SubFactory(ProjectFactory)
    key = factory.Sequence(lambda n: f"task_{n}")
    name = factory.Sequence(lambda n: f"Task {n}")
    kind = LabelTask.Kind.NOMINAL


class LabelChoiceFactory(factory.django.DjangoModelFactory[LabelChoice]):
    class Meta:
        model = LabelChoice

    task = factory.SubFactory(LabelTaskFactory)
    value = factory.Sequence(lambda n: f"choice_{n}")
    label = factory.Sequence(lambda n: f"Choice {n}")
    color = "#336699"
    hotkey = ""


class AnnotationFactory(factory.django.DjangoModelFactory[Annotation]):
    class Meta:
        model = Annotation

    task = factory.SubFactory(LabelTaskFactory)
    frame = factory.LazyAttribute(lambda o: FrameFactory.create(examination__patient__project=o.task.project))
    annotator = factory.SubFactory(UserFactory)
    value = "good"
    confidence = 3


class AdjudicationFactory(factory.django.DjangoModelFactory[Adjudication]):
    """An adjudication written directly (no based_on unless given); the service fills it for real."""

    class Meta:
        model = Adjudication

    task = factory.SubFactory(LabelTaskFactory)
    frame = factory.LazyAttribute(lambda o: FrameFactory.create(examination__patient__project=o.task.project))
    adjudicated_by = factory.SubFactory(UserFactory)
    value = "good"
    based_on = factory.LazyFunction(list)


# --- inference ------------------------------------------------------------------------------------


class ImageFrameFactory(FrameFactory):
    """A frame with a real grayscale PNG of `width` x `height` (a seeded random texture), for
    scoring with a model; FrameFactory's 8x6 image stays the default elsewhere."""

    width = 48
    height = 40

    @classmethod
    def _create(cls, model_class: type[Frame], *args: object, **kwargs: object) -> Frame:
        import hashlib
        import io

        import numpy as np
        from PIL import Image

        from records import media

        seed = int(kwargs["seed"])  # type: ignore[call-overload]
        width, height = int(kwargs["width"]), int(kwargs["height"])  # type: ignore[call-overload]
        pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
        png = buffer.getvalue()
        sha256 = hashlib.sha256(png).hexdigest()
        kwargs.setdefault("sha256", sha256)
        kwargs.setdefault("file", media.content_path("frames", sha256, ".png"))
        kwargs.setdefault("file_bytes", len(png))
        media.save_bytes(str(kwargs["file"]), png)
        return super()._create(model_class, *args, **kwargs)
