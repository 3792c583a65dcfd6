"""The ``ConfigurationChange`` payload (see ``sluice.core.events``: loaded when first used)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from sluice.core.events import CanaryAction, EventType, Scoped, _checked, _enum, _f, _opt_label, _percent
from sluice.core.frozen import frozen
from sluice.core.validation import image_problem


@frozen(kw_only=True)
class ConfigurationChange(Scoped):
    """Deploy ``image`` to a stage (``set``), or ``promote`` / ``discard`` its candidate.

    ``stage`` may be empty for a new artifact: the first stage of the shipyard is meant.
    """

    TYPE: ClassVar[EventType] = EventType.CONFIGURATION_CHANGE
    stage: str = _f("stage", "", read=_opt_label)
    image: str = _f("valuesCanary.image", "", read=_checked(image_problem, optional=True))
    action: CanaryAction = _f("canary.action", CanaryAction.SET, read=_enum(CanaryAction))
    value: int = _f("canary.value", 100, read=_percent)
    #: Who approved a held promote / discard (empty when the gate decided on its own).
    approver: str = _f("approver", "")

    @classmethod
    def _extra_problems(cls, values: Mapping[str, Any]) -> list[str]:
        if values.get("action", CanaryAction.SET) is CanaryAction.SET and not values.get("image"):
            return ["valuesCanary.image: required when canary.action is 'set', missing"]
        return []
