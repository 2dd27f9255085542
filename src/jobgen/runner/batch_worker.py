"""One scoring process of a local batch deployment run (runner/batch.py starts it): what Azure's
batch executor does in each of its max_concurrency_per_instance processes per node. It imports the
deployment's scoring script, calls init() once, then run(mini_batch) for each mini-batch it is
sent, and answers with the rows Azure would append to the output file.

Standalone (no jobgen import): it runs with the code snapshot as its working folder and path.
Protocol: one JSON object per line on stdin ({"id": N, "files": [...]}), one per line on the
file descriptor that was stdout when it started ({"ready": true} after init(), then {"id": N,
"lines": [...], "returned": K} or {"id": N, "error": "..."}); the script's own prints and logging
go to the log file given as the first argument, as Azure keeps them per process."""

import importlib.util
import json
import os
import sys
import traceback


def _answer(stream, obj):
    stream.write(json.dumps(obj) + "\n")
    stream.flush()


def output_lines(result):
    """The rows of append_row, as Azure writes them: a DataFrame's rows with their values separated
    by spaces (no header, no index); a list's elements one per line, as str() prints them."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - a scoring environment without pandas returns lists
        pd = None
    if pd is not None and isinstance(result, pd.DataFrame):
        text = result.to_csv(sep=" ", header=False, index=False, lineterminator="\n")
        return text.splitlines(), len(result)
    if pd is not None and isinstance(result, pd.Series):
        return [str(v) for v in result.tolist()], len(result)
    if isinstance(result, (list, tuple)):
        return [str(item) for item in result], len(result)
    raise TypeError(f"run() returned {type(result).__name__}; a batch scoring script returns a pandas DataFrame "
                    "or a list (one element per scored input)")


def _load(script):
    spec = importlib.util.spec_from_file_location("batch_scoring_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("init", "run"):
        if not callable(getattr(module, name, None)):
            raise AttributeError(f"{os.path.basename(script)} has no {name}() function (a batch scoring script "
                                 "defines init() and run(mini_batch))")
    return module


def main():
    log_path, script = sys.argv[1], sys.argv[2]
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    try:
        module = _load(script)
        module.init()
    except BaseException as exc:  # noqa: BLE001 - reported to the runner, which stops the job
        traceback.print_exc()
        _answer(protocol, {"init_error": f"{type(exc).__name__}: {exc}"})
        return 1
    _answer(protocol, {"ready": True})
    for line in sys.stdin:
        task = json.loads(line)
        print(f"[batch] mini-batch {task['id']}: {len(task['files'])} file(s)", flush=True)
        try:
            lines, returned = output_lines(module.run(list(task["files"])))
            _answer(protocol, {"id": task["id"], "lines": lines, "returned": returned})
        except BaseException as exc:  # noqa: BLE001 - the mini-batch failed; Azure retries it
            traceback.print_exc()
            _answer(protocol, {"id": task["id"], "error": f"{type(exc).__name__}: {exc}"})
    if callable(getattr(module, "shutdown", None)):
        module.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
