"""Local data catalog: what `azureml:<name>@latest`, a datastore URI or a registered component
means on this machine.

`jobs/data.yml` (found upward from the job file, or given with --catalog) maps them to local
paths, relative to the catalog file:

    datasets:                                  # data and model assets, by name
      penguins: ../data/penguins.csv           # any version
      chickens-turkeys:
        "1": ../data/chickens-turkeys-v1       # version 1
        latest: ../data/chickens-turkeys       # @latest and versions not listed
    uris:                                      # remote paths; a folder maps everything under it
      azureml://datastores/workspaceblobstore/paths/iris/: ../data/iris
      https://azuremlexamples.blob.core.windows.net/datasets/iris.csv: ../data/iris.csv
    components:                                # registered components, by name (any version)
      train_model: ../components/train.yml

`--data NAME=PATH` (an asset name or a URI) and `--component NAME=PATH` override it for one run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import JobgenError
from ..yamlio import load_file

CATALOG_NAME = "data.yml"
_REF = re.compile(r"^azureml:(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)(?:@(?P<label>[A-Za-z0-9_.-]+)|:(?P<version>[A-Za-z0-9_.-]+))?$")
_REGISTRY = re.compile(r"^azureml://registries/[^/]+/(?P<type>\w+)/(?P<name>[^/]+)(?:/(?:versions|labels)/(?P<v>[^/]+))?/?$")
REMOTE = re.compile(r"^(azureml://|https?://|wasbs?://|abfss?://|adl://|s3://|gs://)", re.I)


@dataclass
class Catalog:
    path: Path | None = None
    entries: dict[str, dict[str, Path]] = field(default_factory=dict)  # name -> version/"latest" -> path
    uris: dict[str, Path] = field(default_factory=dict)
    components: dict[str, Path] = field(default_factory=dict)
    overrides: dict[str, Path] = field(default_factory=dict)

    def _where_to_add(self, section: str, key: str) -> str:
        line = f"'{key}: <local path>' under {section}:"
        return f"add {line} in {self.path}" if self.path else f"create jobs/{CATALOG_NAME} with {line}"

    def resolve(self, ref: str, where: str) -> Path:
        """A data input's `path` as a local path, or a JobgenError that says how to fix it."""
        if REMOTE.match(ref) and not ref.startswith("azureml://registries/"):
            return self.resolve_uri(ref, where)
        match = _REF.match(ref) or _REGISTRY.match(ref)
        if match is None:
            raise JobgenError(f"data input {ref!r} cannot be reached from this machine", where=where,
                              hint="use a local path, azureml:<name>@latest with a local catalog entry, "
                                   "or --data NAME=PATH")
        name = match.group("name")
        groups = match.groupdict()
        version = groups.get("version") or groups.get("label") or groups.get("v") or "latest"
        if name in self.overrides:
            return self._exists(self.overrides[name], name, where)
        versions = self.entries.get(name)
        if versions is None:
            raise JobgenError(f"data asset '{name}' is not in the local data catalog", where=where,
                              hint=f"{self._where_to_add('datasets', name)}, or pass --data {name}=PATH")
        target = versions.get(version) or versions.get("latest") or versions.get("*")
        if target is None:
            raise JobgenError(f"data asset '{name}' has no local copy of version {version}", where=where,
                              hint=f"known versions: {', '.join(sorted(versions))}; or --data {name}=PATH")
        return self._exists(target, name, where)

    def resolve_uri(self, uri: str, where: str) -> Path:
        """A datastore or web URI: the longest mapped URI it starts with (a folder maps what is under it)."""
        mapped = {**self.uris, **{k: v for k, v in self.overrides.items() if REMOTE.match(k)}}
        for key in sorted(mapped, key=len, reverse=True):
            if uri == key or uri.rstrip("/") == key.rstrip("/"):
                return self._exists(mapped[key], uri, where)
            prefix = key if key.endswith("/") else key + "/"
            if uri.startswith(prefix):
                return self._exists(mapped[key] / uri[len(prefix):], uri, where)
        raise JobgenError(f"{uri} cannot be reached from this machine: it is remote, and no local copy is mapped to it",
                          where=where,
                          hint=f"{self._where_to_add('uris', uri)}, or pass --data '{uri}=PATH'")

    def component(self, ref: str, where: str) -> Path:
        """A registered component (azureml:name:1, azureml:name@latest, azureml://registries/.../components/name)
        as a local component file."""
        match = _REF.match(ref) or _REGISTRY.match(ref)
        name = match.group("name") if match else ref
        target = self.overrides.get(f"component:{name}") or self.components.get(name)
        if target is None:
            raise JobgenError(f"component {ref} is registered in a workspace or registry", where=where,
                              hint=f"{self._where_to_add('components', name)}, or pass --component {name}=PATH "
                                   "(its YAML file)")
        return self._exists(target, name, where)

    def _exists(self, target: Path, name: str, where: str) -> Path:
        if not target.exists():
            raise JobgenError(f"'{name}' points at {target}, which does not exist", where=where,
                              hint="create it (make demo prepares data/), fix the catalog, or pass --data NAME=PATH")
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
    return isinstance(data, dict) and ("datasets" in data or "uris" in data or "components" in data) \
        and "type" not in data and "$schema" not in data


def load_catalog(path: Path | None, data_overrides: list[str], component_overrides: list[str] = ()) -> Catalog:
    catalog = Catalog(path=path)
    if path is not None:
        _read(catalog, path)
    for item in data_overrides:
        key, target = _pair(item, "--data", "e.g. --data penguins=data/penguins.csv")
        catalog.overrides[key] = target
    for item in component_overrides:
        key, target = _pair(item, "--component", "e.g. --component train_model=components/train.yml")
        catalog.overrides[f"component:{key}"] = target
    return catalog


def _read(catalog: Catalog, path: Path) -> None:
    data = load_file(path).data or {}
    if not isinstance(data, dict):
        raise JobgenError("a data catalog is a mapping with datasets:, uris: or components:", where=str(path),
                          hint="datasets: {penguins: ../data/penguins.csv}")
    for section in ("datasets", "uris", "components"):
        if data.get(section) is not None and not isinstance(data[section], dict):
            raise JobgenError(f"{section}: must be a mapping", where=str(path),
                              hint="datasets: {penguins: ../data/penguins.csv}")
    for name, value in (data.get("datasets") or {}).items():
        versions = value if isinstance(value, dict) else {"*": value}
        catalog.entries[str(name)] = {str(v): (path.parent / str(p)).resolve() for v, p in versions.items()}
    catalog.uris = {str(k): (path.parent / str(v)).resolve() for k, v in (data.get("uris") or {}).items()}
    catalog.components = {str(k): (path.parent / str(v)).resolve() for k, v in (data.get("components") or {}).items()}


def _pair(item: str, flag: str, example: str) -> tuple[str, Path]:
    """NAME=PATH; a URI's own '=' (a query) is kept: the last '=' splits it."""
    if "=" not in item:
        raise JobgenError(f"{flag} expects NAME=PATH, got {item!r}", where=flag, hint=example)
    key, value = item.rsplit("=", 1) if REMOTE.match(item) else item.split("=", 1)
    target = Path(value).expanduser().resolve()
    if not target.exists():
        raise JobgenError(f"{flag} {key}: {value} does not exist", where=flag, hint="check the path")
    return key.strip(), target
