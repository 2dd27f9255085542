"""trainkit: the training code Azure ML runs (uploaded as the job's `code:` folder).

Self-contained: it never imports the generator (jobgen). Entry points live one level up
(train.py, export_onnx.py, register.py, predict.py) so that `python train.py ...` works from
the code snapshot's root, as Azure runs it.
"""

__version__ = "0.1.0"
