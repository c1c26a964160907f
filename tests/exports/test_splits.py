"""Patient-grouped splits (annotations/splits.py): no patient on two sides, ever; seeded and
deterministic; the parameters are checked."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotations.splits import (
    EXTERNAL,
    ExternalSplit,
    KFoldSplit,
    LeaveOnePatientOut,
    NoSplit,
    PatientLeakError,
    RatioSplit,
    SplitError,
    SplitItem,
    SplitScheme,
    SplitSchemeError,
    allocate,
    check_patient_grouped,
    patients_on_several_sides,
    scheme_from_json,
    scheme_to_json,
    split_items,
)


def _items(patients: int, frames_per_patient: int = 4, labels: tuple[str, ...] = ("healthy", "tumour")):
    items = []
    for patient in range(patients):
        for frame in range(frames_per_patient):
            label = labels[(patient + (frame == 0)) % len(labels)]
            site = "tongue" if patient % 3 == 0 else "larynx"
            items.append(SplitItem(group=f"P-{patient:03d}", label=label, attributes={"site": site}))
    return items


def _sides_by_patient(items: list[SplitItem], assignments: list[str]) -> dict[str, set[str]]:
    sides: dict[str, set[str]] = defaultdict(set)
    for item, side in zip(items, assignments, strict=True):
        sides[item.group].add(side)
    return sides


ALL_SCHEMES: list[SplitScheme] = [
    NoSplit(),
    RatioSplit(seed=3),
    RatioSplit(train=0.5, val=0.0, test=0.5, seed=1, stratify=False),
    KFoldSplit(k=3, seed=7),
    KFoldSplit(k=2, seed=7, stratify=False),
    LeaveOnePatientOut(),
    ExternalSplit(field="site", values=("tongue",), val=0.25, seed=2),
]

item_lists = st.lists(
    st.builds(
        SplitItem,
        group=st.sampled_from([f"P-{index}" for index in range(12)]),
        label=st.one_of(st.none(), st.sampled_from(["a", "b", "c"])),
        attributes=st.fixed_dictionaries({"site": st.sampled_from(["x", "y", "z"])}),
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=60, deadline=None)
@given(items=item_lists, scheme_index=st.integers(0, len(ALL_SCHEMES) - 1), seed=st.integers(0, 1000))
def test_no_patient_is_on_two_sides_and_the_same_seed_gives_the_same_split(items, scheme_index, seed):
    scheme = ALL_SCHEMES[scheme_index]
    if hasattr(scheme, "seed"):
        scheme = type(scheme)(**{**scheme.__dict__, "seed": seed})
    patients = len({item.group for item in items})
    too_few = (
        scheme.k if isinstance(scheme, KFoldSplit) else 2 if isinstance(scheme, LeaveOnePatientOut) else 1
    )
    if patients < too_few:
        with pytest.raises(SplitError):
            split_items(items, scheme)
        return

    first = split_items(items, scheme)
    again = split_items(items, scheme)
    shuffled_order = list(range(len(items)))
    random.Random(seed).shuffle(shuffled_order)
    shuffled = split_items([items[index] for index in shuffled_order], scheme)

    assert patients_on_several_sides([item.group for item in items], first.assignments) == {}
    assert all(len(sides) == 1 for sides in _sides_by_patient(items, first.assignments).values())
    assert again.assignments == first.assignments
    # The order the items come in does not change anyone's side.
    assert [first.assignments[index] for index in shuffled_order] == shuffled.assignments


def test_ratio_split_follows_the_fractions_of_patients_and_stratifies_by_label():
    items = _items(40)

    result = split_items(items, RatioSplit(train=0.6, val=0.2, test=0.2, seed=11))

    patients = {
        side: {item.group for item, s in zip(items, result.assignments, strict=True) if s == side}
        for side in ("train", "val", "test")
    }
    assert {side: len(group) for side, group in patients.items()} == {"train": 24, "val": 8, "test": 8}
    assert result.stratified and result.notes == []
    # Each patient's label alternates with its number: every side holds both labels, half each.
    for side in ("val", "test"):
        labels = Counter(int(group[2:]) % 2 for group in patients[side])
        assert labels == {0: 4, 1: 4}


def test_another_seed_gives_another_ratio_split():
    items = _items(40)
    one = split_items(items, RatioSplit(seed=1)).assignments
    two = split_items(items, RatioSplit(seed=2)).assignments
    assert one != two


def test_ratio_split_that_cannot_stratify_says_so_and_still_groups_patients():
    # Three patients with three different labels: no class has two patients to stratify with.
    items = _items(3, labels=("a", "b", "c"))

    result = split_items(items, RatioSplit(train=0.34, val=0.33, test=0.33, seed=0))

    assert sorted(set(result.assignments)) == ["test", "train", "val"]
    assert not result.stratified
    assert result.notes and "not stratified" in result.notes[0]


def test_allocate_gives_every_side_a_patient_when_there_are_enough():
    assert allocate(10, (0.7, 0.15, 0.15)) == [7, 2, 1]
    assert allocate(3, (0.7, 0.15, 0.15)) == [1, 1, 1]
    assert allocate(2, (0.7, 0.15, 0.15)) == [2, 0, 0]
    assert allocate(5, (1.0, 0.0, 0.0)) == [5, 0, 0]
    assert sum(allocate(27, (0.8, 0.1, 0.1))) == 27


def test_kfold_holds_each_patient_out_in_exactly_one_fold():
    items = _items(10)

    result = split_items(items, KFoldSplit(k=5, seed=4))

    folds = _sides_by_patient(items, result.assignments)
    assert all(len(sides) == 1 for sides in folds.values())
    assert sorted(set(result.assignments)) == [f"fold_{index}" for index in range(5)]
    assert Counter(next(iter(sides)) for sides in folds.values()) == dict.fromkeys(
        (f"fold_{index}" for index in range(5)), 2
    )
    assert result.stratified


def test_kfold_with_more_folds_than_patients_is_refused():
    with pytest.raises(SplitError, match="needs at least 5 patients; there are 3"):
        split_items(_items(3), KFoldSplit(k=5))


def test_kfold_without_labels_groups_by_patient_only():
    items = [SplitItem(group=f"P-{index % 6}") for index in range(30)]

    result = split_items(items, KFoldSplit(k=3, seed=0))

    assert not result.stratified
    assert len(set(result.assignments)) == 3


def test_leave_one_patient_out_makes_one_fold_per_patient_in_pseudonym_order():
    items = _items(12, frames_per_patient=2)
    random.Random(0).shuffle(items)

    result = split_items(items, LeaveOnePatientOut())

    by_patient = {item.group: side for item, side in zip(items, result.assignments, strict=True)}
    assert by_patient == {f"P-{index:03d}": f"fold_{index:02d}" for index in range(12)}


def test_external_split_puts_whole_patients_of_the_external_site_aside():
    items = _items(12)
    # P-001 (larynx) also had one examination at the external site: it must go wholly external.
    items.append(SplitItem(group="P-001", label="healthy", attributes={"site": "tongue"}))

    result = split_items(items, ExternalSplit(field="site", values=("tongue",), val=0.25, seed=0))

    sides = _sides_by_patient(items, result.assignments)
    external = {group for group, found in sides.items() if found == {EXTERNAL}}
    assert external == {"P-000", "P-003", "P-006", "P-009", "P-001"}
    assert {next(iter(found)) for group, found in sides.items() if group not in external} == {"train", "val"}
    assert any("went wholly to the external set" in note for note in result.notes)


def test_check_patient_grouped_finds_a_leak():
    groups = ["P-1", "P-1", "P-2"]
    with pytest.raises(PatientLeakError, match="P-1 \\(test/train\\)"):
        check_patient_grouped(groups, ["train", "test", "train"])
    check_patient_grouped(groups, ["train", "train", "test"])


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"scheme": "random"}, "scheme", "unknown scheme"),
        ({"scheme": "ratio", "train": 0.5, "val": 0.1, "test": 0.1}, "train", "must be 1"),
        ({"scheme": "ratio", "train": 0, "val": 0.5, "test": 0.5}, "train", "cannot be empty"),
        ({"scheme": "ratio", "val": -0.1}, "val", "fraction"),
        ({"scheme": "ratio", "seed": "1"}, "seed", "whole number"),
        ({"scheme": "kfold", "k": 1}, "k", "from 2"),
        ({"scheme": "kfold", "k": True}, "k", "from 2"),
        ({"scheme": "kfold", "stratify": "yes"}, "stratify", "true or false"),
        ({"scheme": "external", "field": "hospital", "values": ["a"]}, "field", "one of"),
        ({"scheme": "external", "values": []}, "values", "non-empty"),
        ({"scheme": "lopo", "k": 3}, "k", "not a parameter"),
    ],
)
def test_bad_parameters_name_the_field(data, field, message):
    with pytest.raises(SplitSchemeError) as caught:
        scheme_from_json(data)
    assert message in caught.value.errors[field]


def test_parameters_round_trip_with_every_default_written_out():
    assert scheme_to_json(scheme_from_json({"scheme": "ratio"})) == {
        "scheme": "ratio", "train": 0.7, "val": 0.15, "test": 0.15, "seed": 0, "stratify": True,
    }  # fmt: skip
    external = scheme_from_json({"scheme": "external", "values": [" b", "a", "b"]})
    assert scheme_to_json(external)["values"] == ["a", "b"]
    for scheme in ALL_SCHEMES:
        assert scheme_from_json(scheme_to_json(scheme)) == scheme
