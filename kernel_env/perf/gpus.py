"""The GPUs the roofline model can price for, with the figures it needs and where each comes from.

Peaks are dense (NVIDIA's datasheets print tensor-core figures "with sparsity"; dense is half of that).
Tensor peaks for FP16/BF16 are with FP32 accumulation, which is what ``tl.dot`` and torch use.
Figures marked *estimate* are not in any datasheet; the model's docstring (``roofline.py``) says why
they are needed and how rough they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

T = 1e12


@dataclass(frozen=True)
class GPU:
    name: str
    hbm_bandwidth: float  # bytes/s, device memory peak
    l2_bandwidth: float  # bytes/s, L2 to SMs (estimate for every part)
    l2_bytes: int
    sms: int
    peaks: Mapping[str, float] = field(default_factory=dict)  # FLOP/s per precision; "fp32" = CUDA cores
    launch_s: float = 3e-6  # a kernel launch seen by CUDA events, back to back (estimate)
    l1_bytes: int = 256 << 10  # per SM, shared with shared memory
    max_blocks_per_sm: int = 32  # CUDA C++ Programming Guide, "Technical Specifications per Compute Capability"
    max_warps_per_sm: int = 64

    def peak(self, precision: str) -> float:
        """FLOP/s for ``precision``; one this part lacks (FP8 on A100) runs at the next wider one."""
        for p in FALLBACK.get(precision, (precision,)):
            if p in self.peaks:
                return self.peaks[p]
        return self.peaks["fp32"]


#: Where a precision runs when a part has no units for it: the next wider format it does have.
FALLBACK = {"fp8": ("fp8", "fp16"), "int8": ("int8", "fp16"), "tf32": ("tf32", "fp32"), "bf16": ("bf16", "fp16"),
            "fp16": ("fp16",), "fp64": ("fp64",), "fp32": ("fp32",)}

GPUS: dict[str, GPU] = {
    # NVIDIA H100 Tensor Core GPU datasheet (H100 SXM column): FP64 34, FP32 67, TF32 989*, BF16/FP16
    # 1,979*, FP8 3,958*, INT8 3,958* TFLOPS/TOPS (* with sparsity), 3.35 TB/s HBM3. SM count (132),
    # L2 (50 MB) and L1/shared (256 KB per SM): NVIDIA H100 Tensor Core GPU Architecture whitepaper.
    "H100": GPU("H100", hbm_bandwidth=3.35 * T, l2_bandwidth=5.5 * T, l2_bytes=50 << 20, sms=132,
                peaks={"fp64": 34 * T, "fp32": 67 * T, "tf32": 494.5 * T, "fp16": 989.5 * T, "bf16": 989.5 * T,
                       "fp8": 1979 * T, "int8": 1979 * T}),
    # NVIDIA H200 Tensor Core GPU datasheet (H200 SXM): same compute as H100 SXM, 4.8 TB/s HBM3e (141 GB).
    # SMs, L2 and L1 as H100 (the same GH100 configuration; H200 product brief).
    "H200": GPU("H200", hbm_bandwidth=4.8 * T, l2_bandwidth=5.5 * T, l2_bytes=50 << 20, sms=132,
                peaks={"fp64": 34 * T, "fp32": 67 * T, "tf32": 494.5 * T, "fp16": 989.5 * T, "bf16": 989.5 * T,
                       "fp8": 1979 * T, "int8": 1979 * T}),
    # NVIDIA A100 Tensor Core GPU datasheet (A100 80GB SXM): FP64 9.7, FP32 19.5, TF32 156 (312*),
    # BF16/FP16 312 (624*), INT8 624 (1,248*), 2,039 GB/s HBM2e; no FP8. 108 SMs, 40 MB L2, 192 KB
    # L1/shared per SM: NVIDIA A100 Tensor Core GPU Architecture whitepaper.
    "A100": GPU("A100", hbm_bandwidth=2.039 * T, l2_bandwidth=4.0 * T, l2_bytes=40 << 20, sms=108,
                peaks={"fp64": 9.7 * T, "fp32": 19.5 * T, "tf32": 156 * T, "fp16": 312 * T, "bf16": 312 * T,
                       "int8": 624 * T},
                l1_bytes=192 << 10),
    # NVIDIA L40S datasheet: FP32 91.6, TF32 183 (366*), BF16/FP16 362.05 (733*), FP8 733 (1,466*),
    # INT8 733 (1,466*), 864 GB/s GDDR6, 142 RT cores (one per SM: 142 SMs, 18,176 CUDA cores / 128).
    # L2 (96 MB on AD102) and 128 KB L1 per SM: NVIDIA Ada GPU Architecture whitepaper. FP64 is 1/64
    # of FP32 on Ada (whitepaper). Compute capability 8.9: 24 blocks, 48 warps per SM (CUDA guide).
    "L40S": GPU("L40S", hbm_bandwidth=0.864 * T, l2_bandwidth=4.0 * T, l2_bytes=96 << 20, sms=142,
                peaks={"fp64": 1.43 * T, "fp32": 91.6 * T, "tf32": 183 * T, "fp16": 362 * T, "bf16": 362 * T,
                       "fp8": 733 * T, "int8": 733 * T},
                l1_bytes=128 << 10, max_blocks_per_sm=24, max_warps_per_sm=48),
    # NVIDIA Ada GPU Architecture whitepaper, GeForce RTX 4090 column: 128 SMs, 72 MB L2, 1,008 GB/s
    # GDDR6X, FP32 82.6, TF32 tensor 82.6 (165.2*), FP16/BF16 tensor with FP32 accumulate 165.2
    # (330.4*), FP8 with FP32 accumulate 330.3 (660.6*), INT8 660.6 (1,321.2*). Compute capability 8.9.
    "RTX4090": GPU("RTX4090", hbm_bandwidth=1.008 * T, l2_bandwidth=5.0 * T, l2_bytes=72 << 20, sms=128,
                   peaks={"fp64": 1.29 * T, "fp32": 82.6 * T, "tf32": 82.6 * T, "fp16": 165.2 * T,
                          "bf16": 165.2 * T, "fp8": 330.3 * T, "int8": 660.6 * T},
                   l1_bytes=128 << 10, max_blocks_per_sm=24, max_warps_per_sm=48, launch_s=2.5e-6),
}

DEFAULT_GPU = "H100"
ALIASES = {"h100-sxm": "H100", "h100sxm": "H100", "h200-sxm": "H200", "a100-sxm": "A100", "a100-80gb": "A100",
           "rtx-4090": "RTX4090", "4090": "RTX4090"}


def gpu(name: str | GPU | None = None) -> GPU:
    """The spec for ``name`` (case-insensitive, a few aliases); None means ``DEFAULT_GPU``."""
    if isinstance(name, GPU):
        return name
    key = DEFAULT_GPU if name is None else str(name)
    for candidate in (key, key.upper(), ALIASES.get(key.lower(), "")):
        if candidate in GPUS:
            return GPUS[candidate]
    raise KeyError(f"unknown GPU {name!r}; known: {', '.join(GPUS)}")


#: CUDA device names (``torch.cuda.get_device_name()``, lower case, spaces collapsed) of the parts in
#: ``GPUS``, exact. Variants with other figures are left out on purpose so that they resolve to None:
#: H100 PCIe and NVL (2.0 and 3.9 TB/s, lower clocks), H200 NVL (lower power, lower peaks), GH200,
#: A100 40GB (1.56 TB/s) and A100 80GB PCIe (1.94 TB/s), L40 (not L40S), RTX 4090 D and laptop parts.
DEVICE_NAMES = {
    "nvidia h100 80gb hbm3": "H100",
    "nvidia h100 sxm5 80gb": "H100",
    "nvidia h200": "H200",
    "nvidia a100-sxm4-80gb": "A100",
    "nvidia l40s": "L40S",
    "nvidia geforce rtx 4090": "RTX4090",
}


def gpu_for_device(device_name: str | None) -> GPU | None:
    """The spec of the CUDA device ``torch.cuda.get_device_name()`` named, or None for a part not in
    the table: a fraction of the wrong peak (an H100 PCIe priced as an SXM) would look like a slow
    kernel, so an unknown part gets no figure rather than a guess."""
    if not isinstance(device_name, str):
        return None
    key = " ".join(device_name.lower().split())
    name = DEVICE_NAMES.get(key)
    return GPUS[name] if name else None
