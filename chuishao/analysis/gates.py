"""Promotion gates: what must hold before a candidate model replaces the one in service.

Refusing by default:

(a) ``codes``: a taxonomy code (topic or sub-problem) the serving model answers that the candidate
    never learned (in its manifest's ``not_learned``, or missing from its labels): messages the
    service routes today would silently go elsewhere;
(b) ``metrics``: on a gate set (labelled data), macro-F1 or accuracy significantly worse: the
    paired-bootstrap interval of the difference (candidate minus serving) lies entirely below
    minus the tolerance (0 by default);
(c) ``taxonomy``: a taxonomy with other codes (names and departments may differ; codes may not).

The policy is a small YAML file (``GatePolicy``); ``--force`` with a reason overrides a refusal,
and the registry's history keeps both.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chuishao.errors import DataError, ModelLoadError
from chuishao.models.cascade import CascadeModel, RoutingModel
from chuishao.models.persistence import CASCADE, CLASSICAL_DIR, STATE_FILE, load_model, read_manifest
from chuishao.taxonomy import Taxonomy
from chuishao.yamlfile import read_yaml

GATE_DATA_ENV = "CHUISHAO_GATE_DATA"  # the service's gate set for /admin/reload
GATES_ENV = "CHUISHAO_GATES"  # the service's gate policy (YAML)


class GatePolicy(BaseModel):
    """Which gates refuse a promotion (true: refuse), and the metric gate's settings."""

    model_config = ConfigDict(extra="forbid")

    codes: bool = Field(True, description="refuse a candidate that never learned codes the serving model answers")
    metrics: bool = Field(True, description="refuse a candidate significantly worse on the gate set")
    taxonomy: bool = Field(True, description="refuse a candidate whose taxonomy has other codes")
    tolerance_macro_f1: float = Field(0.0, ge=0, description="allowed drop: refuse when the interval's top is below -this")
    tolerance_accuracy: float = Field(0.0, ge=0, description="the same for accuracy")
    resamples: int = Field(1000, ge=100, description="bootstrap resamples")
    seed: int = Field(0, description="bootstrap seed: the same data and models give the same verdict")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="the intervals' level")
    max_seen_share: float = Field(0.01, ge=0, le=1, description="refuse when more than this share of the gate rows "
                                  "were in the candidate's training data (its figures there are flattered)")

    @classmethod
    def load(cls, path: str | Path | None) -> GatePolicy:
        if path is None:
            return cls()
        raw = read_yaml(Path(path), DataError, "gate policy") or {}  # one-line errors, a key given twice refused
        if not isinstance(raw, dict):
            raise DataError(f"{path}: not a gate policy: expected a mapping of keys (metrics: true, ...)")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:  # one line, each key with what is wrong (and a near key for a typo)
            raise DataError(f"{path}: not a gate policy: {'; '.join(_problem(e) for e in exc.errors())}") from None


def _problem(error: Any) -> str:
    key = ".".join(map(str, error["loc"])) or "policy"
    if error["type"] == "extra_forbidden":
        near = difflib.get_close_matches(key, list(GatePolicy.model_fields), n=1)
        return f"{key}: unknown key" + (f" (did you mean {near[0]}?)" if near else
                                       f" (keys: {', '.join(GatePolicy.model_fields)})")
    return f"{key}: {error['msg']} (got {error.get('input')!r})"


@dataclass(frozen=True)
class ModelFacts:
    """What the code and taxonomy gates look at, from a loaded model or a directory."""

    version: str
    learned: frozenset[str]  # topic and sub-problem codes the model can answer
    codes: dict[str, frozenset[str]]  # its taxonomy: topic -> sub-problem codes
    taxonomy: str  # name and version, for messages

    @classmethod
    def of_model(cls, model: RoutingModel) -> ModelFacts:
        subs = {c for scorer in model.sub_models.values() for c in scorer.classes}
        # a cascade answers what its classical part learned: that part's metadata says what it never saw
        metadata = model.classical.metadata if isinstance(model, CascadeModel) else model.metadata
        not_learned: list[str] = metadata.get("not_learned") or []  # type: ignore[assignment]
        return cls(model.version, frozenset({*model.classes_, *subs} - set(not_learned)),
                   _codes(model.taxonomy), f"{model.taxonomy.name} v{model.taxonomy.version}")

    @classmethod
    def of_directory(cls, directory: str | Path) -> ModelFacts:
        """From manifest.json and model.json only (no weights loaded); a cascade's from its classical part
        (``classical/``: the codes it answers and its taxonomy), under the cascade's version."""
        manifest = read_manifest(directory)
        if manifest.get("model_type") == CASCADE:
            return replace(cls.of_directory(Path(directory) / CLASSICAL_DIR), version=str(manifest["version"]))
        path = Path(directory) / STATE_FILE
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            taxonomy = Taxonomy.from_state(state["taxonomy"])
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{path}: not a readable model file ({type(exc).__name__}: {exc})") from None
        labels = [*manifest.get("labels", []), *manifest.get("sub_labels", [])]  # type: ignore[misc]
        not_learned: list[str] = manifest.get("not_learned") or []  # type: ignore[assignment]
        return cls(str(manifest["version"]), frozenset(set(labels) - set(not_learned)),
                   _codes(taxonomy), f"{taxonomy.name} v{taxonomy.version}")


def _codes(taxonomy: Taxonomy) -> dict[str, frozenset[str]]:
    return {label: frozenset(taxonomy.subs_of(label)) for label in taxonomy.labels}


def _all_codes(codes: dict[str, frozenset[str]]) -> set[str]:
    return {*codes, *(s for subs in codes.values() for s in subs)}


@dataclass
class GateCheck:
    name: str  # codes | taxonomy | metrics
    passed: bool
    detail: str
    enforced: bool = True

    def as_dict(self) -> dict[str, object]:
        return {"gate": self.name, "passed": self.passed, "enforced": self.enforced, "detail": self.detail}


@dataclass
class GateReport:
    serving: str | None
    candidate: str
    checks: list[GateCheck] = field(default_factory=list)
    comparison: dict[str, object] | None = None  # the metric gate's comparison, without the changed rows

    @property
    def refusals(self) -> list[GateCheck]:
        return [c for c in self.checks if c.enforced and not c.passed]

    @property
    def passed(self) -> bool:
        return not self.refusals

    def reason(self) -> str:
        return "; ".join(f"{c.name}: {c.detail}" for c in self.refusals)

    def as_dict(self) -> dict[str, object]:
        return {"serving": self.serving, "candidate": self.candidate, "passed": self.passed,
                "checks": [c.as_dict() for c in self.checks], "comparison": self.comparison}


def check_codes(serving: ModelFacts, candidate: ModelFacts, policy: GatePolicy) -> list[GateCheck]:
    """Gates (a) and (c): from what each model learned and its taxonomy's codes."""
    unlearned = sorted(serving.learned - candidate.learned)
    a = GateCheck("codes", not unlearned, (
        f"the candidate never learned {len(unlearned)} code{'s' * (len(unlearned) != 1)} the serving model answers: "
        f"{', '.join(unlearned[:40])}{' ...' if len(unlearned) > 40 else ''}") if unlearned
        else "the candidate answers every code the serving model answers", policy.codes)
    mine, theirs = _all_codes(serving.codes), _all_codes(candidate.codes)
    same = serving.codes == candidate.codes
    gone, new = sorted(mine - theirs), sorted(theirs - mine)
    moved = sorted(s for t in set(serving.codes) & set(candidate.codes) for s in serving.codes[t] ^ candidate.codes[t])
    detail = (f"same taxonomy codes ({candidate.taxonomy})" if same else
              f"taxonomy {candidate.taxonomy} has other codes than {serving.taxonomy}: "
              + "; ".join(p for p in (f"gone: {', '.join(gone[:10])}" if gone else "",
                                      f"new: {', '.join(new[:10])}" if new else "",
                                      f"moved: {', '.join(moved[:10])}" if moved and not (gone or new) else "") if p))
    return [a, GateCheck("taxonomy", same, detail, policy.taxonomy)]


def check_metrics(serving: RoutingModel, candidate: RoutingModel, data, policy: GatePolicy,
                  data_name: str = "the gate set") -> tuple[GateCheck, dict[str, object]]:
    """Gate (b): the paired bootstrap of candidate minus serving on the gate set."""
    from chuishao.analysis.compare import compare_models, overlap_warnings

    comparison = compare_models(serving, candidate, data, resamples=policy.resamples, seed=policy.seed,
                                confidence=policy.confidence)
    worse = []
    for name, tolerance in (("macro_f1", policy.tolerance_macro_f1), ("accuracy", policy.tolerance_accuracy)):
        ci = comparison.bootstrap[name]
        if ci["high"] < -tolerance:
            worse.append(f"{name} {ci['delta']:+.4f} [{ci['low']:+.4f}, {ci['high']:+.4f}]")
    shown = ", ".join(f"{k} {v['delta']:+.4f} [{v['low']:+.4f}, {v['high']:+.4f}]" for k, v in comparison.bootstrap.items())
    level = f"{round(100 * policy.confidence)} %"
    detail = (f"significantly worse on {data_name} ({len(data)} rows, {level} intervals): {'; '.join(worse)}" if worse
              else f"not significantly worse on {data_name} ({len(data)} rows, {level} intervals): {shown}")
    seen = comparison.seen.get("b") or {}
    flattered = bool(seen.get("checked")) and float(seen.get("share") or 0) > policy.max_seen_share  # type: ignore[arg-type]
    if flattered:  # the candidate's figures on rows it was trained on say nothing
        detail = (f"{data_name} is not held out from the candidate: {seen['rows']} of {seen['of']} rows were in its "
                  f"training data (more than max_seen_share {policy.max_seen_share}); {detail}")
    notes = "; ".join(overlap_warnings(comparison))
    if notes and not flattered:
        detail += f" ({notes})"
    return (GateCheck("metrics", not worse and not flattered, detail, policy.metrics),
            comparison.as_dict(with_changed=False))


def check_promotion(serving_dir: str | Path | None, candidate_dir: str | Path, *, gate_data: str | Path | None = None,
                    policy: GatePolicy | None = None, serving_model: RoutingModel | None = None) -> GateReport:
    """Every gate for putting ``candidate_dir`` in the place of the serving model (a directory, or
    ``serving_model`` already loaded). No serving model: nothing to compare with, every gate passes.
    Without ``gate_data`` the metric gate is not run (reported as not checked)."""
    policy = policy or GatePolicy()
    candidate_facts = ModelFacts.of_directory(candidate_dir)
    if serving_model is None and serving_dir is None:
        return GateReport(None, candidate_facts.version, [GateCheck("first", True, "no model in service: nothing to compare")])
    serving_facts = ModelFacts.of_model(serving_model) if serving_model is not None else ModelFacts.of_directory(serving_dir)  # type: ignore[arg-type]
    report = GateReport(serving_facts.version, candidate_facts.version, check_codes(serving_facts, candidate_facts, policy))
    if gate_data is None:
        report.checks.append(GateCheck("metrics", True, "not checked: no gate set given", enforced=False))
        return report
    from chuishao.training.data import read_labelled

    data = read_labelled(gate_data)
    serving = serving_model if serving_model is not None else load_model(serving_dir)
    check, comparison = check_metrics(serving, load_model(candidate_dir), data, policy, Path(gate_data).name)
    report.checks.append(check)
    report.comparison = comparison
    return report


def reload_refusal(serving: RoutingModel, candidate_dir: str | Path) -> str | None:
    """The service's /admin/reload gate: why the model now in ``candidate_dir`` must not replace
    ``serving``, or None. The gate set and policy come from CHUISHAO_GATE_DATA and CHUISHAO_GATES;
    without a gate set only the code and taxonomy gates run. The same model again always passes."""
    candidate = ModelFacts.of_directory(candidate_dir)
    if candidate.version == serving.version:
        return None
    policy = GatePolicy.load(os.environ.get(GATES_ENV) or None)
    report = check_promotion(None, candidate_dir, gate_data=os.environ.get(GATE_DATA_ENV) or None, policy=policy,
                             serving_model=serving)
    return None if report.passed else report.reason()


