"""Wheels written by hand (a zip with the package, METADATA, WHEEL, RECORD): pip installs them
offline, in the tests of environments and of the runner."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def make_wheel(folder: Path, name: str, version: str, module: str, script: str | None = None,
               package: str | None = None) -> Path:
    """A pure-Python wheel written as a zip: the package, METADATA, WHEEL, entry points, RECORD."""
    info = f"{name}-{version}.dist-info"
    files = {f"{package or name}/__init__.py": module,
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    if script:
        files[f"{info}/entry_points.txt"] = f"[console_scripts]\n{script} = {name}:main\n"
    record = [f"{path},sha256={_digest(text)},{len(text.encode())}" for path, text in files.items()]
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


def _digest(text: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()


def tinypkg(folder: Path, version: str = "1.0") -> Path:
    module = f"VERSION = {version!r}\n\ndef main():\n    print('tinycli', VERSION)\n"
    return make_wheel(folder, "tinypkg", version, module, script="tinycli")
