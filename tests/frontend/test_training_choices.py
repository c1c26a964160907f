"""The training form offers what the training API takes: the frontend's lists
(frontend/src/trainingdata.ts, trainingapi.ts) name exactly the server's label sources (an export
snapshot among them), optimizers, imbalance handlings, synthetic degradations, evaluation schemes,
external fields and aggregated metrics, and every suggested architecture is one the server knows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from annotations.splits import EXTERNAL_FIELDS
from inference.evaluation import AGGREGATED
from inference.ml.factory import is_known_architecture
from inference.ml.training import IMBALANCE, OPTIMIZERS, SYNTHETIC_KINDS
from inference.models import TrainingRun
from inference.training import EVALUATION_SCHEMES

SOURCES = Path(__file__).resolve().parents[2] / "frontend" / "src"


def frontend_list(constant: str, module: str = "trainingdata.ts") -> list[str]:
    """The values of `export const NAME = [...] as const;`: each option's `value`, or the strings."""
    source = (SOURCES / module).read_text()
    block = re.search(rf"export const {constant} = \[(.*?)\] as const;", source, re.S)
    assert block, f"{constant} is missing from {module}"
    values = re.findall(r'value: "([^"]+)"', block.group(1))
    return values or re.findall(r'"([^"]+)"', block.group(1))


def test_label_sources_are_the_models_with_its_labels() -> None:
    source = (SOURCES / "trainingdata.ts").read_text()
    block = re.search(r"export const LABEL_SOURCES = \[(.*?)\] as const;", source, re.S)
    assert block
    offered = re.findall(r'\{ value: "([^"]+)", label: "([^"]+)" \}', block.group(1))
    assert offered == [(value, str(label)) for value, label in TrainingRun.LabelSource.choices]


@pytest.mark.parametrize(
    ("constant", "server"),
    [
        ("OPTIMIZERS", OPTIMIZERS),
        ("IMBALANCE", IMBALANCE),
        ("SYNTHETIC_KINDS", SYNTHETIC_KINDS),
        # With the export's own split, for runs that learn from an export snapshot.
        ("EVALUATION_SCHEMES", (*EVALUATION_SCHEMES, "export")),
        ("EXTERNAL_FIELDS", EXTERNAL_FIELDS),
    ],
)
def test_the_form_offers_the_servers_choices(constant: str, server: tuple[str, ...]) -> None:
    assert frontend_list(constant) == list(server)


def test_the_page_reads_the_aggregated_metrics_the_server_writes() -> None:
    assert frontend_list("AGGREGATED", "trainingapi.ts") == list(AGGREGATED)


def test_every_suggested_architecture_is_known() -> None:
    suggested = frontend_list("ARCHITECTURES")
    assert {
        "efficientnet_b0",
        "tf_efficientnetv2_s",
        "resnet34",
        "efficientnet_lite0",
        "cnn_lstm",
        "resnet10t",
    } <= set(suggested)
    assert [name for name in suggested if not is_known_architecture(name)] == []
