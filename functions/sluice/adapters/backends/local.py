"""The ``local`` deployment backend: each slot is a local process, each stage a router port.

The embedded default that stands in for a cluster. An *image map* (YAML, see
``examples/sockshop/images.yaml``) says which command runs each image. ``deploy`` starts
that command as a detached process (its own session, so it outlives the short-lived function
process that started it) on a free ``127.0.0.1`` port and waits until ``GET <health>``
answers 2xx. The weighted router (:mod:`sluice.embedded.router`, one process,
started on demand) gives each stage a stable URL and splits its traffic.

URLs are stable: ``route`` returns the stage's router port, and ``deploy`` returns the slot's
own router port (an entry ``<project>/<stage>/<service>--<slot>`` whose only upstream is the
slot's current process). Both ports are kept in ``router-stages.json``, so a URL that was
recorded stays the live one across a promotion (the primary's process is replaced behind the
same URL), ``sluice down`` / ``sluice up`` and crashes. ``stop_all`` stops the processes but keeps
the slot records (the desired state); ``reconcile`` starts them again (``sluice up`` calls it).

Everything lives under ``runtime_dir`` so that many function processes share it::

    runtime_dir/
      router.json                     router pid, control port/URL (written by the router)
      router-stages.json              each stage's port, upstreams, weight (written by the router)
      router.log, router.lock
      slots/<project>.<stage>.<service>.<slot>.json   one record per slot that should run:
                                      image, pid, start_ticks, port, url, health, log, command
      logs/<project>.<stage>.<service>.<slot>-<port>.log   the process's stdout + stderr
      locks/<project>.<stage>.<service>.lock          serialises changes to one placement

Replacing the image of a running slot is itself blue/green: the new process starts on a new
port and must be ready before the router switches the slot to it; the old one is drained
(no request in flight, bounded) and then stopped. So promote (primary takes the candidate's
image) and direct updates never fail a request in flight.

Standard library only at import time (YAML is imported when the image map is first read),
to keep the functions' cold start short.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sluice.core.frozen import frozen
from sluice.core.validation import dns_label_problem
from sluice.embedded.host import (
    ROUTER_INFO,
    ROUTER_STAGES,
    flock,
    free_port,
    pid_alive,
    read_json,
    start_ticks,
    tail,
    terminate,
    write_json,
)
from sluice.errors import ConfigurationError, PermanentError, RetryableError, ValidationError
from sluice.ports.backend import Placement, Slot

_POLL_S = 0.05


@frozen
class ImageSpec:
    """How to run one image locally: argv with placeholders and the readiness path."""

    image: str
    command: tuple[str, ...]
    health: str = "/health"


@frozen
class SlotRecord:
    """A running slot, as recorded in ``runtime_dir/slots/``."""

    project: str
    stage: str
    service: str
    slot: str
    image: str
    pid: int
    start_ticks: int | None
    port: int
    url: str
    health: str
    log: str
    command: tuple[str, ...]
    started_at: float

    @property
    def placement(self) -> Placement:
        return Placement(self.project, self.stage, self.service)


@frozen
class SlotStatus:
    """What ``status()`` / ``reconcile()`` found (or did) for one slot."""

    placement: Placement
    slot: Slot
    image: str
    url: str | None
    state: str  # running | unresponsive | restarted | stopped | failed: <reason>


class LocalBackend:
    """A ``DeploymentBackend`` that runs images as local processes behind a weighted router.

    Args:
        image_map: path of the image map YAML (or the already parsed mapping, for tests).
        runtime_dir: where the records, logs and locks live (e.g. ``<state-dir>/runtime``).
        python: interpreter for ``{python}`` in commands and for the router.
        drain_timeout_s: how long a retiring upstream may finish its requests in flight.
        stop_timeout_s: SIGTERM → SIGKILL grace period.
        router_timeout_s: bound on starting the router and on each control call.
        upstream_timeout_s: the router's timeout for one proxied request.
        lock_timeout_s: bound on waiting for another process changing the same placement.
    """

    def __init__(
        self,
        image_map: str | Path | Mapping[str, Any],
        runtime_dir: str | Path,
        *,
        python: str | None = None,
        drain_timeout_s: float = 30.0,
        stop_timeout_s: float = 5.0,
        router_timeout_s: float = 10.0,
        upstream_timeout_s: float = 60.0,
        lock_timeout_s: float = 120.0,
    ) -> None:
        self._image_map_source = image_map if isinstance(image_map, Mapping) else Path(image_map)
        self.runtime_dir = Path(runtime_dir)
        self.python = python or sys.executable
        self.drain_timeout_s = drain_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.router_timeout_s = router_timeout_s
        self.upstream_timeout_s = upstream_timeout_s
        self.lock_timeout_s = lock_timeout_s
        self._images: dict[str, ImageSpec] | None = None
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # -- the port --------------------------------------------------------------------------

    def deploy(self, placement: Placement, slot: Slot, image: str, timeout_s: float) -> str:
        """Run ``image`` in ``slot``, ready within ``timeout_s``; returns the slot's stable URL."""
        _check_placement(placement)
        slot = Slot(slot)
        spec = self.image_spec(image)
        with self._lock(placement):
            old = self._read_record(placement, slot)
            if old is not None and normalize_image(old.image) == normalize_image(image) and self._alive(old) and _probe(old.port, old.health, 2.0):
                self._set_upstreams(placement, {slot.value: old.url})
                return self._publish_slot(placement, slot, old.url)
            new = self._start(placement, slot, image, spec, timeout_s)
            self._write_record(new)
            self._set_upstreams(placement, {slot.value: new.url})
            url = self._publish_slot(placement, slot, new.url)
            if old is not None:
                self._retire(old)
            return url

    def slot_url(self, placement: Placement, slot: Slot) -> str | None:
        """The slot's stable URL (what ``deploy`` returned), when it was ever deployed."""
        stages = read_json(self.runtime_dir / ROUTER_STAGES)
        entry = stages.get(_slot_key(placement, Slot(slot)))
        return f"http://127.0.0.1:{entry['port']}" if isinstance(entry, dict) and "port" in entry else None

    def _publish_slot(self, placement: Placement, slot: Slot, upstream: str | None) -> str:
        """Point the slot's own router entry at ``upstream`` (``None``: it answers 503); its URL."""
        entry = self._control("PUT", f"/stages/{_slot_key(placement, slot)}", {"upstreams": {Slot.DIRECT.value: upstream}})
        return str(entry["url"])

    def route(self, placement: Placement, canary_weight: int) -> str:
        """Send ``canary_weight`` % of the stage's traffic to the canary; the stage's URL."""
        _check_placement(placement)
        if isinstance(canary_weight, bool) or not isinstance(canary_weight, int) or not 0 <= canary_weight <= 100:
            raise ValidationError("canary_weight", [f"expected an integer 0-100, found {canary_weight!r}"])
        with self._lock(placement):
            records = {s: r for s in Slot if (r := self._read_record(placement, s)) is not None and self._alive(r)}
            if canary_weight > 0 and Slot.CANARY not in records and Slot.DIRECT not in records:
                raise PermanentError(
                    f"cannot send {canary_weight}% of {_where(placement)}'s traffic to its canary: "
                    "no canary is running (deploy the canary slot first)"
                )
            upstreams = {s.value: (records[s].url if s in records else None) for s in Slot}
            stage = self._control("PUT", f"/stages/{_key(placement, '/')}", {"upstreams": upstreams, "canary_weight": canary_weight})
            return str(stage["url"])

    def scale_to_zero(self, placement: Placement, slot: Slot) -> None:
        """Stop ``slot``: take it out of the router, let its requests finish, stop it."""
        _check_placement(placement)
        slot = Slot(slot)
        with self._lock(placement):
            record = self._read_record(placement, slot)
            if self._router_url() is not None:
                self._set_upstreams(placement, {slot.value: None})
                if self.slot_url(placement, slot) is not None:
                    self._publish_slot(placement, slot, None)
            if record is not None:
                self._retire(record)

    # -- beyond the port: lifecycle for `sluice up` / `sluice down` ------------------------

    def stage_url(self, placement: Placement) -> str | None:
        """The stage's stable URL, when the router has ever served it."""
        stages = read_json(self.runtime_dir / ROUTER_STAGES)
        entry = stages.get(_key(placement, "/"))
        return f"http://127.0.0.1:{entry['port']}" if isinstance(entry, dict) and "port" in entry else None

    def status(self) -> list[SlotStatus]:
        """Every recorded slot (its stable URL) and whether its process is running and healthy."""
        found = []
        for record in self._records():
            healthy = self._alive(record) and _probe(record.port, record.health, 2.0)
            url = self.slot_url(record.placement, Slot(record.slot)) or record.url
            found.append(SlotStatus(record.placement, Slot(record.slot), record.image, url, "running" if healthy else "stopped"))
        return found

    def reconcile(self, restart: bool = True, timeout_s: float = 30.0) -> list[SlotStatus]:
        """Make what runs match the records after a crash; returns what it found and did.

        A recorded slot whose process is gone is started again with its recorded image (when
        ``restart``) or its record is removed; a live process is left alone. Then the router is
        started if needed and told every live slot, so each stage's and slot's URL serves again.
        Placements are reconciled in parallel, each under its lock.
        """
        placements = sorted({r.placement for r in self._records()}, key=lambda p: (p.project, p.stage, p.service))
        if not placements:
            return []
        from concurrent.futures import ThreadPoolExecutor  # here: only `sluice up` and the broker reconcile

        with ThreadPoolExecutor(max_workers=min(8, len(placements))) as pool:
            reports = list(pool.map(lambda p: self._reconcile_placement(p, restart, timeout_s), placements))
        return [status for report in reports for status in report]

    def _reconcile_placement(self, placement: Placement, restart: bool, timeout_s: float) -> list[SlotStatus]:
        """``reconcile`` for one placement, under its lock (a deploy in progress finishes first)."""
        report: list[SlotStatus] = []
        with self._lock(placement):
            live: dict[Slot, SlotRecord] = {}
            for slot in Slot:
                record = self._read_record(placement, slot)
                if record is None:
                    continue
                if self._alive(record):  # a live process is left alone, even a busy one
                    live[slot] = record
                    healthy = _probe(record.port, record.health, 2.0)
                    report.append(SlotStatus(placement, slot, record.image, record.url, "running" if healthy else "unresponsive"))
                    continue
                self._stop_process(record)
                if not restart:
                    self._delete_record(placement, slot)
                    report.append(SlotStatus(placement, slot, record.image, None, "stopped"))
                    continue
                try:
                    new = self._start(placement, slot, record.image, self.image_spec(record.image), timeout_s)
                except (PermanentError, ConfigurationError) as err:
                    self._delete_record(placement, slot)
                    report.append(SlotStatus(placement, slot, record.image, None, f"failed: {err}"))
                    continue
                self._write_record(new)
                live[slot] = new
                report.append(SlotStatus(placement, slot, new.image, new.url, "restarted"))
            if not report:
                return report
            self._set_upstreams(placement, {s.value: (live[s].url if s in live else None) for s in Slot})
            for slot in Slot:
                if slot in live or self.slot_url(placement, slot) is not None:
                    self._publish_slot(placement, slot, live[slot].url if slot in live else None)
        return [
            SlotStatus(r.placement, r.slot, r.image, self.slot_url(placement, r.slot) if r.url else None, r.state)
            for r in report
        ]

    def stop_all(self, forget: bool = False) -> list[SlotStatus]:
        """Stop the router and every recorded process. The slot records stay (``reconcile``
        starts them again) unless ``forget``; the stage and slot ports are kept either way."""
        self._stop_router()
        stopped = []
        for record in self._records():
            placement, slot = record.placement, Slot(record.slot)
            with self._lock(placement):
                self._stop_process(record)
                if forget:
                    self._delete_record(placement, slot)
                with contextlib.suppress(OSError):
                    Path(record.log).unlink()
            stopped.append(SlotStatus(placement, slot, record.image, None, "stopped"))
        stages_file = self.runtime_dir / ROUTER_STAGES
        stages = read_json(stages_file)
        if stages:
            for entry in stages.values():
                if isinstance(entry, dict):
                    entry["upstreams"] = {}
            write_json(stages_file, stages)
        return stopped

    # -- the image map ---------------------------------------------------------------------

    def image_spec(self, image: str) -> ImageSpec:
        """How ``image`` runs locally; ``PermanentError`` naming the known images if unknown."""
        images = self._load_images()
        spec = images.get(normalize_image(image))
        if spec is None:
            known = ", ".join(sorted(images)) or "(none)"
            raise PermanentError(
                f"unknown image {image!r} for the local backend: the image map {self._image_map_name()} "
                f"knows {known}; add an entry for it to run it locally"
            )
        return spec

    def _image_map_name(self) -> str:
        return str(self._image_map_source) if isinstance(self._image_map_source, Path) else "(given mapping)"

    def _load_images(self) -> dict[str, ImageSpec]:
        if self._images is not None:
            return self._images
        source = self._image_map_source
        base = Path.cwd()
        if isinstance(source, Path):
            import yaml  # imported here: only deploys need it

            base = source.resolve().parent
            try:
                data = yaml.safe_load(source.read_text())
            except OSError as err:
                raise ConfigurationError(f"image map {source}: cannot read it: {err}") from err
            except yaml.YAMLError as err:
                raise ConfigurationError(f"image map {source}: not valid YAML: {err}") from err
        else:
            data = source
        self._images = parse_image_map(data, self._image_map_name(), {"python": self.python, "dir": str(base)})
        return self._images

    # -- processes -------------------------------------------------------------------------

    def _start(self, placement: Placement, slot: Slot, image: str, spec: ImageSpec, timeout_s: float) -> SlotRecord:
        """Start ``spec`` on a free port and wait until it is ready (a lost port race is retried)."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        for attempt in range(3):
            try:
                return self._start_once(placement, slot, image, spec, timeout_s, deadline)
            except _PortTaken:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _start_once(
        self, placement: Placement, slot: Slot, image: str, spec: ImageSpec, timeout_s: float, deadline: float
    ) -> SlotRecord:
        port = free_port()
        argv = tuple(arg.replace("{port}", str(port)) for arg in spec.command)
        logs = self.runtime_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{_key(placement, '.')}.{slot.value}-{port}.log"
        what = f"image {image!r} in the {slot.value} slot of {_where(placement)}"
        try:
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError as err:
            raise PermanentError(f"{what}: cannot start {argv[0]!r}: {err}") from err
        self._children[proc.pid] = proc
        record = SlotRecord(
            project=placement.project,
            stage=placement.stage,
            service=placement.service,
            slot=slot.value,
            image=image,
            pid=proc.pid,
            start_ticks=start_ticks(proc.pid),
            port=port,
            url=f"http://127.0.0.1:{port}",
            health=spec.health,
            log=str(log_path),
            command=argv,
            started_at=time.time(),
        )
        while True:
            code = proc.poll()
            if code is not None:
                output = tail(log_path)
                if "address already in use" in output.lower():
                    raise _PortTaken(
                        f"{what}: port {port} was taken before the process could bind it; last output:\n{output}"
                    )
                raise PermanentError(
                    f"{what}: the process exited with code {code} before it was ready "
                    f"(command {list(argv)}); last output:\n{output}"
                )
            left = deadline - time.monotonic()
            if _probe(port, spec.health, max(0.1, min(1.0, left))):
                return record
            if time.monotonic() >= deadline:
                self._stop_process(record)
                raise PermanentError(
                    f"{what}: not ready within {timeout_s:g} s (GET {spec.health} on port {port} never "
                    f"answered 2xx; the process was stopped); last output:\n{tail(log_path)}"
                )
            time.sleep(_POLL_S)

    def _retire(self, record: SlotRecord) -> None:
        """Let the router finish the record's requests in flight, then stop it and forget it."""
        if self._router_url() is not None and self._alive(record):
            with contextlib.suppress(RetryableError):
                self._control(
                    "POST",
                    f"/stages/{_key(record.placement, '/')}/drain",
                    {"url": record.url, "timeout_s": self.drain_timeout_s},
                    timeout_s=self.drain_timeout_s + self.router_timeout_s,
                )
        self._stop_process(record)
        current = self._read_record(record.placement, Slot(record.slot))
        if current is not None and current.pid == record.pid:
            self._delete_record(record.placement, Slot(record.slot))
        with contextlib.suppress(OSError):
            Path(record.log).unlink()

    def _alive(self, record: SlotRecord) -> bool:
        return pid_alive(record.pid, record.start_ticks)

    def _stop_process(self, record: SlotRecord) -> None:
        terminate(record.pid, record.start_ticks, self.stop_timeout_s, self._children.pop(record.pid, None))

    # -- the router ------------------------------------------------------------------------

    def _router_url(self) -> str | None:
        """The control URL of a running, answering router, or ``None``."""
        info = read_json(self.runtime_dir / ROUTER_INFO)
        pid, url = info.get("pid"), info.get("control_url")
        if not isinstance(pid, int) or not isinstance(url, str) or not pid_alive(pid, None):
            return None
        port = int(url.rsplit(":", 1)[1])
        return url if _probe(port, "/health", 2.0) else None

    def ensure_router(self) -> str:
        """Start the router unless one answers; returns its control URL."""
        url = self._router_url()
        if url is not None:
            return url
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        with flock(self.runtime_dir / "router.lock", self.lock_timeout_s, "the router"):
            url = self._router_url()
            if url is not None:
                return url
            info = read_json(self.runtime_dir / ROUTER_INFO)
            if isinstance(info.get("pid"), int):  # recorded but not answering: stuck or gone
                terminate(info["pid"], None, self.stop_timeout_s, None)
            log_path = self.runtime_dir / "router.log"
            argv = [
                self.python, "-m", "sluice.embedded.router",
                "--runtime-dir", str(self.runtime_dir.resolve()),
                "--upstream-timeout-s", str(self.upstream_timeout_s),
            ]  # fmt: skip
            try:
                with open(log_path, "ab") as log:
                    proc = subprocess.Popen(
                        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
            except OSError as err:
                raise PermanentError(f"cannot start the local router ({argv}): {err}") from err
            self._children[proc.pid] = proc
            deadline = time.monotonic() + self.router_timeout_s
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise PermanentError(
                        f"the local router exited with code {proc.returncode} at start; last output:\n{tail(log_path)}"
                    )
                info = read_json(self.runtime_dir / ROUTER_INFO)
                if info.get("pid") == proc.pid and (url := self._router_url()) is not None:
                    return url
                time.sleep(_POLL_S)
            terminate(proc.pid, None, self.stop_timeout_s, self._children.pop(proc.pid, None))
            raise PermanentError(
                f"the local router did not answer within {self.router_timeout_s:g} s; last output:\n{tail(log_path)}"
            )

    def _stop_router(self) -> None:
        info = read_json(self.runtime_dir / ROUTER_INFO)
        pid = info.get("pid")
        if isinstance(pid, int):
            terminate(pid, None, self.stop_timeout_s + 10, self._children.pop(pid, None))
        with contextlib.suppress(OSError):
            (self.runtime_dir / ROUTER_INFO).unlink()

    def _set_upstreams(self, placement: Placement, upstreams: dict[str, str | None]) -> dict[str, Any]:
        return self._control("PUT", f"/stages/{_key(placement, '/')}", {"upstreams": upstreams})

    def _control(self, method: str, path: str, body: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
        url = self.ensure_router()
        port = int(url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s or self.router_timeout_s)
        try:
            conn.request(method, path, body=json.dumps(body), headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as err:
            raise RetryableError(f"the local router at {url} did not answer {method} {path}: {err}") from err
        finally:
            conn.close()
        try:
            data = json.loads(payload or b"{}")
        except ValueError as err:
            raise RetryableError(f"the local router answered {method} {path} with non-JSON: {payload[:200]!r}") from err
        if response.status >= 400:
            error = data.get("error") if isinstance(data, dict) else data
            raise PermanentError(f"the local router refused {method} {path}: {response.status} {error}")
        return data if isinstance(data, dict) else {}

    # -- records and locks -----------------------------------------------------------------

    def _record_path(self, placement: Placement, slot: Slot) -> Path:
        return self.runtime_dir / "slots" / f"{_key(placement, '.')}.{slot.value}.json"

    def _read_record(self, placement: Placement, slot: Slot) -> SlotRecord | None:
        return _parse_record(read_json(self._record_path(placement, slot)))

    def _write_record(self, record: SlotRecord) -> None:
        path = self._record_path(record.placement, Slot(record.slot))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, asdict(record))

    def _delete_record(self, placement: Placement, slot: Slot) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._record_path(placement, slot).unlink()

    def _records(self) -> list[SlotRecord]:
        folder = self.runtime_dir / "slots"
        if not folder.is_dir():
            return []
        found = (_parse_record(read_json(p)) for p in sorted(folder.glob("*.json")))
        return [r for r in found if r is not None]

    @contextlib.contextmanager
    def _lock(self, placement: Placement) -> Iterator[None]:
        path = self.runtime_dir / "locks" / f"{_key(placement, '.')}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with flock(path, self.lock_timeout_s, _where(placement)):
            yield


class _PortTaken(PermanentError):
    """Another process bound the chosen port first (retried with a new port)."""


# -- the image map ---------------------------------------------------------------------------


def normalize_image(image: str) -> str:
    """A reference in its full form: ``carts:1`` → ``docker.io/library/carts:1``;
    ``keptnexamples/carts:0.10.2`` → ``docker.io/keptnexamples/carts:0.10.2``; no tag → ``:latest``."""
    ref = image.strip()
    first, sep, _rest = ref.partition("/")
    if not sep:
        ref = f"docker.io/library/{ref}"
    elif not ("." in first or ":" in first or first == "localhost"):
        ref = f"docker.io/{ref}"
    if "@" not in ref and ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    return ref


def parse_image_map(data: Any, name: str, placeholders: Mapping[str, str]) -> dict[str, ImageSpec]:
    """Validate an image map document; ``ConfigurationError`` listing every problem."""
    if not isinstance(data, Mapping) or not isinstance(data.get("images"), Mapping):
        raise ConfigurationError(f"image map {name}: expected a mapping with an 'images' mapping, found {data!r:.200}")
    problems: list[str] = []
    specs: dict[str, ImageSpec] = {}
    for image, entry in data["images"].items():
        if not isinstance(entry, Mapping):
            problems.append(f"{image}: expected a mapping with 'command', found {entry!r}")
            continue
        command = entry.get("command")
        health = entry.get("health", "/health")
        unknown = sorted(set(entry) - {"command", "health"})
        if unknown:
            problems.append(f"{image}: unknown keys {unknown} (expected command, health)")
        if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
            problems.append(f"{image}: 'command' must be a non-empty list of strings, found {command!r}")
            continue
        if not isinstance(health, str) or not health.startswith("/"):
            problems.append(f"{image}: 'health' must be a path starting with '/', found {health!r}")
            continue
        if not any("{port}" in a for a in command):
            problems.append(f"{image}: 'command' never uses {{port}}, so the process cannot be reached")
            continue
        expanded = []
        for arg in command:
            for key, value in placeholders.items():
                arg = arg.replace("{" + key + "}", value)
            expanded.append(arg)
        specs[normalize_image(str(image))] = ImageSpec(str(image), tuple(expanded), health)
    if problems:
        raise ConfigurationError(f"image map {name}: " + "; ".join(problems))
    return specs


# -- helpers ---------------------------------------------------------------------------------


def _check_placement(placement: Placement) -> None:
    problems = [
        f"{field} must be a DNS label (lowercase letters, digits, '-'), found {value!r}"
        for field, value in (("project", placement.project), ("stage", placement.stage), ("service", placement.service))
        if dns_label_problem(field, value) is not None
    ]
    if problems:
        raise ValidationError("placement", problems)


def _key(placement: Placement, sep: str) -> str:
    return sep.join((placement.project, placement.stage, placement.service))


def _slot_key(placement: Placement, slot: Slot) -> str:
    """The router entry of one slot: ``<project>/<stage>/<service>--<slot>`` (a DNS label, so a
    long service name is shortened with a hash to stay within 63 characters)."""
    name = f"{placement.service}--{slot.value}"
    if len(name) > 63:
        import hashlib

        digest = hashlib.sha256(placement.service.encode()).hexdigest()[:6]
        name = f"{placement.service[: 63 - len(slot.value) - 9]}-{digest}--{slot.value}"
    return f"{placement.project}/{placement.stage}/{name}"


def _where(placement: Placement) -> str:
    return f"{placement.service} in {placement.project}/{placement.stage}"


def _probe(port: int, path: str, timeout_s: float) -> bool:
    """Whether ``GET http://127.0.0.1:<port><path>`` answers 2xx within ``timeout_s``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return 200 <= response.status < 300
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _parse_record(data: dict[str, Any]) -> SlotRecord | None:
    if not data:
        return None
    try:
        return SlotRecord(**{**data, "command": tuple(data.get("command", ()))})
    except TypeError:
        return None
