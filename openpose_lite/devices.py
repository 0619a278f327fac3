"""Where models run, and in which precision: one rule for every entry point (training, inference, benchmarks)."""

from __future__ import annotations

import logging
import os

import torch

__all__ = ["PRECISIONS", "THREADS_HELP", "autocast_dtype", "cpu_computes_bf16", "cpu_computes_int8", "cpu_description",
           "onednn_isa_cap", "resolve_device", "resolve_precision", "set_threads"]

logger = logging.getLogger(__name__)


def resolve_device(name: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"``/``None`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a device -> a device.
    Under DDP, ``"auto"`` and ``"cuda"`` pick ``cuda:<local_rank>``. CUDA where there is none is a ValueError."""
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
    """Set torch's intra-op thread count, which the OpenVINO runtime takes when it compiles a network (so call
    this first); 0 leaves torch's default (one per core, or ``OMP_NUM_THREADS``). Returns the number in effect.
    The one meaning of every ``--threads`` option (infer, eval, train, bench)."""
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


# oneDNN (torch's and OpenVINO's CPU kernels) dispatches to no ISA above ``ONEDNN_MAX_CPU_ISA``
# (older name ``DNNL_MAX_CPU_ISA``): a flag the CPU has is no use beyond that cap. The values are
# oneDNN's ``dnnl_cpu_isa_t`` bit masks (oneDNN docs: "CPU Dispatcher Control", enum dnnl_cpu_isa_t),
# in which an ISA is available under a cap when its bits are a subset of the cap's.
_ONEDNN_ISA_MASKS = {"SSE41": 0x1, "AVX": 0x3, "AVX2": 0x7, "AVX2_VNNI": 0xF, "AVX2_VNNI_2": 0x1F,
                     "AVX512_CORE": 0x27, "AVX512_CORE_VNNI": 0x67, "AVX512_CORE_BF16": 0xE7,
                     "AVX10_1_512": 0x1EF, "AVX512_CORE_FP16": 0x1EF, "AVX10_1_512_AMX": 0xFEF,
                     "AVX512_CORE_AMX": 0xFEF, "AVX10_1_512_AMX_FP16": 0x1FEF, "AVX512_CORE_AMX_FP16": 0x1FEF}
# The oneDNN ISA each flag below comes with.
_FLAG_ISA = {"avx512_bf16": "AVX512_CORE_BF16", "amx_bf16": "AVX512_CORE_AMX", "avx512_vnni": "AVX512_CORE_VNNI",
             "avx_vnni": "AVX2_VNNI", "amx_int8": "AVX512_CORE_AMX", "amx_tile": "AVX512_CORE_AMX",
             "avx512f": "AVX512_CORE"}


def onednn_isa_cap() -> str | None:
    """The ISA oneDNN is capped at by ``ONEDNN_MAX_CPU_ISA`` (or ``DNNL_MAX_CPU_ISA``), None where uncapped."""
    value = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    return value if value in _ONEDNN_ISA_MASKS else None


def _cpu_flags() -> set[str]:
    """The CPU's flags (/proc/cpuinfo), less those of ISAs above oneDNN's cap (:func:`onednn_isa_cap`)."""
    flags = set((_cpuinfo_field("flags") or "").split())
    cap = onednn_isa_cap()
    if cap is None:
        return flags
    allowed = _ONEDNN_ISA_MASKS[cap]
    return {f for f in flags if f not in _FLAG_ISA or _ONEDNN_ISA_MASKS[_FLAG_ISA[f]] & allowed == _ONEDNN_ISA_MASKS[_FLAG_ISA[f]]}


def cpu_computes_bf16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16)."""
    return any(flag in _cpu_flags() for flag in _CPU_BF16_FLAGS)


def cpu_computes_int8() -> bool:
    """Whether this CPU has int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX-INT8): without them
    int8 convolutions still run (AVX2) but gain much less over float32, so ``auto`` chooses int8 only with them."""
    return any(flag in _cpu_flags() for flag in _CPU_INT8_FLAGS)


def cpu_description() -> str:
    """The CPU model and the flags that decide its fast precisions, e.g. ``"AMD EPYC (avx2 avx512_bf16 avx512_vnni)"``."""
    flags = _cpu_flags()
    shown = [f for f in ("avx2", "avx512f", *_CPU_BF16_FLAGS, *_CPU_INT8_FLAGS, "amx_tile") if f in flags]
    capped = f", oneDNN capped at {onednn_isa_cap()}" if onednn_isa_cap() else ""
    name = (_cpuinfo_field("model name") or "unknown CPU").strip()
    return f"{name} ({' '.join(shown) or 'none of avx2, avx512, bf16, vnni, amx'}{capped})"


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision to run on ``device``: ``fp32``, ``bf16`` (CPU autocast) or ``fp16`` (CUDA autocast).

    ``auto`` picks (and logs) the fastest one the device runs natively: CUDA fp16, else bf16 where the CPU
    computes it, else fp32. A precision the device cannot run natively is a ValueError, not an emulated run.
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
