"""Label-task presets for the seed studies, applied to a project by `services.label_preset_apply`.

Hotkeys are chosen so that every preset can sit beside every other in one project without a clash
(digits 1-4 for head-and-neck sites, 5-8 for the four-level quality scale, mnemonic letters
elsewhere). A clash can still arise with a project's own tasks; the service then moves the clashing
choice to the first free key of HOTKEY_POOL, or refuses when asked not to reassign.
"""

from __future__ import annotations

from dataclasses import dataclass

HOTKEY_POOL = "1234567890abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class ChoicePreset:
    value: str
    label: str
    color: str
    hotkey: str


@dataclass(frozen=True)
class TaskPreset:
    key: str
    name: str
    kind: str  # LabelTask.Kind value
    description: str
    choices: tuple[ChoicePreset, ...]


PRESETS: dict[str, TaskPreset] = {
    preset.key: preset
    for preset in (
        TaskPreset(
            key="head_neck_site",
            name="Head and neck site",
            kind="nominal",
            description="Anatomical site of a head and neck CLE frame.",
            choices=(
                ChoicePreset("oral_cavity", "Oral cavity", "#1f77b4", "1"),
                ChoicePreset("oropharynx", "Oropharynx", "#ff7f0e", "2"),
                ChoicePreset("hypopharynx", "Hypopharynx", "#2ca02c", "3"),
                ChoicePreset("sinonasal", "Sinonasal", "#9467bd", "4"),
            ),
        ),
        TaskPreset(
            key="ent_organ",
            name="ENT organ",
            kind="nominal",
            description="Organ seen in an ENT endoscopy frame.",
            choices=(
                ChoicePreset("ear", "Ear", "#8c564b", "e"),
                ChoicePreset("nose", "Nose", "#e377c2", "n"),
                ChoicePreset("vocal_folds", "Vocal folds", "#17becf", "v"),
            ),
        ),
        TaskPreset(
            key="colon_segment",
            name="Colon segment",
            kind="nominal",
            description="Segment of the colon (or the terminal ileum) of a CLE frame.",
            choices=(
                ChoicePreset("terminal_ileum", "Terminal ileum", "#7f7f7f", "i"),
                ChoicePreset("caecum", "Caecum", "#1b9e77", "c"),
                ChoicePreset("ascending", "Ascending colon", "#d95f02", "a"),
                ChoicePreset("transverse", "Transverse colon", "#7570b3", "t"),
                ChoicePreset("descending", "Descending colon", "#e7298a", "d"),
                ChoicePreset("sigmoid", "Sigmoid colon", "#66a61e", "s"),
                ChoicePreset("rectum", "Rectum", "#e6ab02", "r"),
            ),
        ),
        TaskPreset(
            key="quality",
            name="Image quality",
            kind="nominal",
            description="Whether the frame is good enough to be read.",
            choices=(
                ChoicePreset("good", "Good", "#2ca02c", "g"),
                ChoicePreset("bad", "Bad", "#d62728", "b"),
            ),
        ),
        TaskPreset(
            key="quality_4",
            name="Image quality (four levels)",
            kind="ordinal",
            description="Image quality on a four-level scale, best first.",
            choices=(
                ChoicePreset("very_good", "Very good", "#1a9641", "5"),
                ChoicePreset("good", "Good", "#a6d96a", "6"),
                ChoicePreset("bad", "Bad", "#fdae61", "7"),
                ChoicePreset("very_bad", "Very bad", "#d7191c", "8"),
            ),
        ),
        TaskPreset(
            key="diagnosis_neoplasia",
            name="Diagnosis: healthy or neoplastic",
            kind="nominal",
            description="Healthy tissue or neoplasia (e.g. squamous cell carcinoma).",
            choices=(
                ChoicePreset("healthy", "Healthy", "#2ca02c", "h"),
                ChoicePreset("neoplastic", "Neoplastic", "#d62728", "p"),
            ),
        ),
        TaskPreset(
            key="diagnosis_inflammation",
            name="Diagnosis: inflamed or normal",
            kind="nominal",
            description="Inflamed or normal mucosa (e.g. Crohn's disease activity).",
            choices=(
                ChoicePreset("inflamed", "Inflamed", "#ff7f0e", "f"),
                ChoicePreset("normal", "Normal", "#1f77b4", "o"),
            ),
        ),
    )
}
