"""Scoring script for Azure ML managed online endpoints (and `generator.py serve` locally, under
the same azureml-inference-server-http): init() loads the ONNX model from AZUREML_MODEL_DIR,
run() scores a JSON request (or, for image models, one JPEG/PNG file sent as the body).
Bad requests get a 4xx answer with a clear message."""

import logging
import os
import threading

from trainkit.serving import MAX_BODY_BYTES, Scorer, ScoringError

try:  # the inference server's raw-request API (the deployment environment has it)
    from azureml_inference_server_http.api.aml_request import rawhttp
    from azureml_inference_server_http.api.aml_response import AMLResponse
except ImportError:  # pragma: no cover - older images ship the azureml.contrib names
    from azureml.contrib.services.aml_request import rawhttp
    from azureml.contrib.services.aml_response import AMLResponse

scorer = None
# The server reads several requests at once per worker (its threads: a slow upload holds only its
# own); they are scored one at a time, as thread_plan() assumes when it gives the model the cores.
one_at_a_time = threading.Lock()
log = logging.getLogger("azmlinfsrv.score")  # under the server's logger: its handler and level (INFO)


def init():
    global scorer
    scorer = Scorer(os.environ.get("AZUREML_MODEL_DIR", "."))
    log.info("loaded %s (%s, classes %s; %s, %s threads%s)", scorer.model_file, scorer.task, scorer.classes,
             scorer.provider, scorer.threads, ", spinning" if scorer.spinning and scorer.provider == "cpu" else "")


def _error(status, message):
    return AMLResponse({"error": message}, status, json_str=True)


@rawhttp
def run(request):
    if request.method != "POST":
        return _error(405, "POST a JSON body (or, for an image model, a JPEG/PNG file) to /score")
    length = request.content_length or 0
    if length > MAX_BODY_BYTES:
        return _error(413, f"request body is {length} bytes; at most {MAX_BODY_BYTES}")
    body = request.get_data(cache=False)  # outside the lock: a slow client holds only its own thread
    try:
        with one_at_a_time:
            result = _score(request.mimetype or "", body)
    except ScoringError as exc:
        return _error(exc.status, exc.message)
    return AMLResponse(result, 200, json_str=True)


def _score(mimetype, body):
    if mimetype.startswith("image/") or mimetype == "application/octet-stream":
        return scorer.score_image_bytes(body)
    return scorer.score_json(body)
