"""Where models run, and in which precision: one rule for every entry point (training, inference, benchmarks)."""

from __future__ import annotations

import logging

import torch

__all__ = ["PRECISIONS", "THREADS_HELP", "autocast_dtype", "cpu_computes_bf16", "cpu_computes_int8", "cpu_description",
           "cpu_model_name", "resolve_device", "resolve_precision", "set_threads"]

logger = logging.getLogger(__name__)


def resolve_device(name: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"``/``None`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a device -> a device.

    Under DDP on GPUs, ``"auto"`` and ``"cuda"`` pick ``cuda:<local_rank>`` (one GPU per
    process). Asking for CUDA where there is none is a ValueError, not a silent CPU run.
    """
    if name is None:
        name = "auto"
    elif isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str) or not (name in ("auto", "cpu", "cuda") or name.startswith("cuda:")):
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available (torch {torch.__version__}); use 'cpu' or 'auto'")
    if name in ("auto", "cuda"):
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    index = int(name.split(":", 1)[1])
    if index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA devices are visible")
    return torch.device("cuda", index)


# --------------------------------------------------------------------------------- threads
THREADS_HELP = ("CPU threads of the network: torch's intra-op threads, which the OpenVINO backend takes too "
                "(0: torch's default, one per core). On a CPU shared with other jobs fewer threads are often "
                "faster (docs/cli.md#threads)")


def set_threads(threads: int) -> int:
    """Set the CPU threads the networks compute with; returns the number in effect.

    ``threads`` >= 1 is torch's intra-op thread count (``torch.set_num_threads``), which the
    OpenVINO runtime follows (:mod:`openpose_lite.inference.openvino_runner` reads
    ``torch.get_num_threads()`` when it compiles a network, so call this first); 0 leaves torch's
    default (one thread per core, or ``OMP_NUM_THREADS``). The one meaning of every ``--threads``
    option (infer, eval, train, bench). Raises ValueError for a negative or non-integer count.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads: expected an integer >= 0 (0: torch's default), got {threads!r}")
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


# ------------------------------------------------------------------------------- precision
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
# CPU flags (Linux /proc/cpuinfo) of instructions that compute bfloat16 products natively; without
# them oneDNN emulates bf16 and autocast runs slower than float32.
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# ... and of the int8 dot products that make int8 convolutions pay (VNNI, AMX).
_CPU_INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def _cpuinfo_field(key: str) -> str | None:
    """The value of the first ``key`` line of /proc/cpuinfo (Linux), or None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(key):
                    return line.split(":", 1)[1]
    except OSError:
        pass
    return None


def _cpu_flags() -> set[str]:
    return set((_cpuinfo_field("flags") or "").split())


def cpu_computes_bf16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16)."""
    return any(flag in _cpu_flags() for flag in _CPU_BF16_FLAGS)


def cpu_computes_int8() -> bool:
    """Whether this CPU has int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX-INT8).

    Without them int8 convolutions still run (AVX2 multiply-add pairs) but gain much less over
    float32, so ``auto`` precisions only choose int8 where these are present.
    """
    return any(flag in _cpu_flags() for flag in _CPU_INT8_FLAGS)


def cpu_model_name() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown CPU" where there is none)."""
    name = _cpuinfo_field("model name")
    return name.strip() if name is not None else "unknown CPU"


def cpu_description() -> str:
    """The CPU model and the flags that decide its fast precisions, e.g. ``"AMD EPYC (avx2 avx512_bf16 avx512_vnni)"``."""
    flags = _cpu_flags()
    shown = [f for f in ("avx2", "avx512f", *_CPU_BF16_FLAGS, *_CPU_INT8_FLAGS, "amx_tile") if f in flags]
    return f"{cpu_model_name()} ({' '.join(shown) or 'none of avx2, avx512, bf16, vnni, amx'})"


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision to run on ``device``: ``fp32``, ``bf16`` (CPU autocast) or ``fp16`` (CUDA autocast).

    ``auto`` picks the fastest one the device runs natively (CUDA: fp16; CPU: bf16 where the CPU
    computes it natively, else fp32) and logs its choice. A precision the device cannot run
    natively is a ValueError saying why, instead of an emulated, slower run.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    if device.type == "cuda":
        supported = {"fp32", "fp16"} | ({"bf16"} if torch.cuda.is_bf16_supported() else set())
        fastest = "fp16"
    else:
        native = cpu_computes_bf16()
        supported = {"fp32"} | ({"bf16"} if native else set())
        fastest = "bf16" if native else "fp32"
    if precision == "auto":
        why = "" if fastest != "fp32" else " (this CPU has no native bf16: neither avx512_bf16 nor amx_bf16)"
        logger.info("precision auto: %s on %s%s", fastest, device, why)
        return fastest
    if precision not in supported:
        if device.type == "cpu" and precision == "bf16":
            raise ValueError("precision bf16: this CPU does not compute bfloat16 natively (no avx512_bf16 or "
                             "amx_bf16 flag), so it would run emulated and slower; use fp32 (or auto)")
        if device.type == "cpu" and precision == "fp16":
            raise ValueError("precision fp16: float16 needs a CUDA device; on a CPU use bf16 (where supported) or fp32")
        raise ValueError(f"precision {precision}: not supported natively on {device}; supported: {sorted(supported)}")
    return precision


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (None: plain float32)."""
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
