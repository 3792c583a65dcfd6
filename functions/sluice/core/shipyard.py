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
from dataclasses import field
from typing import TYPE_CHECKING

from sluice.core.frozen import frozen
from sluice.core.inconclusive import InconclusivePolicy, parse_on_inconclusive
from sluice.core.strategies import SPLIT_STRATEGIES, Approval, DeploymentStrategy, OnTimeout, TestStrategy
from sluice.core.validation import Problems, Reader, dns_label_problem, parse_duration
from sluice.errors import ValidationError

if TYPE_CHECKING:  # loaded where a stage has canary steps (parse_stage): most have none
    from sluice.core.canary import CanaryPolicy

#: How long a held promotion waits for a person by default (``approval_strategy.timeout``).
DEFAULT_APPROVAL_TIMEOUT_S = 24 * 3600.0
#: The longest wait a shipyard may ask for.
MAX_APPROVAL_TIMEOUT_S = 30 * 24 * 3600.0


@frozen
class Stage:
    """One stage of a shipyard: its strategies, approvals, ``on_inconclusive`` policy and canary steps."""

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


@frozen
class Shipyard:
    """A project's stages, in delivery order."""

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


_STAGE_KEYS = ("name", "deployment_strategy", "test_strategy", "approval_strategy", "on_inconclusive", "canary")
_APPROVAL_KEYS = ("pass", "warning", "timeout", "on_timeout")


def parse_shipyard(doc: object, source: str = "shipyard.yaml") -> Shipyard:
    """Validate a loaded shipyard document; every problem is reported in one ValidationError."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("stages"), list) or not doc["stages"]:
        raise ValidationError(source, ["stages: expected a non-empty list of stages"])
    problems = Problems(source)
    stages: list[Stage] = []
    seen: set[str] = set()
    for item in Reader(doc, "", problems).items("stages"):
        stage = _parse_stage(item, seen)
        if stage is not None:
            stages.append(stage)
    problems.raise_if_any()
    return Shipyard(tuple(stages))


def _parse_stage(item: Reader, seen: set[str]) -> Stage | None:
    """One entry of ``stages``; its problems are named ``stage '<name>'.<field>``."""
    if not item.expect_mapping("a mapping with name, deployment_strategy, test_strategy") or item.value is None:
        if item.value is None:
            item.fail("expected a mapping with name, deployment_strategy, test_strategy")
        return None
    name = item.string("name", required=True, check=dns_label_problem)
    if not name:
        return None
    r = Reader(item.value, f"stage {name!r}", item.problems)
    if name in seen:
        r.fail("the name appears twice")
    seen.add(name)
    r.unknown_keys(_STAGE_KEYS)
    deployment = r.enum("deployment_strategy", DeploymentStrategy, DeploymentStrategy.DIRECT) or DeploymentStrategy.DIRECT
    test = r.enum("test_strategy", TestStrategy, TestStrategy.NONE, aliases={"none": ""}) or TestStrategy.NONE
    approval = r.mapping(
        "approval_strategy",
        "{pass: automatic|manual, warning: automatic|manual, timeout: a duration like 24h, on_timeout: decline|approve}",
    )
    approval.unknown_keys(_APPROVAL_KEYS)
    problems = item.problems.messages  # the policies below still take a list of problems
    canary: CanaryPolicy | None = None
    if deployment is DeploymentStrategy.CANARY:
        from sluice.core.canary import parse_canary

        canary = parse_canary(r.raw("canary"), r.where("canary"), problems)
    elif r.has("canary"):
        r.fail(f"only a stage with deployment_strategy: canary has canary steps (this one is {deployment})", "canary")
    return Stage(
        name, deployment, test,
        approval.enum("pass", Approval, Approval.AUTOMATIC) or Approval.AUTOMATIC,
        approval.enum("warning", Approval, Approval.AUTOMATIC) or Approval.AUTOMATIC,
        _approval_timeout(approval),
        approval.enum("on_timeout", OnTimeout, OnTimeout.DECLINE) or OnTimeout.DECLINE,
        parse_on_inconclusive(r.raw("on_inconclusive"), r.where("on_inconclusive"), problems),
        canary,
    )


def _approval_timeout(approval: Reader) -> float:
    raw = approval.raw("timeout")
    timeout = parse_duration(DEFAULT_APPROVAL_TIMEOUT_S if raw is None else raw)
    if timeout is None or not 0 < timeout <= MAX_APPROVAL_TIMEOUT_S:
        approval.fail(f"expected a duration like 30m or 24h, more than 0 and at most 30 days, found {raw!r}", "timeout")
        return DEFAULT_APPROVAL_TIMEOUT_S
    return timeout
