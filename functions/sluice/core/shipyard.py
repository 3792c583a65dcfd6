"""The shipyard: a project's stages, in order, with their strategies (the seed's format).

    stages:
      - name: dev
        deployment_strategy: direct            # direct | blue_green_service | canary
        test_strategy: functional              # functional | performance | none
      - name: staging
        deployment_strategy: blue_green_service
        test_strategy: performance
        approval_strategy: {pass: automatic, warning: manual, timeout: 24h, on_timeout: decline}
        on_inconclusive: hold                  # fail (default) | hold | retry, or a mapping (core.inconclusive)
      - name: production
        deployment_strategy: canary            # traffic in steps, a gate at every step (core.canary)
        canary: {steps: [10, 25, 50], step_duration: 2m, max_failed_steps: 0}

The first entry is the first stage; a stage's next stage is the next entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from sluice.core.canary import CanaryPolicy, parse_canary
from sluice.core.inconclusive import InconclusivePolicy, parse_on_inconclusive
from sluice.core.testspec import parse_duration
from sluice.core.validation import dns_label_problem
from sluice.errors import ValidationError


class DeploymentStrategy(StrEnum):
    DIRECT = "direct"
    BLUE_GREEN = "blue_green_service"
    CANARY = "canary"


#: The strategies that run a candidate beside the primary (its SLIs are the ``canary`` slot's).
SPLIT_STRATEGIES = frozenset({DeploymentStrategy.BLUE_GREEN, DeploymentStrategy.CANARY})


class TestStrategy(StrEnum):
    __test__ = False
    FUNCTIONAL = "functional"
    PERFORMANCE = "performance"
    NONE = ""


class Approval(StrEnum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


class OnTimeout(StrEnum):
    """What a held promotion that nobody decided in time becomes."""

    DECLINE = "decline"
    APPROVE = "approve"


#: How long a held promotion waits for a person by default (``approval_strategy.timeout``).
DEFAULT_APPROVAL_TIMEOUT_S = 24 * 3600.0
#: The longest wait a shipyard may ask for.
MAX_APPROVAL_TIMEOUT_S = 30 * 24 * 3600.0


@dataclass(frozen=True)
class Stage:
    name: str
    deployment_strategy: DeploymentStrategy = DeploymentStrategy.DIRECT
    test_strategy: TestStrategy = TestStrategy.NONE
    approval_pass: Approval = Approval.AUTOMATIC
    approval_warning: Approval = Approval.AUTOMATIC
    approval_timeout_s: float = DEFAULT_APPROVAL_TIMEOUT_S
    approval_on_timeout: OnTimeout = OnTimeout.DECLINE
    inconclusive: InconclusivePolicy = field(default_factory=InconclusivePolicy)
    #: The steps of a ``canary`` stage (None for the other strategies).
    canary: CanaryPolicy | None = None

    @property
    def blue_green(self) -> bool:
        return self.deployment_strategy is DeploymentStrategy.BLUE_GREEN

    @property
    def split(self) -> bool:
        """True when the stage runs a primary and a candidate side by side (blue/green, canary)."""
        return self.deployment_strategy in SPLIT_STRATEGIES

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "deployment_strategy": self.deployment_strategy.value,
            "test_strategy": self.test_strategy.value or "none",
            "approval_strategy": {
                "pass": self.approval_pass.value, "warning": self.approval_warning.value,
                "timeout": f"{self.approval_timeout_s:g}s", "on_timeout": self.approval_on_timeout.value,
            },
            "on_inconclusive": self.inconclusive.to_dict(),
            **({"canary": self.canary.to_dict()} if self.canary is not None else {}),
        }


@dataclass(frozen=True)
class Shipyard:
    stages: tuple[Stage, ...]

    @property
    def first(self) -> Stage:
        return self.stages[0]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        names = ", ".join(s.name for s in self.stages)
        raise ValidationError("shipyard", [f"stage {name!r} is not in the shipyard (stages: {names})"])

    def next_stage(self, name: str) -> Stage | None:
        names = [s.name for s in self.stages]
        index = names.index(self.stage(name).name)
        return self.stages[index + 1] if index + 1 < len(self.stages) else None


def _enum_value(enum: type[StrEnum], where: str, value: object, problems: list[str], aliases: Mapping[str, str]) -> str:
    text = aliases.get(str(value), str(value)) if value is not None else ""
    valid = [e.value for e in enum]
    if text not in valid:
        shown = [v or "none" for v in valid]
        problems.append(f"{where}: expected one of {', '.join(shown)}, found {value!r}")
        return valid[0]
    return text


def parse_shipyard(doc: object, source: str = "shipyard.yaml") -> Shipyard:
    """Validate a loaded shipyard document; every problem is reported in one ValidationError."""
    problems: list[str] = []
    if not isinstance(doc, Mapping) or not isinstance(doc.get("stages"), list) or not doc["stages"]:
        raise ValidationError(source, ["stages: expected a non-empty list of stages"])
    stages: list[Stage] = []
    seen: set[str] = set()
    for i, raw in enumerate(doc["stages"]):
        where = f"stages[{i}]"
        if not isinstance(raw, Mapping):
            problems.append(f"{where}: expected a mapping with name, deployment_strategy, test_strategy")
            continue
        name = raw.get("name")
        if p := dns_label_problem(f"{where}.name", name):
            problems.append(p)
            continue
        assert isinstance(name, str)
        where = f"stage {name!r}"
        if name in seen:
            problems.append(f"{where}: the name appears twice")
        seen.add(name)
        unknown = set(raw) - {
            "name", "deployment_strategy", "test_strategy", "approval_strategy", "on_inconclusive", "canary",
        }
        if unknown:
            problems.append(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        deployment = _enum_value(
            DeploymentStrategy, f"{where}.deployment_strategy", raw.get("deployment_strategy", "direct"), problems, {}
        )
        test = _enum_value(
            TestStrategy, f"{where}.test_strategy", raw.get("test_strategy") or "", problems, {"none": ""}
        )
        approval = raw.get("approval_strategy") or {}
        if not isinstance(approval, Mapping):
            problems.append(
                f"{where}.approval_strategy: expected {{pass: automatic|manual, warning: automatic|manual, "
                "timeout: a duration like 24h, on_timeout: decline|approve}"
            )
            approval = {}
        unknown_approval = set(approval) - {"pass", "warning", "timeout", "on_timeout"}
        if unknown_approval:
            problems.append(f"{where}.approval_strategy: unknown keys {', '.join(sorted(map(str, unknown_approval)))}")
        a_pass = _enum_value(Approval, f"{where}.approval_strategy.pass", approval.get("pass", "automatic"), problems, {})
        a_warn = _enum_value(
            Approval, f"{where}.approval_strategy.warning", approval.get("warning", "automatic"), problems, {}
        )
        timeout = parse_duration(approval.get("timeout", DEFAULT_APPROVAL_TIMEOUT_S))
        if timeout is None or not 0 < timeout <= MAX_APPROVAL_TIMEOUT_S:
            problems.append(
                f"{where}.approval_strategy.timeout: expected a duration like 30m or 24h, more than 0 and at most "
                f"30 days, found {approval.get('timeout')!r}"
            )
            timeout = DEFAULT_APPROVAL_TIMEOUT_S
        on_timeout = _enum_value(
            OnTimeout, f"{where}.approval_strategy.on_timeout", approval.get("on_timeout", "decline"), problems, {}
        )
        inconclusive = parse_on_inconclusive(raw.get("on_inconclusive"), f"{where}.on_inconclusive", problems)
        canary: CanaryPolicy | None = None
        if deployment == DeploymentStrategy.CANARY.value:
            canary = parse_canary(raw.get("canary"), f"{where}.canary", problems)
        elif raw.get("canary") is not None:
            problems.append(f"{where}.canary: only a stage with deployment_strategy: canary has canary steps "
                            f"(this one is {deployment})")
        stages.append(
            Stage(
                name, DeploymentStrategy(deployment), TestStrategy(test), Approval(a_pass), Approval(a_warn),
                timeout, OnTimeout(on_timeout), inconclusive, canary,
            )
        )
    if problems:
        raise ValidationError(source, problems)
    return Shipyard(tuple(stages))
