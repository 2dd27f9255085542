"""MLflow for the trainer and the register step: one set-up, and for training a process of its own.

``setup_mlflow`` is the one place that imports MLflow and points it at a store: on Azure the job's
tracking URI, experiment and run are configured already (MLFLOW_TRACKING_URI, MLFLOW_RUN_ID); locally
an embedded SQLite store (MLFLOW_TRACKING_URI, else ./mlflow.db).

Training reports through ``BackgroundTracker``: rank 0 starts a child process (this module run as
``python -m trainkit.tracking``) that imports MLflow, opens the store and logs what the trainer sends
it on a pipe, one JSON object per line, while the trainer trains. Importing MLflow and opening its
SQL store take seconds, longer than a small job's whole training, and drawing the loss curve wants
matplotlib: none of that waits in the training loop, as W&B's service process keeps its logging out
of the training process. The trainer waits for the child only at the end (everything logged, the loss
curve written), and never fails because tracking did: the child's error is printed as one line and
training goes on without it.

Messages (trainer -> child): ``start`` (experiment, run to resume, params, tags), ``metrics`` (a
dict and a step), ``curve`` (the history and where to draw it), ``artifact`` (a path), ``end``.
The child answers ``{"run_id": ...}`` once the run exists, ``{"error": ...}`` when MLflow fails, and
``{"done": true}`` after ``end``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

END_WAIT_SECONDS = 120.0


def setup_mlflow(default_experiment: str | None = None, resume: bool = False):
    """MLflow, quiet, pointed at the job's store (and, unless the job's run or a resumed one is
    used, its experiment); returns the module."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", module="mlflow")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line per action, no bars
    import mlflow

    for name in ("mlflow", "alembic"):  # after the import: mlflow sets its own levels then
        logging.getLogger(name).setLevel(logging.ERROR)
    # the job's URI wins over one set earlier in this process (MLflow keeps that one otherwise)
    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}")
    if default_experiment and not os.environ.get("MLFLOW_RUN_ID") and not resume:
        mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", default_experiment))
    return mlflow


def start_run(mlflow, resume_run_id: str | None):
    """The job's run (MLFLOW_RUN_ID on Azure and under the local runner), else the one a checkpoint
    names, else a new one; a stored run that is gone (another store) gives a new one."""
    run_id = os.environ.get("MLFLOW_RUN_ID") or resume_run_id
    try:
        return mlflow.start_run(run_id=run_id) if run_id else mlflow.start_run()
    except Exception:  # noqa: BLE001 - MLflow raises several kinds for a run it cannot find
        return mlflow.start_run()


# ------------------------------------------------------------------ the trainer's side

class BackgroundTracker:
    """Rank 0's end of the pipe to the tracking process."""

    def __init__(self, log=print):
        self.log = log
        self.begun = False
        self.broken = False
        self.run_id: str | None = None
        self.error: str | None = None
        self.done = threading.Event()
        self.started = threading.Event()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).resolve().parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])]))
        self.proc = subprocess.Popen([sys.executable, "-m", "trainkit.tracking"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, text=True, bufsize=1)
        self.reader = threading.Thread(target=self._read, name="tracking-replies", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                reply = json.loads(line)
            except ValueError:
                continue
            if "run_id" in reply:
                self.run_id = reply["run_id"]
                self.started.set()
            if "error" in reply and self.error is None:
                self.error = reply["error"]
                self.log(f"[train] MLflow tracking failed ({self.error}); training goes on without it")
                self.started.set()
            if reply.get("done"):
                self.done.set()
        self.started.set()
        self.done.set()

    def abandon(self) -> None:
        """The trainer stops before training began (bad data): nothing to log, so the tracking
        process is stopped; a run that began is ended as close() ends it."""
        if self.proc.returncode is not None:
            return
        if self.begun:
            self.close()
            return
        self.proc.kill()
        self.proc.wait()

    def send(self, op: str, **fields: Any) -> bool:
        """Pass a message on; False when the tracking process is gone. After an MLflow error the
        process still draws curves and ends cleanly, so messages still go."""
        if self.broken or self.proc.stdin is None or self.proc.stdin.closed:
            return False
        try:
            self.proc.stdin.write(json.dumps(dict(fields, op=op), default=str) + "\n")
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            self.broken = True
            if self.error is None:
                self.error = "the tracking process ended"
                self.log(f"[train] MLflow tracking failed ({self.error}); training goes on without it")
            return False

    def start(self, experiment: str, resume_run_id: str | None, params: dict[str, Any], tags: dict[str, str]) -> None:
        self.begun = True
        self.send("start", experiment=experiment, resume_run_id=resume_run_id, params=params, tags=tags)

    def metrics(self, values: dict[str, float], step: int) -> None:
        self.send("metrics", values=values, step=step)

    def curve(self, history: list[dict[str, float]], path: Path) -> None:
        if not self.send("curve", history=history, path=str(path)):
            write_loss_curve(history, path)  # the tracking process is gone: draw it here

    def artifact(self, path: Path) -> None:
        self.send("artifact", path=str(path))

    def wait_for_run(self, timeout: float = END_WAIT_SECONDS) -> str | None:
        """The run's ID, once the tracking process has it (None if tracking failed)."""
        self.started.wait(timeout)
        return self.run_id

    def close(self, timeout: float = END_WAIT_SECONDS) -> None:
        """Ends the run and waits until everything sent is logged (once; later calls return)."""
        if self.proc.returncode is not None or (self.proc.stdin is not None and self.proc.stdin.closed):
            return
        self.send("end")
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        if not self.done.wait(timeout):
            self.log(f"[train] the MLflow tracking process did not finish within {timeout:.0f} s; stopped it")
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------ the tracking process

def write_loss_curve(history: list[dict[str, float]], path: Path) -> None:
    """The loss per epoch as a PNG, written atomically."""
    if not history:
        return
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .files import atomic_write_bytes

    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(epochs, [r["train_loss"] for r in history], marker="o", label="train loss")
    ax.plot(epochs, [r["val_loss"] for r in history], marker="o", label="val loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title(f"loss per epoch (val accuracy {history[-1]['val_accuracy']:.3f})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(Path(path), lambda fh: fh.write(buffer.getvalue()))


def _reply(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class _Service:
    def __init__(self) -> None:
        self.mlflow = None
        self.run_id: str | None = None
        self.failed = False

    def log_metrics(self, messages: list[dict[str, Any]]) -> None:
        """Several epochs' metrics in one write (MLflow's log_batch)."""
        if self.mlflow is None or self.failed:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, int(m["step"])) for m in messages for key, value in m["values"].items()]
        for start in range(0, len(metrics), 1000):  # MLflow's limit per batch
            self.mlflow.MlflowClient().log_batch(self.run_id, metrics=metrics[start:start + 1000])

    def handle(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "curve":  # drawn whatever MLflow does: the model folder holds it
            write_loss_curve(message["history"], Path(message["path"]))
            return
        if op == "start":
            self.mlflow = setup_mlflow(message.get("experiment") or "Default",
                                       resume=bool(message.get("resume_run_id")))
            run = start_run(self.mlflow, message.get("resume_run_id"))
            if os.environ.get("AZUREML_RUN_ID"):
                self.mlflow.set_tag("azureml.runid", os.environ["AZUREML_RUN_ID"])
            if message.get("tags"):
                self.mlflow.set_tags(message["tags"])
            fresh = {k: v for k, v in (message.get("params") or {}).items() if k not in run.data.params}
            if fresh:  # a resumed run (or a sweep trial's) has its params already
                self.mlflow.log_params(fresh)
            self.run_id = run.info.run_id
            _reply(run_id=run.info.run_id)
            return
        if self.mlflow is None:
            return
        if op == "metrics":
            self.log_metrics([message])
        elif op == "artifact":
            self.mlflow.log_artifact(message["path"])
        elif op == "end":
            self.mlflow.end_run()


def serve(stream=None) -> int:
    """The tracking process: MLflow is imported while the trainer imports torch, then every
    message is handled in order until ``end`` or the pipe closes. Metrics that arrive while the
    previous write is in progress are written together, one transaction for all of them."""
    import queue

    inbox: "queue.Queue[dict | None]" = queue.Queue()
    threading.Thread(target=_receive, args=(stream or sys.stdin, inbox), daemon=True).start()
    service = _Service()
    try:  # the slow part, done before the first message: the imports and opening the store
        setup_mlflow().MlflowClient().search_experiments(max_results=1)
    except ImportError as exc:
        _reply(error=f"mlflow cannot be imported: {exc}")
        service.failed = True
    except Exception:  # noqa: BLE001 - the store is reported when the run starts, with the start's error
        pass
    try:
        import matplotlib.pyplot  # noqa: F401  (for the loss curve: imported while training runs)
    except ImportError:
        pass
    ended = False
    while not ended:
        message = inbox.get()
        if message is None:
            break
        batch = [message]
        while message.get("op") == "metrics" and not inbox.empty():
            following = inbox.get()
            if following is None or following.get("op") != "metrics":
                inbox.queue.appendleft(following)  # handled next, in order
                break
            batch.append(following)
            message = following
        ended = message.get("op") == "end"
        try:
            if len(batch) > 1:
                service.log_metrics(batch)
            elif not service.failed or message.get("op") == "curve":
                service.handle(message)
        except Exception as exc:  # noqa: BLE001 - report it, keep drawing curves, never take training down
            if not service.failed:
                service.failed = True
                _reply(error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": "))
    _reply(done=True)
    return 0


def _receive(stream, inbox) -> None:
    for line in stream:
        try:
            inbox.put(json.loads(line))
        except ValueError:
            continue
    inbox.put(None)


if __name__ == "__main__":
    import signal

    # The trainer ends this process (by closing the pipe) after it has checkpointed: a SIGTERM or
    # Ctrl-C sent to the whole process group must not cut the run's last metrics short. (Only
    # here: serve() called in another process must leave that process's signals alone.)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    code = serve()
    # Everything is logged and the run ended (MLflow's SQL store has committed): skip the
    # interpreter's teardown of MLflow and SQLAlchemy, which took about a second the trainer
    # would wait for, and MLflow's atexit callbacks (they would end the run a second time).
    from trainkit.exits import leave_now

    leave_now(code, atexit_callbacks=False)
