"""Work queue paged by cursor (`after`, each frame's `cursor`, `next_cursor`), and its counts from the
maintained per-examination frame counts."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from records.models import Frame, ProjectMembership
from tests.annotations import test_work_queue
from tests.annotations.test_work_queue import annotate, frame_ids, ok, queue
from tests.factories import ExaminationFactory, FrameFactory, LabelTaskFactory
from tests.records.import_support import gray_frame, run_import, save

pytestmark = pytest.mark.django_db
Role = ProjectMembership.Role
scene = test_work_queue.scene  # the same fixture: two patients, videos, loose frames, two readers


def walk(scene: dict[str, Any], limit: int, **params: Any) -> list[int]:
    """Every frame of the queue, page after page, each page after the last one's next_cursor."""
    seen: list[int] = []
    after: str | None = None
    for _ in range(50):
        body = ok(queue(scene, limit=limit, **params, **({} if after is None else {"after": after})))
        seen += [frame["id"] for frame in body["frames"]]
        if body["frames"]:
            assert body["next_cursor"] == body["frames"][-1]["cursor"]
        if len(body["frames"]) < limit:
            assert body["next_cursor"] == after if not body["frames"] else True
            return seen
        after = body["next_cursor"]
    raise AssertionError("the walk did not end")


@pytest.mark.parametrize("limit", [1, 2, 4])
def test_paging_by_cursor_walks_the_whole_queue_in_order_once(scene, limit):
    exam_a1 = scene["exams"]["a1"]
    video_x = exam_a1.videos.get(name="x.mp4")
    # Ties and gaps the key must order: a frame of a video without index (after the indexed ones),
    # and a second loose frame (after the first by id).
    no_index = FrameFactory.create(video=video_x)
    second_loose = FrameFactory.create(examination=exam_a1)
    order = scene["order"]
    expected = [*order[:2], no_index.pk, order[2], order[3], second_loose.pk, *order[4:]]

    assert walk(scene, limit) == expected
    assert frame_ids(queue(scene, limit=20)) == expected


def test_after_a_frame_lists_the_unannotated_frames_after_it_and_counts_the_skipped_ones(scene):
    order = scene["order"]
    cursors = {frame["id"]: frame["cursor"] for frame in ok(queue(scene))["frames"]}
    annotate(order[3], task=scene["task"], annotator=scene["reader"])  # done: not listed
    annotate(order[4], task=scene["task"], annotator=scene["other"])  # someone else's: still listed

    body = ok(queue(scene, after=cursors[order[1]]))

    # order[0] and order[1] were skipped: not listed after the cursor, but still remaining.
    assert [frame["id"] for frame in body["frames"]] == [order[2], order[4], order[5]]
    assert (body["remaining"], body["total"]) == (5, 6)
    assert body["next_cursor"] == cursors[order[5]]
    assert ok(queue(scene, after=cursors[order[5]]))["frames"] == []


def test_an_empty_page_gives_back_its_cursor_and_new_frames_appear_after_it(scene):
    last = ok(queue(scene))["frames"][-1]

    empty = ok(queue(scene, after=last["cursor"]))
    later = ExaminationFactory.create(patient__project=scene["project"], patient__pseudonym="P-c")
    new = FrameFactory.create(examination=later)
    again = ok(queue(scene, after=empty["next_cursor"]))

    assert (empty["frames"], empty["next_cursor"]) == ([], last["cursor"])
    assert [frame["id"] for frame in again["frames"]] == [new.pk]
    assert ok(queue(scene, limit=1))["next_cursor"] is not None
    assert ok(queue(scene, examination=999_999))["next_cursor"] is None


def test_a_cursor_outlives_its_frame(scene):
    order = scene["order"]
    cursor = {frame["id"]: frame["cursor"] for frame in ok(queue(scene))["frames"]}[order[2]]
    Frame.objects.filter(pk=order[2]).delete()

    assert frame_ids(queue(scene, after=cursor)) == order[3:]


def test_cursor_paging_keeps_the_filters(scene):
    exam_a1 = scene["exams"]["a1"]
    order = scene["order"]
    good = scene["quality"].choices.get(value="good")
    for frame_id in (order[0], order[2], order[5]):
        annotate(frame_id, task=scene["quality"], annotator=scene["other"], value=good.value)
    first = ok(queue(scene, examination=exam_a1.pk, limit=2))
    rated = ok(queue(scene, quality_task=scene["quality"].pk, quality_value="good", limit=1))

    by_exam = ok(queue(scene, examination=exam_a1.pk, after=first["next_cursor"]))
    by_site = ok(queue(scene, anatomical_site="larynx", after=first["next_cursor"]))
    by_quality = ok(
        queue(scene, quality_task=scene["quality"].pk, quality_value="good", after=rated["next_cursor"])
    )

    assert [frame["id"] for frame in by_exam["frames"]] == order[2:4]
    assert (by_exam["remaining"], by_exam["total"]) == (4, 4)
    assert [frame["id"] for frame in by_site["frames"]] == [order[5]]
    assert (by_site["remaining"], by_site["total"]) == (1, 1)
    assert [frame["id"] for frame in by_quality["frames"]] == [order[2], order[5]]
    assert (by_quality["remaining"], by_quality["total"]) == (3, 3)


@pytest.mark.parametrize(
    "after",
    [
        "not a cursor!",
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        base64.urlsafe_b64encode(json.dumps(["P", "E", None, None, 7]).encode()).decode(),  # 5 of 6
        base64.urlsafe_b64encode(json.dumps(["P", "E", None, None, "7", None]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps(["P", "E", "v", True, 7, 3]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps(["P", "E", None, None, 7, 3]).encode()).decode(),
    ],
)
def test_a_cursor_the_queue_did_not_give_out_is_refused(scene, after):
    response = queue(scene, after=after)

    assert response.status_code == 400
    assert "after" in response.json()


def test_an_empty_cursor_is_the_start_of_the_queue(scene):
    assert frame_ids(queue(scene, after="")) == scene["order"]


def test_query_count_with_a_cursor_does_not_grow_with_the_frames(scene, django_assert_max_num_queries):
    after = ok(queue(scene, limit=2))["next_cursor"]  # a/E1/x #5, the last of its video
    extra = ExaminationFactory.create(patient__project=scene["project"], patient__pseudonym="P-z")
    FrameFactory.create_batch(30, examination=extra)

    # Session and user (2), the task (1), the counts (1), the page in the cursor's video (1: short,
    # the video ends) and in the whole order (1).
    with django_assert_max_num_queries(6):
        body = ok(queue(scene, limit=100, after=after))

    assert len(body["frames"]) == 34
    with CaptureQueriesContext(connection) as captured:
        ok(queue(scene, limit=100, after=after))
    # No count over the project's frames: the counts read the examinations' maintained counts.
    counted = [query["sql"] for query in captured.captured_queries if "SUM(" in query["sql"]]
    assert len(counted) == 1 and "records_examinationframecount" in counted[0]
    assert 'COUNT("records_frame"' not in " ".join(query["sql"] for query in captured.captured_queries)


def test_counts_follow_imports_deletes_and_only_the_callers_own_annotations(
    scene, tmp_path: Path, media_root: Path
):
    task, reader = scene["task"], scene["reader"]
    other_task = LabelTaskFactory.create(project=scene["project"], key="other")
    annotate(scene["order"][0], task=task, annotator=reader)
    annotate(scene["order"][1], task=other_task, annotator=reader)  # another task: not done here
    annotate(scene["order"][2], task=task, annotator=scene["other"])  # another reader: not done
    assert (ok(queue(scene))["remaining"], ok(queue(scene))["total"]) == (5, 6)

    folder = tmp_path / "import"
    for number in range(3):
        save(gray_frame(number), folder / "P-new" / "seq1" / f"f{number}.png")
    run_import(scene["project"], [folder])
    imported = ok(queue(scene))
    assert (imported["remaining"], imported["total"]) == (8, 9)

    done = Frame.objects.get(pk=scene["order"][0])
    done.delete()  # with the reader's annotation of it
    Frame.objects.filter(pk=scene["order"][5]).delete()
    scene["exams"]["b"].delete()  # order[5] was its only frame: gone already
    after = ok(queue(scene))
    assert (after["remaining"], after["total"]) == (7, 7)
    assert (after["remaining"], after["total"]) == (len(after["frames"]), Frame.objects.count())


def test_remaining_never_goes_below_zero_and_other_projects_do_not_count(scene, media_root: Path):
    elsewhere = ExaminationFactory.create()
    FrameFactory.create_batch(4, examination=elsewhere)
    for frame_id in scene["order"]:
        annotate(frame_id, task=scene["task"], annotator=scene["reader"])

    body = ok(queue(scene))

    assert (body["remaining"], body["total"], body["frames"]) == (0, 6, [])


def test_a_page_within_the_cursors_video_takes_one_query_from_the_video_index(
    scene, django_assert_max_num_queries
):
    video_x = scene["exams"]["a1"].videos.get(name="x.mp4")
    more = [FrameFactory.create(video=video_x, index_in_video=index) for index in (9, 7, 6, 8)]
    annotate(more[2].pk, task=scene["task"], annotator=scene["reader"])  # #6: done, skipped over
    first = ok(queue(scene, limit=2))  # x #2, x #5
    queue(scene, limit=1)  # warm the session

    with django_assert_max_num_queries(5) as captured:
        body = ok(queue(scene, limit=3, after=first["next_cursor"]))

    assert [frame["id"] for frame in body["frames"]] == [more[1].pk, more[3].pk, more[0].pk]  # #7, #8, #9
    page_queries = [
        query["sql"] for query in captured.captured_queries if 'FROM "records_frame"' in query["sql"]
    ]
    assert len(page_queries) == 1 and "f.video_id = " in page_queries[0]
    # One more than the video holds: the rest of the order follows, as without the shortcut.
    longer = ok(queue(scene, limit=4, after=first["next_cursor"]))
    assert [frame["id"] for frame in longer["frames"]] == [
        more[1].pk,
        more[3].pk,
        more[0].pk,
        scene["order"][2],
    ]
