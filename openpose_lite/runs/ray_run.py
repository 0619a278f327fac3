"""A run spread over a Ray cluster: ``openpose-lite infer SOURCES --ray [ADDRESS]``, or :func:`run_on_ray`
(docs/scale_out.md).

The driver takes the output folder as a local run does and hands units of work
(:func:`~openpose_lite.runs.sources.sequence_units`) to Ray Data actors, each building the predictor
once and running its units as a local run does, writing their per-image files; the driver takes a
unit's index entries and failures once the whole unit is back, and writes the index at the end.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
import typing
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openpose_lite.io import file_problem
from openpose_lite.params import Params
from openpose_lite.runs.job import Job, open_run, process_inputs, stopped_run, summary_of
from openpose_lite.runs.options import Progress, Reporter, RunOptions, RunSummary
from openpose_lite.runs.outputs import InferRun, entry_order
from openpose_lite.runs.sources import Input, Source, Sources, frames_to_read, sequence_units

if TYPE_CHECKING:
    from openpose_lite.inference import PredictorOptions
    from openpose_lite.skeleton import Skeleton

__all__ = ["EXTRA_INSTALL", "PredictorRecipe", "RayOptions", "RayUnavailableError", "import_ray", "run_job_on_ray",
           "run_on_ray"]

EXTRA_INSTALL = "pip install 'openpose-lite[ray]'"


class RayUnavailableError(ValueError, ImportError):
    """Ray (with Ray Data) is not installed or does not import; the message says how to install it."""


def import_ray() -> Any:
    """The ``ray`` module with ``ray.data`` imported, or a :class:`RayUnavailableError` naming the extra."""
    try:
        import ray
        import ray.data  # noqa: F401 - the extra's other half (pyarrow)
    except Exception as exc:  # noqa: BLE001 - missing, or a broken install: the same advice
        raise RayUnavailableError(f"--ray needs Ray Data, which does not import here ({type(exc).__name__}: {exc}); "
                                  f"install it with {EXTRA_INSTALL}") from None
    return ray


@dataclass(frozen=True)
class PredictorRecipe:
    """What each worker builds its predictor from: ``weights`` (a file every node sees at this path),
    ``options`` (:class:`~openpose_lite.inference.PredictorOptions`; None: the defaults), CMU's ``hand``
    and ``face`` networks, and ``threads`` per worker (0: one per CPU the worker holds)."""

    weights: Path
    options: PredictorOptions | None = None
    hand: Path | None = None
    face: Path | None = None
    threads: int = 0

    def skeleton(self, loaded: Any = None) -> Skeleton:
        """The skeleton the predictor finds, checked on the driver before any worker starts: ValueError
        naming a weights, hand or face file that cannot be read. ``loaded``: the weights, already read."""
        from openpose_lite.inference import load_for_inference

        for option, path in (("--hand", self.hand), ("--face", self.face)):
            problem = None if path is None else file_problem(path)
            if problem is not None:
                raise ValueError(f"{option} {path}: " + ("not found" if problem == "not found" else
                                                           f"is {problem}, not a weights file"))
        return (loaded or load_for_inference(Path(self.weights))).skeleton

    def build(self) -> Any:
        """The predictor, with the hand and face networks on its people."""
        from openpose_lite.inference import PredictorOptions, build_predictor, load_for_inference
        from openpose_lite.inference.hands_faces import with_hands_faces

        options = self.options if self.options is not None else PredictorOptions()
        predictor = build_predictor(load_for_inference(Path(self.weights)), options)
        # as `infer --hand/--face` runs them: on the body model's runtime
        return with_hands_faces(predictor, self.hand, self.face, calibration=options.calibration,
                                device=options.device, backend=options.backend, precision=options.precision)


@dataclass(frozen=True)
class RayOptions(Params):
    """Where and how wide a run spreads (checked on creation: ValueError).

    ``address``: the cluster (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``; None: a local Ray). ``workers``
    (None: as many as the cluster's GPUs, else CPUs, hold), each with ``cpus_per_worker`` and
    ``gpus_per_worker`` (None: one where the cluster has GPUs and the device is not ``cpu``).
    ``units_per_task``: units per Ray task. ``attempts``: runs of the units left when workers are lost.
    """

    _section: typing.ClassVar[str] = "RayOptions"

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None
    units_per_task: int = 4
    attempts: int = 3

    def _check(self) -> None:
        self._require(self.workers is None or self.workers >= 1, "workers", "an integer >= 1")
        self._require(self.cpus_per_worker > 0, "cpus_per_worker", "a positive number")
        self._require(self.gpus_per_worker is None or self.gpus_per_worker >= 0, "gpus_per_worker", "a number >= 0")
        self._require(self.units_per_task >= 1, "units_per_task", "an integer >= 1")
        self._require(self.attempts >= 1, "attempts", "an integer >= 1")


class _PoseWorker:
    """A Ray Data actor: builds the predictor once, then runs units of work (rows: ``unit``, a unit's inputs
        as JSON) into the output folder; returns one JSON record per entry, failure and unit done."""

    def __init__(self, recipe: PredictorRecipe, options: RunOptions, threads: int) -> None:
        from openpose_lite.devices import set_threads

        set_threads(threads)  # before the runtime is built: the OpenVINO one reads torch's thread count
        self.predictor = recipe.build()
        self.options = options

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        records: list[str] = []
        for text in batch["unit"]:
            records.extend(self._unit(json.loads(str(text))))
        return {"record": records}

    def _unit(self, unit: dict) -> list[str]:
        import ray

        rows = unit["inputs"]  # [position in the run, kind, path, sequence or "", output name]
        inputs = [Input(kind, Path(path), Path(sequence) if sequence else None) for _, kind, path, sequence, _ in rows]
        run = InferRun(self.options.output, frozenset(self.options.writers), [(i.kind, i.path) for i in inputs],
                       [row[4] for row in rows])
        skipped: list[bool] = []
        # the driver counts the frames of the whole run; a unit's report only keeps what its failures skipped
        process_inputs(self.options, inputs, self.predictor, run,
                       Reporter(lambda p: skipped.append(p.skipped) if p.failure is not None else None, None))
        where = [row[0] for row in rows]
        records = [{"entry": {**entry, "input": where[entry["input"]]}} for entry in run.entries]
        records += [{"failure": message, "input": None if n is None else where[n], "skipped": s}
                    for (message, n), s in zip(run.failures, skipped)]
        records.append({"done": unit["unit"], "written": dict(run.written),
                        "worker": ray.get_runtime_context().get_actor_id()})
        return [json.dumps(r, separators=(",", ":")) for r in records]


def _connect(ray: Any, address: str | None) -> bool:
    """Join the cluster at ``address``, or start a local Ray; whether this call started it (and ends it)."""
    if ray.is_initialized():
        return False
    # Ray's own messages at warning and above, or what the caller set for its logger
    level = logging.getLogger("ray").level or logging.WARNING
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": level}
    try:
        if address is None:
            ray.init(num_cpus=os.cpu_count(), **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise ValueError(f"--ray: cannot start or join {where}: {str(exc).splitlines()[0]}") from None
    return True


def _error_line(exc: BaseException) -> str:
    """The last line of a Ray error's text (the worker's exception type and message), colours removed."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _lost_worker_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """The errors of a worker lost (its process, its node) rather than of the work it ran."""
    ex = ray.exceptions
    return tuple(getattr(ex, name) for name in ("RayActorError", "WorkerCrashedError", "NodeDiedError",
                                                "ObjectLostError", "OwnerDiedError") if hasattr(ex, name))


def _pool_size(ray: Any, recipe: PredictorRecipe, ray_options: RayOptions) -> tuple[int, float, float]:
    """(workers, CPUs each, GPUs each) for the cluster as it is now."""
    resources = ray.cluster_resources()
    device = str(getattr(recipe.options, "device", None) or "auto")
    gpus = ray_options.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if resources.get("GPU", 0) >= 1 and device != "cpu" else 0.0
    workers = ray_options.workers
    if workers is None:
        held = resources.get("GPU", 0) / gpus if gpus else resources.get("CPU", 1) / ray_options.cpus_per_worker
        workers = max(1, int(held))
    return workers, ray_options.cpus_per_worker, gpus


def run_on_ray(recipe: PredictorRecipe, sources: Sources | Sequence[Source], options: RunOptions,
               ray_options: RayOptions = RayOptions(), progress: Callable[[Progress], None] | None = None,
               loaded: Any = None) -> RunSummary:
    """Run the predictor ``recipe`` describes over ``sources`` into ``options.output`` on a Ray cluster,
    writing what :func:`~openpose_lite.runs.run` writes. ``loaded``: the recipe's weights, already read.

    Raises ValueError for what is refused (before Ray starts), :class:`RayUnavailableError` without the
    ``ray`` extra, :class:`~openpose_lite.runs.options.RunStopped` for a run that stopped (Ctrl-C, SIGTERM,
    a full disk, the cluster lost, workers lost more than ``attempts`` times).
    """
    return run_job_on_ray(recipe, Job(sources, options), ray_options, progress, loaded)


def run_job_on_ray(recipe: PredictorRecipe, job: Job, ray_options: RayOptions = RayOptions(),
                   progress: Callable[[Progress], None] | None = None, loaded: Any = None) -> RunSummary:
    """:func:`run_on_ray` of a :class:`~openpose_lite.runs.job.Job` built before the weights were read, so
    that its refusals (the folder, the output, the options) come first."""
    ray = import_ray()
    if job.sources.live is not None:
        raise ValueError("--ray runs files, folders and videos; a camera or stream is read by one process")
    skeleton = recipe.skeleton(loaded)  # files that cannot be read are refused before Ray starts
    started = _connect(ray, ray_options.address)
    try:
        with open_run(job, skeleton) as (run, inputs):
            summary = _Driver(ray, recipe, job.options, ray_options, run, inputs, progress).drive()
            job.folder.remove_stale_temp_files()  # writes a lost worker had begun
            return summary
    finally:
        if started:
            ray.shutdown()


class _Driver:
    """The driver's side of a run: the units handed out, their records taken as whole units come back."""

    def __init__(self, ray: Any, recipe: PredictorRecipe, options: RunOptions, ray_options: RayOptions,
                 run: InferRun, inputs: list[Input], progress: Callable[[Progress], None] | None) -> None:
        self.ray, self.recipe, self.options, self.ray_options = ray, recipe, options, ray_options
        self.run, self.inputs = run, inputs
        self.units = sequence_units(inputs, options.tracking is not None)
        self.report = Reporter(progress, frames_to_read(inputs))
        self.done: set[int] = set()
        self.pending: dict[int, list[dict]] = {}  # records of units not yet whole
        self.alive, self.alive_asked = None, 0.0
        self.ran: set[str] = set()  # the workers that did units

    def _row(self, k: int) -> dict[str, str]:
        rows = [[n, self.inputs[n].kind, str(self.inputs[n].path), str(self.inputs[n].sequence or ""),
                 self.run.names[n]] for n in self.units[k]]
        return {"unit": json.dumps({"unit": k, "inputs": rows})}

    def _take(self, record: dict) -> None:
        """One record from a worker; a unit's are kept once it is whole (its ``done`` record came)."""
        if "done" not in record:
            self.pending.setdefault(record["input"] if "entry" not in record else record["entry"]["input"],
                                    []).append(record)
            return
        k = record["done"]
        positions = self.units[k]
        records = [r for n in positions for r in self.pending.pop(n, [])]
        if k in self.done:  # a unit run twice: its files were rewritten with the same contents
            return
        self.done.add(k)
        self.ran.add(record["worker"])
        self.run.written.update(Counter(record["written"]))
        self.report.workers = self._alive()
        for entry in sorted((r["entry"] for r in records if "entry" in r), key=entry_order):
            self.run.entries.append(entry)
            self.report.advance()
        for r in records:
            if "failure" in r:
                self.run.failures.append((r["failure"], r["input"]))
                self.report.failure(r["failure"], r["skipped"])

    def _alive(self) -> int | None:
        """How many of the run's actors are alive, asked of the cluster at most once a second (None: not told)."""
        if time.monotonic() - self.alive_asked >= 1.0:
            self.alive_asked = time.monotonic()
            try:
                from ray._private import state  # the one way to list actors without the dashboard

                job = self.ray.JobID.from_hex(self.ray.get_runtime_context().get_job_id())
                table = state.actors(job_id=job, actor_state_name="ALIVE")
                self.alive = sum(_PoseWorker.__name__ in str(a.get("ActorClassName", "")) for a in table.values())
            except Exception:  # noqa: BLE001 - a count for the progress bar, never a reason to stop
                self.alive = None
        return self.alive

    def _dataset(self, todo: list[int]) -> Any:
        workers, cpus, gpus = _pool_size(self.ray, self.recipe, self.ray_options)
        per_task = max(1, min(self.ray_options.units_per_task, len(todo) // workers))  # few units: one each
        tasks = math.ceil(len(todo) / per_task)
        workers = min(workers, tasks)
        threads = self.recipe.threads or max(1, int(cpus))
        data = self.ray.data.from_items([self._row(k) for k in todo], override_num_blocks=tasks)
        return data.map_batches(
            _PoseWorker, fn_constructor_kwargs={"recipe": self.recipe, "options": self.options, "threads": threads},
            compute=self.ray.data.ActorPoolStrategy(min_size=1, max_size=workers, initial_size=workers),
            num_cpus=cpus, num_gpus=gpus or None, batch_size=per_task, batch_format="numpy")

    def drive(self) -> RunSummary:
        lost = _lost_worker_errors(self.ray)
        context = self.ray.data.DataContext.get_current()
        bars, context.enable_progress_bars = context.enable_progress_bars, False  # the callback reports the run
        try:
            for attempt in range(self.ray_options.attempts):
                todo = [k for k in range(len(self.units)) if k not in self.done]
                if not todo:
                    break
                self.pending.clear()  # what a lost pool left half-returned is run again
                try:
                    for batch in self._dataset(todo).iter_batches(batch_size=None, batch_format="numpy"):
                        for text in batch["record"]:
                            self._take(json.loads(str(text)))
                except lost as exc:
                    if getattr(exc, "actor_init_failed", False):  # the predictor cannot be built: no retry helps
                        raise stopped_run(self.run, RuntimeError(_error_line(exc)), "stopped: a worker could not "
                                          "build the predictor (", ")", workers=self._ran()) from None
                    if attempt + 1 == self.ray_options.attempts:
                        raise stopped_run(self.run, RuntimeError(_error_line(exc)), "stopped: workers lost in "
                                          f"{attempt + 1} runs of the units left (", ")", workers=self._ran()) from None
            self.run.write_index()
        except (KeyboardInterrupt, OSError) as exc:  # Ctrl-C, SIGTERM, a full disk on the driver
            raise stopped_run(self.run, exc, workers=self._ran()) from None
        except self.ray.exceptions.RayError as exc:  # the cluster lost, a worker's disk full ...
            raise stopped_run(self.run, RuntimeError(_error_line(exc)), "stopped: ", workers=self._ran()) from None
        finally:
            context.enable_progress_bars = bars
        return summary_of(self.run, self._ran())

    def _ran(self) -> int:
        return max(1, len(self.ran))
