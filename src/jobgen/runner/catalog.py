"""Local data catalog: what `azureml:<name>@latest` / `azureml:<name>:<version>` means here.

`jobs/data.yml` (found upward from the job file, or given with --catalog) maps data asset
names to local paths, relative to the catalog file:

    datasets:
      penguins: ../data/penguins.csv          # any version
      chickens-turkeys:
        "1": ../data/chickens-turkeys-v1      # version 1
        latest: ../data/chickens-turkeys       # @latest and versions not listed

`--data NAME=PATH` overrides the catalog for one run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import JobgenError
from ..yamlio import load_file

CATALOG_NAME = "data.yml"
_REF = re.compile(r"^azureml:(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)(?:@(?P<label>[A-Za-z0-9_.-]+)|:(?P<version>[A-Za-z0-9_.-]+))?$")


@dataclass
class Catalog:
    path: Path | None = None
    entries: dict[str, dict[str, Path]] = field(default_factory=dict)  # name -> version/"latest" -> path
    overrides: dict[str, Path] = field(default_factory=dict)

    def resolve(self, ref: str, where: str) -> Path:
        """A data input's `path` as a local path, or a JobgenError that says how to fix it."""
        match = _REF.match(ref)
        if ref.startswith("azureml://") or match is None:
            raise JobgenError(f"data input {ref!r} cannot be reached from this machine", where=where,
                              hint="use a local path, azureml:<name>@latest with a local catalog entry, "
                                   "or --data NAME=PATH")
        name = match.group("name")
        version = match.group("version") or match.group("label") or "latest"
        if name in self.overrides:
            target = self.overrides[name]
        else:
            versions = self.entries.get(name)
            if versions is None:
                where_catalog = f"add '{name}: <local path>' under datasets: in {self.path}" if self.path else \
                    f"create jobs/{CATALOG_NAME} with 'datasets: {{{name}: <local path>}}'"
                raise JobgenError(f"data asset '{name}' is not in the local data catalog", where=where,
                                  hint=f"{where_catalog}, or pass --data {name}=PATH")
            target = versions.get(version) or versions.get("latest") or versions.get("*")
            if target is None:
                raise JobgenError(f"data asset '{name}' has no local copy of version {version}", where=where,
                                  hint=f"known versions: {', '.join(sorted(versions))}; or --data {name}=PATH")
        if not target.exists():
            raise JobgenError(f"data asset '{name}' points at {target}, which does not exist", where=where,
                              hint="create it (make demo prepares data/), fix the catalog, or pass --data "
                                   f"{name}=PATH")
        return target


def find_catalog(start: Path) -> Path | None:
    for folder in [start, *start.parents]:
        for candidate in (folder / "jobs" / CATALOG_NAME, folder / CATALOG_NAME):
            if candidate.is_file() and _is_catalog(candidate):
                return candidate
    return None


def _is_catalog(path: Path) -> bool:
    try:
        data = load_file(path).data
    except JobgenError:
        return False
    return isinstance(data, dict) and "datasets" in data


def load_catalog(path: Path | None, overrides: list[str]) -> Catalog:
    catalog = Catalog(path=path)
    if path is not None:
        data = load_file(path).data or {}
        datasets = data.get("datasets") if isinstance(data, dict) else None
        if not isinstance(datasets, dict):
            raise JobgenError("a data catalog needs a 'datasets:' mapping", where=str(path),
                              hint="datasets: {penguins: ../data/penguins.csv}")
        for name, value in datasets.items():
            versions = value if isinstance(value, dict) else {"*": value}
            catalog.entries[str(name)] = {str(v): (path.parent / str(p)).resolve() for v, p in versions.items()}
    for item in overrides:
        if "=" not in item:
            raise JobgenError(f"--data expects NAME=PATH, got {item!r}", where="--data",
                              hint="e.g. --data penguins=data/penguins.csv")
        name, value = item.split("=", 1)
        target = Path(value).expanduser().resolve()
        if not target.exists():
            raise JobgenError(f"--data {name}: {value} does not exist", where="--data", hint="check the path")
        catalog.overrides[name.strip()] = target
    return catalog
