"""The ``noop`` deployment backend: runs nothing, records every call (for tests of the flow).

``deploy`` answers ``http://<service>-<slot>.<namespace>`` and ``route`` answers
``http://<service>.<namespace>`` at once. ``calls`` lists every call in order; ``images``
and ``weights`` hold what a real backend would be running. Images listed in ``fail_images``
make ``deploy`` raise ``PermanentError`` (a candidate that never becomes ready); a malformed
image reference is a ``ValidationError`` (as on every backend: tests/contract).
"""

from __future__ import annotations

from collections.abc import Iterable

from sluice.core.frozen import frozen
from sluice.core.validation import image_problem
from sluice.errors import PermanentError, ValidationError
from sluice.ports.backend import Placement, Slot


@frozen
class Call:
    """One call made to the backend."""

    method: str
    placement: Placement
    slot: Slot | None = None
    image: str | None = None
    canary_weight: int | None = None


class NoopBackend:
    """A ``DeploymentBackend`` that only remembers what it was asked to do."""

    def __init__(self, fail_images: Iterable[str] = ()) -> None:
        self.fail_images = set(fail_images)  # tests may add images later
        self.calls: list[Call] = []
        self.images: dict[tuple[Placement, Slot], str] = {}
        self.weights: dict[Placement, int] = {}

    def deploy(self, placement: Placement, slot: Slot, image: str, timeout_s: float) -> str:
        slot = Slot(slot)
        if problem := image_problem("image", image):
            raise ValidationError("image", [problem])
        self.calls.append(Call("deploy", placement, slot, image))
        if image in self.fail_images:
            raise PermanentError(
                f"image {image!r} in the {slot.value} slot of {placement.service} in "
                f"{placement.project}/{placement.stage}: not ready within {timeout_s:g} s (noop backend: told to fail)"
            )
        self.images[(placement, slot)] = image
        return f"http://{placement.service}-{slot.value}.{placement.namespace}"

    def route(self, placement: Placement, canary_weight: int) -> str:
        if isinstance(canary_weight, bool) or not isinstance(canary_weight, int) or not 0 <= canary_weight <= 100:
            raise ValidationError("canary_weight", [f"expected an integer 0-100, found {canary_weight!r}"])
        self.calls.append(Call("route", placement, canary_weight=canary_weight))
        self.weights[placement] = canary_weight
        return f"http://{placement.service}.{placement.namespace}"

    def scale_to_zero(self, placement: Placement, slot: Slot) -> None:
        slot = Slot(slot)
        self.calls.append(Call("scale_to_zero", placement, slot))
        self.images.pop((placement, slot), None)

    def serving(self, placement: Placement) -> str:
        """The image most of ``placement``'s traffic reaches now ('' when nothing runs)."""
        weight = self.weights.get(placement, 0)
        for slot in (Slot.DIRECT, Slot.CANARY if weight >= 50 else Slot.PRIMARY):
            if (image := self.images.get((placement, slot))) is not None:
                return image
        return ""
