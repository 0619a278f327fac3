"""Runs: sources through a predictor into an output folder (what ``openpose-lite infer`` is a shell over).

::

    predictor = BottomUpPredictor.from_weights("best.pt")
    summary = run(predictor, ["photos/", "clip.mp4"], RunOptions(output=Path("out"), weights=Path("best.pt")))

:class:`Job` refuses bad sources, options and folders before the model loads; the library logs and
prints nothing (``progress`` gets each :class:`Progress`). Over a Ray cluster (the ``ray`` extra):
:func:`run_on_ray`, each worker building the predictor once from a :class:`PredictorRecipe`.
"""

from openpose_lite.runs.job import Job, run
from openpose_lite.runs.options import LiveStats, Progress, RunOptions, RunStopped, RunSummary
from openpose_lite.runs.ray_run import PredictorRecipe, RayOptions, run_on_ray
from openpose_lite.runs.sources import Source, Sources

__all__ = ["Job", "LiveStats", "PredictorRecipe", "Progress", "RayOptions", "RunOptions", "RunStopped", "RunSummary",
           "Source", "Sources", "run", "run_on_ray"]
