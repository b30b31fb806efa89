"""Dense peak TFLOP/s of known GPUs, keyed by the name NVML (and torch.cuda.get_device_name) gives,
for MFU (model FLOP utilisation). No torch.

Figures are the vendors' datasheet numbers WITHOUT structured sparsity (datasheets often print the
2:4-sparse figure, twice the dense one), for tensor-core bf16/fp16 with fp32 accumulation (what
autocast uses) and plain fp32 (no TF32: PyTorch does not use TF32 for matmuls by default). Sources
are cited in docs/DECISIONS.md ("Peak FLOP/s for MFU"). `--peak-tflops` overrides the table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Peak:
    bf16: float | None
    fp16: float | None
    fp32: float

    def of(self, dtype: str) -> float | None:
        return {"bf16": self.bf16, "fp16": self.fp16, "fp32": self.fp32}.get(dtype)


# (a part of the NVML name, its dense peak in TFLOP/s); the first match wins, so specific names come first
KNOWN_GPUS: tuple[tuple[str, Peak], ...] = (
    ("GH200", Peak(989.5, 989.5, 67.0)),  # its Hopper GPU is an H100 SXM's
    ("H200 NVL", Peak(835.5, 835.5, 60.0)),
    ("H200", Peak(989.5, 989.5, 67.0)),  # H200 SXM
    ("H100 NVL", Peak(835.5, 835.5, 60.0)),
    ("H100 PCIe", Peak(756.5, 756.5, 51.2)),
    ("H100", Peak(989.5, 989.5, 67.0)),  # H100 SXM5 ("NVIDIA H100 80GB HBM3")
    ("A100", Peak(312.0, 312.0, 19.5)),  # A100 40GB and 80GB, SXM4 and PCIe alike
    ("L40S", Peak(362.05, 362.05, 91.6)),
    ("L40", Peak(181.05, 181.05, 90.5)),
    ("A10G", Peak(70.0, 70.0, 31.2)),  # AWS G5's A10G
    ("A10", Peak(125.0, 125.0, 31.2)),
    ("L4", Peak(121.0, 121.0, 30.3)),
    ("RTX 4090", Peak(165.2, 165.2, 82.6)),  # fp32 accumulation (330 with fp16 accumulation)
    ("RTX 3090", Peak(71.0, 71.0, 35.6)),
    ("A6000", Peak(154.8, 154.8, 38.7)),  # RTX A6000
    ("V100", Peak(None, 125.0, 15.7)),  # no bf16 tensor cores
    ("T4", Peak(None, 65.0, 8.1)),
)


def peak_tflops(device_name: str, dtype: str) -> float | None:
    """The dense peak of a GPU by its NVML name at a --dtype (fp32, bf16, fp16); None when unknown."""
    for part, peak in KNOWN_GPUS:
        if part.lower() in device_name.lower():
            return peak.of(dtype)
    return None
