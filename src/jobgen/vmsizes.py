"""The checked-in table of Azure VM sizes (``data/vm_sizes.yaml``) and the checks built on it."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

TABLE = Path(__file__).parent / "data" / "vm_sizes.yaml"


@dataclass(frozen=True)
class VmSize:
    name: str
    family: str
    gpus: float  # fractional for partitioned GPUs (NVadsA10 v5); 0 for CPU sizes
    gpu_model: str | None
    gpu_memory_gib: float | None
    vcpus: int
    memory_gib: float
    infiniband: bool
    retired: bool
    retired_on: str | None = None
    replacement: str | None = None
    note: str | None = None

    @property
    def whole_gpus(self) -> int:
        return int(self.gpus) if self.gpus >= 1 else 0


@lru_cache(maxsize=1)
def table() -> dict[str, VmSize]:
    raw = yaml.load(TABLE.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    out = {}
    for name, row in raw["sizes"].items():
        fields = {k: row.get(k) for k in VmSize.__dataclass_fields__ if k != "name"}
        fields["retired_on"] = str(fields["retired_on"]) if fields["retired_on"] else None
        out[name.lower()] = VmSize(name=name, **fields)
    return out


def lookup(name: str | None) -> VmSize | None:
    """Case-insensitive, as Azure treats VM size names."""
    if not name:
        return None
    return table().get(str(name).lower())


def suggest(name: str) -> str | None:
    """The closest known size name, for 'did you mean' hints."""
    names = [s.name for s in table().values()]
    match = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    if not match:
        match = difflib.get_close_matches(name.lower(), [n.lower() for n in names], n=1, cutoff=0.75)
        match = [table()[match[0]].name] if match else []
    return match[0] if match else None


def retired_message(size: VmSize) -> tuple[str, str]:
    """(message, hint) for a retired size."""
    when = f" on {size.retired_on}" if size.retired_on else ""
    message = f"VM size {size.name} ({size.family}) was retired{when}; Azure no longer allocates it"
    hint = f"use {size.replacement}" if size.replacement else "choose a current size from the VM size table"
    if size.replacement:
        rep = lookup(size.replacement)
        if rep is not None:
            hint += f" ({rep.whole_gpus or rep.gpus} x {rep.gpu_model})"
    return message, hint


def capacity_problem(size: VmSize, processes: int) -> tuple[str, str, str] | None:
    """('error'|'warning', message, hint) when ``processes`` per node does not fit ``size``."""
    if size.gpus == 0:
        if processes > size.vcpus:
            return ("error", f"{processes} processes per node on {size.name}, which has {size.vcpus} vCPUs and no GPU",
                    f"use at most {size.vcpus} processes per node or a larger size")
        return None
    gpus = size.whole_gpus
    if gpus == 0:
        return ("warning", f"{size.name} has a fraction of a GPU ({size.gpus:g}); distributed training there is unusual",
                "use a size with whole GPUs, e.g. Standard_NC4as_T4_v3")
    if processes > gpus:
        return ("error", f"{processes} processes per node but {size.name} has {gpus} GPU{'s' if gpus != 1 else ''}",
                f"use --gpus {gpus} (or fewer), or a VM size with more GPUs")
    if processes < gpus:
        return ("warning", f"{processes} process{'es' if processes != 1 else ''} per node leave{'s' if processes == 1 else ''} "
                           f"{gpus - processes} of the {gpus} GPUs of {size.name} idle",
                f"use --gpus {gpus} to use every GPU")
    return None
