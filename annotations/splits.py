"""Patient-grouped dataset splits: no patient is ever on two sides of a split.

Pure numpy + scikit-learn, no Django: dataset exports (`exports/`) and training share it. Frames of
one patient are strongly correlated (same tissue, same probe, often consecutive video frames), so a
frame-level random split leaks and inflates every metric; every scheme here assigns whole patients.

Schemes (`scheme_from_json` reads them from an export's parameters):

- `none`: every item in `all`.
- `ratio`: `train` / `val` / `test` by the given fractions of patients, stratified by each
  patient's most frequent label where scikit-learn's `train_test_split` can (every class needs two
  patients and each side at least one patient per class), plain shuffled otherwise (reported).
- `kfold`: `fold_0` ... `fold_{k-1}`, each item in the fold where it is held out: scikit-learn's
  `StratifiedGroupKFold` with labels, `GroupKFold` without.
- `lopo`: leave one patient out, one fold per patient (`LeaveOneGroupOut`), folds in pseudonym order.
- `external`: items whose attribute (site, device, cohort or examination) is one of `values` go to
  `external`; the others are split into `train` / `val` by `val`. A patient with items on both sides
  goes wholly to `external` (reported): external validation must not have seen the patient.

Every scheme is seeded and deterministic: the same items, scheme and seed give the same assignment
whatever order the items come in (groups are sorted before anything random happens).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut, StratifiedGroupKFold, train_test_split

ALL = "all"
TRAIN = "train"
VAL = "val"
TEST = "test"
EXTERNAL = "external"
EXTERNAL_FIELDS = ("site", "device", "cohort", "examination")
MAX_FOLDS = 100
MAX_SEED = 2**32 - 1


class SplitError(ValueError):
    """The scheme cannot split these items (e.g. more folds than patients); the message says why."""


class SplitSchemeError(ValueError):
    """The scheme's parameters are wrong; `errors` maps parameter names to messages."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = dict(errors)


class PatientLeakError(AssertionError):
    """A patient has items on two sides of a split (a bug, never a user error)."""


@dataclass(frozen=True)
class NoSplit:
    name = "none"


@dataclass(frozen=True)
class RatioSplit:
    train: float = 0.7
    val: float = 0.15
    test: float = 0.15
    seed: int = 0
    stratify: bool = True
    name = "ratio"


@dataclass(frozen=True)
class KFoldSplit:
    k: int = 5
    seed: int = 0
    stratify: bool = True
    name = "kfold"


@dataclass(frozen=True)
class LeaveOnePatientOut:
    name = "lopo"


@dataclass(frozen=True)
class ExternalSplit:
    field: str = "site"
    values: tuple[str, ...] = ()
    val: float = 0.0
    seed: int = 0
    stratify: bool = True
    name = "external"


SplitScheme = NoSplit | RatioSplit | KFoldSplit | LeaveOnePatientOut | ExternalSplit


@dataclass(frozen=True, slots=True)
class SplitItem:
    """One item to split (a frame, or one annotator's label of a frame): its patient, its label
    (None: none; stratification then ignores it) and the attributes an external split may use."""

    group: str
    label: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass
class SplitResult:
    assignments: list[str]
    stratified: bool
    notes: list[str] = field(default_factory=list)

    def sides(self) -> list[str]:
        return sorted(set(self.assignments))


# --- Parameters ---------------------------------------------------------------------------------------


def scheme_from_json(data: Mapping[str, Any]) -> SplitScheme:
    """The scheme described by `{"scheme": name, ...parameters}`; SplitSchemeError names what is wrong."""
    name = data.get("scheme", "none")
    readers: dict[str, Callable[[Mapping[str, Any]], SplitScheme]] = {
        "none": _no_split,
        "ratio": _ratio_split,
        "kfold": _kfold_split,
        "lopo": _lopo_split,
        "external": _external_split,
    }
    if name not in readers:
        raise SplitSchemeError({"scheme": f"unknown scheme {name!r}; one of {', '.join(readers)}"})
    known = {"scheme", *_PARAMETERS[name]}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SplitSchemeError({key: f"not a parameter of the {name} scheme" for key in unknown})
    return readers[name](data)


_PARAMETERS: dict[str, tuple[str, ...]] = {
    "none": (),
    "ratio": ("train", "val", "test", "seed", "stratify"),
    "kfold": ("k", "seed", "stratify"),
    "lopo": (),
    "external": ("field", "values", "val", "seed", "stratify"),
}


def scheme_to_json(scheme: SplitScheme) -> dict[str, Any]:
    """The canonical parameters (every default written out), as stored and hashed with an export."""
    if isinstance(scheme, RatioSplit):
        return {
            "scheme": scheme.name,
            "train": scheme.train,
            "val": scheme.val,
            "test": scheme.test,
            "seed": scheme.seed,
            "stratify": scheme.stratify,
        }
    if isinstance(scheme, KFoldSplit):
        return {"scheme": scheme.name, "k": scheme.k, "seed": scheme.seed, "stratify": scheme.stratify}
    if isinstance(scheme, ExternalSplit):
        return {
            "scheme": scheme.name,
            "field": scheme.field,
            "values": list(scheme.values),
            "val": scheme.val,
            "seed": scheme.seed,
            "stratify": scheme.stratify,
        }
    return {"scheme": scheme.name}


def _no_split(data: Mapping[str, Any]) -> NoSplit:
    return NoSplit()


def _lopo_split(data: Mapping[str, Any]) -> LeaveOnePatientOut:
    return LeaveOnePatientOut()


def _ratio_split(data: Mapping[str, Any]) -> RatioSplit:
    errors: dict[str, str] = {}
    train = _fraction(data, "train", 0.7, errors)
    val = _fraction(data, "val", 0.15, errors)
    test = _fraction(data, "test", 0.15, errors)
    seed = _seed(data, errors)
    stratify = _flag(data, "stratify", errors)
    if not errors and not math.isclose(train + val + test, 1.0, abs_tol=1e-9):
        errors["train"] = f"train + val + test must be 1, not {train + val + test:g}"
    if not errors and train == 0:
        errors["train"] = "the training side cannot be empty"
    if errors:
        raise SplitSchemeError(errors)
    return RatioSplit(train=train, val=val, test=test, seed=seed, stratify=stratify)


def _kfold_split(data: Mapping[str, Any]) -> KFoldSplit:
    errors: dict[str, str] = {}
    k = data.get("k", 5)
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= MAX_FOLDS:
        errors["k"] = f"a whole number of folds from 2 to {MAX_FOLDS}"
    seed = _seed(data, errors)
    stratify = _flag(data, "stratify", errors)
    if errors:
        raise SplitSchemeError(errors)
    return KFoldSplit(k=int(k), seed=seed, stratify=stratify)


def _external_split(data: Mapping[str, Any]) -> ExternalSplit:
    errors: dict[str, str] = {}
    field_name = data.get("field", "site")
    if field_name not in EXTERNAL_FIELDS:
        errors["field"] = f"one of {', '.join(EXTERNAL_FIELDS)}"
    values = data.get("values")
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(value, str) and value.strip() for value in values)
    ):
        errors["values"] = "a non-empty list of the values that make the external set"
        values = []
    val = _fraction(data, "val", 0.0, errors)
    if "val" not in errors and val >= 1:
        errors["val"] = "the training side cannot be empty"
    seed = _seed(data, errors)
    stratify = _flag(data, "stratify", errors)
    if errors:
        raise SplitSchemeError(errors)
    return ExternalSplit(
        field=str(field_name),
        values=tuple(sorted({value.strip() for value in values})),
        val=val,
        seed=seed,
        stratify=stratify,
    )


def _fraction(data: Mapping[str, Any], name: str, default: float, errors: dict[str, str]) -> float:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        errors[name] = "a fraction from 0 to 1"
        return 0.0
    return float(value)


def _seed(data: Mapping[str, Any], errors: dict[str, str]) -> int:
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        errors["seed"] = f"a whole number from 0 to {MAX_SEED}"
        return 0
    return seed


def _flag(data: Mapping[str, Any], name: str, errors: dict[str, str]) -> bool:
    value = data.get(name, True)
    if not isinstance(value, bool):
        errors[name] = "true or false"
        return True
    return value


# --- Splitting ----------------------------------------------------------------------------------------


def split_items(items: Sequence[SplitItem], scheme: SplitScheme) -> SplitResult:
    """Assign every item a side (`train`, `val`, `test`, `fold_i`, `external` or `all`), whole
    patients at a time; checked before it is returned."""
    if isinstance(scheme, RatioSplit):
        result = _split_by_ratio(items, scheme)
    elif isinstance(scheme, KFoldSplit):
        result = _split_kfold(items, scheme)
    elif isinstance(scheme, LeaveOnePatientOut):
        result = _split_lopo(items)
    elif isinstance(scheme, ExternalSplit):
        result = _split_external(items, scheme)
    else:
        result = SplitResult(assignments=[ALL] * len(items), stratified=False)
    check_patient_grouped([item.group for item in items], result.assignments)
    return result


def patients_on_several_sides(groups: Sequence[str], assignments: Sequence[str]) -> dict[str, list[str]]:
    """Each patient found on more than one side, with those sides (empty: the split is grouped)."""
    if len(groups) != len(assignments):
        raise ValueError("one assignment per item is needed")
    sides: dict[str, set[str]] = defaultdict(set)
    for group, side in zip(groups, assignments, strict=True):
        sides[group].add(side)
    return {group: sorted(found) for group, found in sorted(sides.items()) if len(found) > 1}


def check_patient_grouped(groups: Sequence[str], assignments: Sequence[str]) -> None:
    """Raise PatientLeakError when any patient is on two sides."""
    leaks = patients_on_several_sides(groups, assignments)
    if leaks:
        shown = ", ".join(f"{group} ({'/'.join(sides)})" for group, sides in list(leaks.items())[:5])
        raise PatientLeakError(f"{len(leaks)} patient(s) on several sides of the split: {shown}")


def group_labels(items: Iterable[SplitItem]) -> dict[str, str | None]:
    """Each patient's most frequent label (ties: the first in sorted order), None without labels."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for item in items:
        counter = counts[item.group]  # every patient gets an entry, labelled or not
        if item.label is not None:
            counter[item.label] += 1
    labels: dict[str, str | None] = {}
    for group, counter in counts.items():
        if not counter:
            labels[group] = None
            continue
        top = max(counter.values())
        labels[group] = min(label for label, count in counter.items() if count == top)
    return labels


def _split_by_ratio(items: Sequence[SplitItem], scheme: RatioSplit) -> SplitResult:
    labels = group_labels(items)
    groups = sorted(labels)
    sides, stratified, notes = _assign_groups_by_ratio(
        groups,
        [labels[group] for group in groups],
        (scheme.train, scheme.val, scheme.test),
        (TRAIN, VAL, TEST),
        seed=scheme.seed,
        stratify=scheme.stratify,
    )
    return SplitResult([sides[item.group] for item in items], stratified, notes)


def allocate(total: int, fractions: Sequence[float]) -> list[int]:
    """Whole counts summing to `total`, as close to the fractions as possible (largest remainder);
    every non-zero fraction gets at least one when there are enough to go round."""
    raw = [total * fraction for fraction in fractions]
    counts = [math.floor(value) for value in raw]
    by_remainder = sorted(range(len(raw)), key=lambda index: (-(raw[index] - counts[index]), index))
    for index in by_remainder[: total - sum(counts)]:
        counts[index] += 1
    wanted = [index for index, fraction in enumerate(fractions) if fraction > 0]
    if total >= len(wanted):
        for index in wanted:
            if counts[index] == 0:
                donor = max(range(len(counts)), key=lambda other: (counts[other], -other))
                counts[donor] -= 1
                counts[index] += 1
    return counts


def _assign_groups_by_ratio(
    groups: list[str],
    labels: list[str | None],
    fractions: tuple[float, ...],
    names: tuple[str, ...],
    *,
    seed: int,
    stratify: bool,
) -> tuple[dict[str, str], bool, list[str]]:
    """Deal sorted `groups` to the sides `names` in the given fractions: peel off one side at a time
    from the end (test, then val), each with train_test_split, stratified where it can be."""
    counts = allocate(len(groups), fractions)
    sides: dict[str, str] = {}
    remaining = list(range(len(groups)))
    stratified = stratify and any(label is not None for label in labels)
    notes: list[str] = []
    for position in range(len(names) - 1, 0, -1):
        size = counts[position]
        if size == 0:
            continue
        if size >= len(remaining):
            taken, remaining = remaining, []
        else:
            taken, remaining, used = _take(remaining, labels, size, seed + position, stratified)
            if stratified and not used:
                stratified = False
                notes.append(
                    f"not stratified: too few patients per label for a {names[position]} side of {size}"
                )
        for index in taken:
            sides[groups[index]] = names[position]
    for index in remaining:
        sides[groups[index]] = names[0]
    return sides, stratified, notes


def _take(
    pool: list[int], labels: list[str | None], size: int, seed: int, stratify: bool
) -> tuple[list[int], list[int], bool]:
    """`size` of `pool` (group indexes) drawn at random, stratified by label when possible; returns
    (taken, kept, whether stratified)."""
    if stratify:
        strata = [labels[index] or "" for index in pool]
        try:
            kept, taken = train_test_split(pool, test_size=size, random_state=seed, stratify=strata)
            return sorted(taken), sorted(kept), True
        except ValueError:
            pass
    kept, taken = train_test_split(pool, test_size=size, random_state=seed)
    return sorted(taken), sorted(kept), False


def _fold_names(count: int) -> list[str]:
    width = len(str(count - 1))
    return [f"fold_{index:0{width}d}" for index in range(count)]


def _split_kfold(items: Sequence[SplitItem], scheme: KFoldSplit) -> SplitResult:
    groups = sorted({item.group for item in items})
    if len(groups) < scheme.k:
        raise SplitError(
            f"{scheme.k}-fold splitting needs at least {scheme.k} patients; there are {len(groups)}"
        )
    # Sort first: scikit-learn's fold assignment then depends on the items, not on their order.
    order = sorted(range(len(items)), key=lambda index: (items[index].group, items[index].label or "", index))
    group_array = np.array([items[index].group for index in order])
    label_list = [items[index].label for index in order]
    names = _fold_names(scheme.k)
    assignments = [""] * len(items)
    notes: list[str] = []
    stratified = scheme.stratify and any(label is not None for label in label_list)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folds: list[Any] = []
        if stratified:
            splitter = StratifiedGroupKFold(n_splits=scheme.k, shuffle=True, random_state=scheme.seed)
            try:
                folds = list(splitter.split(group_array, [label or "" for label in label_list], group_array))
            except ValueError as exc:  # e.g. every label has fewer items than folds
                stratified = False
                notes.append(f"not stratified: {exc}")
        if not stratified:
            plain = GroupKFold(n_splits=scheme.k, shuffle=True, random_state=scheme.seed)
            folds = list(plain.split(group_array, groups=group_array))
    for fold, (_, held_out) in enumerate(folds):
        for position in held_out:
            assignments[order[position]] = names[fold]
    notes.extend(str(warning.message) for warning in caught)
    return SplitResult(assignments, stratified, notes)


def _split_lopo(items: Sequence[SplitItem]) -> SplitResult:
    if len({item.group for item in items}) < 2:
        raise SplitError("leaving one patient out needs at least 2 patients")
    group_array = np.array([item.group for item in items])
    splitter = LeaveOneGroupOut()
    # One fold per patient, held out in sorted pseudonym order (LeaveOneGroupOut sorts the groups).
    names = _fold_names(splitter.get_n_splits(groups=group_array))
    assignments = [""] * len(items)
    for fold, (_, held_out) in enumerate(splitter.split(group_array, groups=group_array)):
        for index in held_out:
            assignments[index] = names[fold]
    return SplitResult(assignments, stratified=False)


def _split_external(items: Sequence[SplitItem], scheme: ExternalSplit) -> SplitResult:
    wanted = set(scheme.values)
    external_groups = {item.group for item in items if item.attributes.get(scheme.field, "") in wanted}
    straddling = {
        item.group
        for item in items
        if item.group in external_groups and item.attributes.get(scheme.field, "") not in wanted
    }
    notes = []
    if straddling:
        notes.append(
            f"{len(straddling)} patient(s) with frames both in and outside the external "
            f"{scheme.field} values went wholly to the external set"
        )
    internal = [item for item in items if item.group not in external_groups]
    labels = group_labels(internal)
    groups = sorted(labels)
    sides, stratified, more = _assign_groups_by_ratio(
        groups,
        [labels[group] for group in groups],
        (1 - scheme.val, scheme.val),
        (TRAIN, VAL),
        seed=scheme.seed,
        stratify=scheme.stratify and scheme.val > 0,
    )
    notes.extend(more)
    assignments = [EXTERNAL if item.group in external_groups else sides[item.group] for item in items]
    return SplitResult(assignments, stratified, notes)
