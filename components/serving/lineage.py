"""Which model is serving, trained on what: a small typed view of the model card's lineage fields.

The trainer writes them into ``model_card.json``; the predictor reports them (``GET
/v2/models/{name}/lineage``), the canary's rollout record and ``catalog serve --status`` print them. Cards
written before these fields existed still load: a missing field reads as ``""`` (unknown) or ``{}``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from components._core.artifacts import read_json
from components.training.launch import CARD_FILE

VERSION_CHARS = 12  # a model's default version: this many hex digits of its weights digest


def model_version(card: dict[str, Any]) -> str:
    """The default version of a model: the first 12 hex digits of its weights' SHA-256 (equal weights, equal
    version), as the predictor reports it when no explicit version is given."""
    digest = str(card.get("weights_sha256") or "")
    if not digest:
        raise ValueError("model card has no weights_sha256: cannot derive a model version")
    return digest[:VERSION_CHARS]


@dataclass(frozen=True)
class Lineage:
    """The lineage of one trained model, as recorded in its card."""

    version: str
    weights_sha256: str
    data_version: str = ""
    data_uri: str = ""
    training_set_sha256: str = ""
    package_version: str = ""
    image: str = ""
    trainer_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    model_uri: str = ""

    @classmethod
    def from_card(cls, card: dict[str, Any], model_uri: str = "", version: str | None = None) -> Lineage:
        """The lineage fields of ``card``; ``version`` overrides the digest-derived default."""
        def text(key: str) -> str:
            value = card.get(key)
            return "" if value is None else str(value)

        return cls(version=version or model_version(card), weights_sha256=text("weights_sha256"),
                   data_version=text("data_version"), data_uri=text("data_uri"),
                   training_set_sha256=text("training_set_sha256"), package_version=text("package_version"),
                   image=text("image"), trainer_config=dict(card.get("trainer_config") or {}),
                   metrics=dict(card.get("metrics") or {}), model_uri=model_uri)

    @classmethod
    def read(cls, model_uri: str, version: str | None = None) -> Lineage:
        """The lineage of the model folder at ``model_uri`` (local path or fsspec URI); reads only the card."""
        return cls.from_card(read_json(f"{model_uri.rstrip('/')}/{CARD_FILE}"), model_uri, version)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)

    def summary(self) -> list[str]:
        """A few human-readable lines (``catalog serve --status``, rollout logs)."""
        auc = self.metrics.get("test_auc")
        return [
            f"model version {self.version}  (weights sha256 {self.weights_sha256[:16]}…)",
            f"  model        {self.model_uri or '-'}",
            f"  data         version {self.data_version or '-'}  {self.data_uri or '-'}",
            f"  training set sha256 {self.training_set_sha256 or '-'}",
            f"  test AUC     {auc if auc is not None else '-'}",
            f"  package      {self.package_version or '-'}  image {self.image or '-'}",
        ]
