"""Every rule, a table: a valid case that the rule leaves alone and an invalid one that it reports,
on the line and in the words a user sees. A rule without a row here fails the last test."""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jobgen.lint import lint_paths
from jobgen.rules import RULES

SCHEMA = "https://azuremlschemas.azureedge.net/latest/"
JOB = f"$schema: {SCHEMA}commandJob.schema.json\ntype: command\ncommand: echo hi\nenvironment: azureml:env@latest\n" \
      "compute: azureml:cpu\n"  # lines 1-5
SERVERLESS = f"$schema: {SCHEMA}commandJob.schema.json\ntype: command\ncommand: python train.py\n" \
             "environment: azureml:env@latest\n"  # lines 1-4, no compute
COMPONENT = f"$schema: {SCHEMA}commandComponent.schema.json\nname: comp\nversion: '1'\ntype: command\n" \
            "environment: azureml:env@latest\n"  # lines 1-5
PIPELINE = f"$schema: {SCHEMA}pipelineJob.schema.json\ntype: pipeline\nsettings:\n  default_compute: azureml:cpu\n"
SWEEP = f"""$schema: {SCHEMA}sweepJob.schema.json
type: sweep
compute: azureml:cpu
sampling_algorithm: random
objective: {{goal: maximize, primary_metric: acc}}
trial:
  command: python train.py --lr ${{{{inputs.lr}}}}
  environment: azureml:env@latest
"""  # lines 1-8
ENV = f"$schema: {SCHEMA}environment.schema.json\nname: env\nversion: '1'\n"
COMPUTE = f"$schema: {SCHEMA}amlCompute.schema.json\ntype: amlcompute\nname: cpu\n"
DATA = f"$schema: {SCHEMA}data.schema.json\nname: d\nversion: '1'\n"
DEPLOYMENT = f"$schema: {SCHEMA}managedOnlineDeployment.schema.json\nname: blue\nendpoint_name: ep\n" \
             "model: azureml:m:1\ninstance_type: Standard_DS3_v2\ninstance_count: 1\n"
BATCH_DEPLOYMENT = f"$schema: {SCHEMA}batchDeployment.schema.json\nname: onnx\nendpoint_name: ep\ntype: model\n" \
    "model: azureml:m:1\ncompute: azureml:cpu-cluster\nresources:\n  instance_count: 1\nsettings:\n"
JWT = "eyJ" + "hbGciOiJIUzI1NiJ9.eyJ" + "zdWIiOiJ0ZXN0In0." + "ZmFrZS1zaWduYXR1cmU"
STEP_COMPONENT = f"""$schema: {SCHEMA}commandComponent.schema.json
name: step
version: '1'
type: command
inputs:
  epochs: {{type: integer}}
outputs:
  out: {{type: uri_folder}}
command: echo ${{{{inputs.epochs}}}} > ${{{{outputs.out}}}}/x
environment: azureml:env@latest
"""


@dataclass
class Case:
    name: str  # the file linted
    valid: str
    invalid: str
    line: int
    text: str
    files: dict = field(default_factory=dict)  # path -> text, ("link", target) or ("sparse", bytes)
    azure: bool = False


def step(body: str) -> str:
    return PIPELINE + "jobs:\n" + textwrap.indent(textwrap.dedent(body), "  ")


CASES = {
    "JG001": Case("job.yml", JOB, "a: [1\n", 2, "not valid YAML"),
    "JG002": Case("job.yml", JOB, JOB + "command: echo again\n", 6, "key 'command' appears twice"),
    "JG003": Case("job.yml", JOB, JOB.split("\n", 1)[1], 1, "no $schema line"),
    "JG004": Case("job.yml", JOB, f"$schema: {SCHEMA}fooJob.schema.json\nname: x\n", 1, "is not a schema jobgen knows"),
    "JG005": Case("job.yml", JOB, "foo: bar\n", 1, "not recognised as Azure ML YAML"),
    "JG006": Case("job.yml", JOB, JOB.replace("azureml:cpu", "<YOUR_COMPUTE>"), 5, "placeholder <YOUR_COMPUTE>"),
    "JG007": Case("job.yml", JOB, JOB + "experiment_nam: x\n", 6, "azure-ai-ml: experiment_nam: Unknown field",
                  azure=True),
    "JG008": Case("data.yml", DATA + "type: uri_file\npath: azureml://datastores/blobs/paths/iris.csv\n",
                  DATA + "type: uri_file\npath: iris.csv\ndatastore: azureml:blobs\n", 6,
                  "datastore: is preview syntax", {"iris.csv": "a\n"}),
    "JG010": Case("job.yml", JOB + "environment_variables:\n  BEARER: '${{inputs.t}}'\n",
                  JOB + f"environment_variables:\n  BEARER: {JWT}\n", 7, "'BEARER' holds what looks like a JSON Web"),
    "JG011": Case("job.yml", JOB + "environment_variables:\n  TOKENIZERS_PARALLELISM: 'false'\n",
                  JOB + "environment_variables:\n  DB_PASS: hunter2\n", 7, "'DB_PASS' looks like a secret (by its name)"),
    "JG020": Case("job.yml", JOB + "code: ./src\n", JOB + "code: ./nope\n", 6, "code folder './nope' does not exist",
                  {"src/x.py": ""}),
    "JG021": Case("job.yml", JOB + "code: ./src\n", JOB + "code: ./bad\n", 6, "gone.py links to",
                  {"src/x.py": "", "bad/x.py": "", "bad/gone.py": ("link", "../nothing.py")}),
    "JG022": Case("job.yml", JOB + "code: ./src\n", JOB + "code: ./big\n", 6, "holds over 300 MB",
                  {"src/x.py": "", "big/weights.bin": ("sparse", 301 * 2 ** 20)}),
    "JG023": Case("job.yml", JOB.replace("echo hi", "python train.py") + "code: ./src\n",
                  JOB.replace("echo hi", "python trian.py") + "code: ./src\n", 3, "command runs 'trian.py'",
                  {"src/train.py": ""}),
    "JG024": Case("job.yml", JOB + "code: ./src\n", JOB + "code: ./leaky\n", 6, "holds .env",
                  {"src/x.py": "", "leaky/x.py": "", "leaky/.env": "A=1\n"}),
    "JG030": Case("job.yml", JOB, JOB.replace("echo hi", "echo ${{inputs.nope}}"), 3, "no input 'nope'"),
    "JG031": Case("job.yml", JOB, JOB.replace("echo hi", "echo ${{parent.inputs.x}}"), 3,
                  "Azure does not substitute here"),
    "JG032": Case("job.yml", JOB, JOB.replace("echo hi", "echo $[[--x 1]]"), 3, "optional segments work only in "
                  "components"),
    "JG033": Case("comp.yml", COMPONENT + "inputs:\n  a: {type: string, optional: true}\ncommand: echo $[[--a "
                  "${{inputs.a}}]]\n", COMPONENT + "inputs:\n  a: {type: string}\ncommand: echo $[[--a "
                  "${{inputs.a}}]]\n", 8, "required input 'a' is inside $[[...]]"),
    "JG034": Case("comp.yml", COMPONENT + "inputs:\n  a: {type: string, optional: true}\ncommand: echo $[[--a "
                  "${{inputs.a}}]]\n", COMPONENT + "inputs:\n  a: {type: string, optional: true}\ncommand: echo --a "
                  "${{inputs.a}}\n", 8, "optional input 'a' is used outside $[[...]]"),
    "JG035": Case("comp.yml", COMPONENT + "inputs:\n  a: {type: string, optional: true}\ncommand: echo $[[--a "
                  "${{inputs.a}}]]\n", COMPONENT + "inputs:\n  a: {type: string, optional: true}\ncommand: echo [--a "
                  "${{inputs.a}}]\n", 8, "the preview's optional segment"),
    "JG036": Case("comp.yml", COMPONENT + "command: echo hi\n", COMPONENT + "command: |\n  echo \\\n  hi\n", 6,
                  "continues lines with '\\'"),
    "JG037": Case("job.yml", JOB.replace("echo hi", "echo \"${{inputs.name}}\"") + "inputs:\n  name: a;b\n",
                  JOB.replace("echo hi", "echo ${{inputs.name}}") + "inputs:\n  name: a;b\n", 7,
                  "input 'name' holds ;: characters the shell interprets"),
    "JG038": Case("job.yml", JOB.replace("echo hi", "echo ${{inputs.name}}") + "inputs:\n  name: my run\n",
                  JOB.replace("echo hi", "python x.py --name ${{inputs.name}}") + "inputs:\n  name: my run\n", 7,
                  "holds spaces: pasted unquoted after an option"),
    "JG039": Case("job.yml", JOB, JOB.replace("command: echo hi\n", ""), 1, "a command job needs a command"),
    "JG040": Case("job.yml", JOB + "inputs:\n  good: 1\n", JOB + "inputs:\n  1bad: 1\n", 7,
                  "'1bad' is not a valid input name"),
    "JG041": Case("job.yml", JOB + "inputs:\n  path_x: 1\n", JOB + "inputs:\n  path: 1\n", 7,
                  "input name 'path' is reserved"),
    "JG042": Case("job.yml", JOB + "inputs:\n  epochs: 3\n", JOB + "inputs:\n  epochs: {type: integer, default: 3}\n",
                  7, "written as a typed component input"),
    "JG043": Case("job.yml", JOB + "inputs:\n  data: {type: uri_folder, path: ./data}\n",
                  JOB + "inputs:\n  data: {type: uri_folder, path: ./nope}\n", 7, "path './nope' does not exist",
                  {"data/x.csv": ""}),
    "JG044": Case("comp.yml", COMPONENT + "inputs:\n  a: {type: string}\ncommand: echo ${{inputs.a}}\n",
                  COMPONENT + "inputs:\n  a: {type: strin}\ncommand: echo ${{inputs.a}}\n", 7,
                  "unknown input type 'strin'"),
    "JG045": Case("comp.yml", COMPONENT + "inputs:\n  a: {type: uri_folder}\ncommand: ls ${{inputs.a}}\n",
                  COMPONENT + "inputs:\n  a: {type: path}\ncommand: ls ${{inputs.a}}\n", 7, "the preview's type 'path'"),
    "JG046": Case("comp.yml", COMPONENT + "inputs:\n  lr: {type: number, default: 1e-3}\ncommand: echo ${{inputs.lr}}\n",
                  COMPONENT + "inputs:\n  n: {type: integer, default: abc}\ncommand: echo ${{inputs.n}}\n", 7,
                  "default 'abc' is not a integer"),
    "JG050": Case("job.yml", JOB + "distribution: {type: pytorch}\n", JOB + "distribution: {type: horovod}\n", 6,
                  "unknown distribution type 'horovod'"),
    "JG051": Case("job.yml", JOB + "distribution: {type: pytorch}\n",
                  JOB + "distribution:\n  type: pytorch\n  process_count: 2\n", 8, "unknown key 'process_count'"),
    "JG052": Case("job.yml", JOB + "distribution: {type: mpi, process_count_per_instance: 1}\n",
                  JOB + "distribution:\n  type: mpi\n  process_count_per_instance: 0\n", 8,
                  "process_count_per_instance is 0"),
    "JG053": Case("job.yml", JOB + "resources: {instance_count: 1}\n", JOB + "resources:\n  instance_cout: 2\n", 7,
                  "unknown key 'instance_cout' in resources"),
    "JG054": Case("job.yml", JOB + "resources: {instance_count: 1}\n", JOB + "resources:\n  instance_count: 0\n", 7,
                  "instance_count is 0"),
    "JG055": Case("job.yml", JOB + "resources: {instance_count: 2}\ndistribution: {type: pytorch}\n",
                  JOB + "resources:\n  instance_count: 2\n", 7, "instance_count 2 without a distribution"),
    "JG056": Case("job.yml", SERVERLESS + "resources:\n  instance_type: Standard_NC4as_T4_v3\n",
                  SERVERLESS + "resources:\n  instance_type: Standard_NC4as_T4_v3\ndistribution:\n  type: pytorch\n"
                  "  process_count_per_instance: 2\n", 6, "2 processes per node but Standard_NC4as_T4_v3 has 1 GPU"),
    "JG057": Case("job.yml", SERVERLESS + "resources:\n  instance_type: Standard_NC4as_T4_v3\n",
                  SERVERLESS + "resources:\n  instance_type: Standard_NC6\n", 6, "Standard_NC6 (NC) was retired"),
    "JG058": Case("job.yml", SERVERLESS + "resources:\n  instance_type: Standard_DS3_v2\n",
                  SERVERLESS + "resources:\n  instance_type: Standard_Bogus9\n", 6, "'Standard_Bogus9' is not in the "
                  "VM size table"),
    "JG059": Case("job.yml", JOB.replace("echo hi", "torchrun --nproc_per_node 2 train.py")
                  + "distribution: {type: pytorch, process_count_per_instance: 1}\n",
                  JOB.replace("echo hi", "torchrun --nproc_per_node 2 train.py")
                  + "distribution:\n  type: pytorch\n  process_count_per_instance: 2\n", 8,
                  "starts torchrun and the pytorch distribution starts it 2 times per node"),
    "JG060": Case("job.yml", JOB.replace("echo hi", "python train.py --local_rank $LOCAL_RANK"),
                  JOB.replace("echo hi", "python train.py --local_rank $RANK"), 3, "--local_rank is given $RANK"),
    "JG061": Case("job.yml", JOB + "resources: {shm_size: 16g}\n", JOB + "resources:\n  shm_size: lots\n", 7,
                  "shm_size 'lots' is not a size"),
    "JG062": Case("job.yml", JOB + "resources: {shm_size: 16g}\n",
                  JOB + "resources:\n  shm_size: 8g\n  docker_args: --shm-size=16g\n", 8,
                  "docker_args sets --shm-size or --ipc beside shm_size"),
    "JG063": Case("job.yml", JOB + "limits: {timeout: 3600}\n", JOB + "limits:\n  timeout: 0\n", 7,
                  "limits.timeout must be a positive number"),
    "JG064": Case("job.yml", JOB + "queue_settings: {job_tier: spot}\n", JOB + "queue_settings:\n  job_tier: cheap\n",
                  7, "unknown job_tier 'cheap'"),
    "JG065": Case("job.yml", JOB + "services:\n  shell:\n    type: ssh\n    ssh_public_keys: ssh-ed25519 A\n"
                  "  old:\n    type: ssh\n    properties: {ssh_public_keys: ssh-ed25519 A}\n",
                  JOB + "services:\n  shell:\n    type: ssh\n", 7, "ssh service 'shell' has no ssh_public_keys"),
    "JG066": Case("job.yml", JOB, JOB.replace("azureml:env@latest", "azureml:env@lates"), 4, "asks for label 'lates'"),
    "JG067": Case("job.yml", SERVERLESS + "resources: {instance_type: Standard_E4s_v3}\nqueue_settings: {job_tier: spot}\n",
                  JOB + "queue_settings:\n  job_tier: spot\n", 7, "job_tier spot has no effect on compute azureml:cpu"),
    "JG068": Case("job.yml", SERVERLESS + "resources: {instance_type: Standard_E4s_v3}\nidentity: {type: user_identity}\n",
                  SERVERLESS + "resources: {instance_type: Standard_E4s_v3}\nidentity:\n  type: managed\n", 6,
                  "no system-assigned identity to use"),
    "JG070": Case("pipe.yml", step("a: {type: command, command: echo hi, environment: azureml:env@latest}\n"),
                  PIPELINE + "jobs: {}\n", 5, "a pipeline needs jobs"),
    "JG071": Case("pipe.yml", step("""\
                      a:
                        component: ./step.yml
                        inputs: {epochs: 3}
                  """), step("""\
                      a:
                        component: ./step.yml
                        inputs: {epochs: '${{parent.inputs.nope}}'}
                  """), 8, "the pipeline declares no input 'nope'", {"step.yml": STEP_COMPONENT}),
    "JG072": Case("pipe.yml", step("""\
                      a:
                        component: ./step.yml
                        inputs: {epochs: 3}
                  """), step("""\
                      a:
                        component: ./step.yml
                        inputs: {epochs: 3}
                        outputs: {out: '${{parent.outputs.nope}}'}
                  """), 9, "the pipeline declares no output 'nope'", {"step.yml": STEP_COMPONENT}),
    "JG073": Case("pipe.yml", step("""\
                      a:
                        component: ./step.yml
                        inputs: {epochs: 3}
                  """), step("""\
                      a:
                        component: ./step.yml
                        inputs: {epochs: '${{parent.jobs.b.outputs.out}}'}
                  """), 8, "there is no step 'b'", {"step.yml": STEP_COMPONENT}),
    "JG074": Case("pipe.yml", step("""\
                      a:
                        component: ./step.yml
                        inputs: {epochs: 3}
                  """), step("""\
                      a:
                        component: ./step.yml
                        inputs: {epochs: 3, lr: 0.1}
                  """), 8, "passes input 'lr' that its component does not declare", {"step.yml": STEP_COMPONENT}),
    "JG075": Case("pipe.yml", step("""\
                      a:
                        component: ./step.yml
                        inputs: {epochs: 3}
                  """), step("""\
                      a:
                        component: ./step.yml
                        inputs: {}
                  """), 8, "does not give required input 'epochs'", {"step.yml": STEP_COMPONENT}),
    "JG076": Case("pipe.yml", step("""\
                      a:
                        component: ./step.yml
                        inputs: {epochs: 3}
                  """), step("""\
                      a:
                        component: ./step.yml
                        inputs: {epochs: '${{parent.jobs.b.outputs.out}}'}
                      b:
                        component: ./step.yml
                        inputs: {epochs: '${{parent.jobs.a.outputs.out}}'}
                  """), 6, "steps depend on each other in a cycle", {"step.yml": STEP_COMPONENT}),
    "JG077": Case("pipe.yml", step("""\
                      a:
                        component: ./step.yml
                        inputs: {epochs: 3}
                  """), step("""\
                      a:
                        component: ./missing.yml
                  """), 7, "component file './missing.yml' does not exist", {"step.yml": STEP_COMPONENT}),
    "JG078": Case("pipe.yml", PIPELINE + "inputs: {n: 3}\njobs:\n  a:\n    component: ./step.yml\n    inputs: {epochs: "
                  "'${{parent.inputs.n}}'}\n", PIPELINE + "inputs: {n: 3}\njobs:\n  a:\n    component: ./step.yml\n"
                  "    inputs: {epochs: '${{inputs.n}}'}\n", 9, "inside a pipeline step use ${{parent.inputs.n}}",
                  {"step.yml": STEP_COMPONENT}),
    "JG080": Case("comp.yml", COMPONENT + "command: echo hi\n", COMPONENT + "command: echo hi\nenvironment_variables:"
                  " {A: '1'}\n", 7, "'environment_variables' on a component is dropped"),
    "JG081": Case("comp.yml", COMPONENT + "command: echo hi\n", COMPONENT + "command: echo hi\nretries: 3\n", 7,
                  "unknown component key 'retries'"),
    "JG090": Case("sweep.yml", SWEEP + "inputs: {lr: '${{search_space.lr}}'}\nsearch_space:\n  lr: {type: uniform, "
                  "min_value: 0.01, max_value: 0.1}\n", SWEEP + "inputs: {lr: '${{search_space.rate}}'}\nsearch_space:\n"
                  "  lr: {type: uniform, min_value: 0.01, max_value: 0.1}\n", 9, "the search space has no 'rate'"),
    "JG091": Case("sweep.yml", SWEEP + "inputs: {lr: '${{search_space.lr}}'}\nsearch_space:\n  lr: {type: uniform, "
                  "min_value: 0.01, max_value: 0.1}\n", SWEEP + "inputs: {lr: '${{search_space.lr}}'}\nsearch_space:\n"
                  "  lr: {type: uniform, min_value: 0.01, max_value: 0.1}\n  wd: {type: choice, values: [0, 1]}\n", 12,
                  "search space parameter 'wd' is never used"),
    "JG092": Case("sweep.yml", SWEEP.replace("random", "grid") + "inputs: {lr: '${{search_space.lr}}'}\nsearch_space:\n"
                  "  lr: {type: choice, values: [0.1]}\n", SWEEP.replace("random", "grid")
                  + "inputs: {lr: '${{search_space.lr}}'}\nsearch_space:\n  lr: {type: uniform, min_value: 0.01, "
                  "max_value: 0.1}\n", 11, "grid sampling needs choice parameters"),
    "JG093": Case("sweep.yml", SWEEP + "inputs: {lr: '${{search_space.lr}}'}\nsearch_space:\n  lr: {type: choice, "
                  "values: [0.1]}\nlimits: {max_total_trials: 2, max_concurrent_trials: 2}\n",
                  SWEEP + "inputs: {lr: '${{search_space.lr}}'}\nsearch_space:\n  lr: {type: choice, values: [0.1]}\n"
                  "limits:\n  max_total_trials: 2\n  max_concurrent_trials: 5\n", 14, "max_concurrent_trials 5 is above"),
    "JG094": Case("sweep.yml", SWEEP + "inputs: {lr: '${{search_space.lr}}'}\nsearch_space:\n  lr: {type: uniform, "
                  "min_value: 0.01, max_value: 0.1}\n", SWEEP + "inputs: {lr: '${{search_space.lr}}'}\nsearch_space:\n"
                  "  lr:\n    type: uniform\n    min_value: 0.1\n    max_value: 0.01\n", 13, "min_value 0.1 is not below"),
    "JG100": Case("env.yml", ENV + "image: python:3.11\n", ENV + "description: nothing\n", 1,
                  "an environment needs an image"),
    "JG101": Case("env.yml", ENV + "image: python:3.11\nconda_file: conda.yml\n", ENV + "image: python:3.11\n"
                  "conda_file: nope.yml\n", 5, "conda file 'nope.yml' does not exist",
                  {"conda.yml": "dependencies: [python=3.11]\n"}),
    "JG102": Case("env.yml", ENV + "image: python:3.11\nconda_file: conda.yml\n", ENV + "image: python:3.11\n"
                  "conda_file: two.yml\n", 5, "lists onnxruntime and onnxruntime-openvino",
                  {"conda.yml": "dependencies: [python=3.11, {pip: [onnxruntime]}]\n",
                   "two.yml": "dependencies: [python=3.11, {pip: [onnxruntime, onnxruntime-openvino]}]\n"}),
    "JG103": Case("env.yml", ENV + "build: {path: ./ctx}\n", ENV + "build:\n  path: ./empty\n", 5,
                  "build context './empty' has no Dockerfile", {"ctx/Dockerfile": "FROM python:3.11\n", "empty/x": ""}),
    "JG104": Case("compute.yml", COMPUTE + "size: Standard_DS3_v2\nmin_instances: 0\nmax_instances: 2\n",
                  COMPUTE + "size: Standard_DS3_v2\nmin_instances: 3\nmax_instances: 1\n", 5,
                  "min_instances 3 is above max_instances 1"),
    "JG105": Case("compute.yml", COMPUTE + "size: Standard_NC4as_T4_v3\nmin_instances: 0\nmax_instances: 2\n",
                  COMPUTE + "size: Standard_NC4as_T4_v3\nmin_instances: 1\nmax_instances: 2\n", 5,
                  "min_instances 1 keeps 1 GPU node(s) billed"),
    "JG106": Case("compute.yml", COMPUTE + "size: Standard_DS3_v2\n", COMPUTE + "size: Standard_DS3_v2\n", 3,
                  "compute 'cpu' is also defined in", {"other.yml": COMPUTE + "size: Standard_DS4_v2\n"}),
    "JG107": Case("deploy.yml", DEPLOYMENT + "code_configuration: {code: ./src, scoring_script: score.py}\n",
                  DEPLOYMENT + "code_configuration:\n  code: ./src\n  scoring_script: scor.py\n", 9,
                  "scoring script 'scor.py' is not in", {"src/score.py": ""}),
    "JG108": Case("data.yml", DATA + "type: uri_file\npath: ./iris.csv\n", DATA + "type: uri_file\npath: ./nope.csv\n",
                  5, "data path './nope.csv' does not exist", {"iris.csv": ""}),
    "JG109": Case("data.yml", DATA + "type: mltable\npath: ./table\n", DATA + "type: mltable\npath: ./folder\n", 5,
                  "mltable data asset folder './folder' has no MLTable file",
                  {"table/MLTable": "paths: [{file: ./x.csv}]\n", "folder/x.csv": ""}),
    "JG110": Case("schedule.yml", f"$schema: {SCHEMA}schedule.schema.json\nname: s\ntrigger:\n  type: cron\n"
                  "  expression: '0 2 * * 1'\ncreate_job: ./job.yml\n", f"$schema: {SCHEMA}schedule.schema.json\n"
                  "name: s\ntrigger:\n  type: cron\n  expression: '0 25 * * *'\ncreate_job: ./job.yml\n", 5,
                  "hour 25 is outside 0-23", {"job.yml": JOB}),
    "JG111": Case("deployment.yml", BATCH_DEPLOYMENT + "  mini_batch_size: 10\n  error_threshold: -1\n",
                  BATCH_DEPLOYMENT + "  mini_batch_size: 0\n  error_threshold: -1\n", 10,
                  "mini_batch_size 0 cannot run: it counts files per run() call"),
    "JG112": Case("deployment.yml", BATCH_DEPLOYMENT + "  environment_variables: {WORKER_COUNT: '2'}\n",
                  BATCH_DEPLOYMENT + "  mini_batch_size: 10\nenvironment_variables: {WORKER_COUNT: '2'}\n", 11,
                  "drops a model batch deployment's top-level environment_variables"),
}
# JG106 needs two files that disagree: the valid case has the other file agree with it.
VALID_FILES = {"JG106": {"other.yml": COMPUTE + "size: Standard_DS3_v2\n"}}


def _write(folder: Path, files: dict) -> None:
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple) and content[0] == "link":
            os.symlink(content[1], path)
        elif isinstance(content, tuple) and content[0] == "sparse":
            with open(path, "wb") as fh:
                fh.truncate(content[1])
        else:
            path.write_text(content)


def _findings(folder: Path, case: Case, text: str, files: dict, rule: str):
    folder.mkdir()
    _write(folder, files)
    (folder / case.name).write_text(text)
    targets = [folder / case.name] + ([folder / "other.yml"] if "other.yml" in files else [])
    return [d for d in lint_paths(targets, azure=case.azure) if d.rule == rule and d.path.endswith(case.name)]


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_reports_the_invalid_case_on_its_line(tmp_path, rule):
    case = CASES[rule]
    found = _findings(tmp_path / "invalid", case, case.invalid, case.files, rule)
    assert found, f"{rule} did not report:\n{case.invalid}"
    assert any(case.text in d.format() and d.line == case.line for d in found), \
        f"{rule}: expected line {case.line} with {case.text!r}, got:\n" + "\n".join(d.format() for d in found)
    assert all(d.format().endswith(f"[{rule}]") and d.severity == (d.severity if rule in ("JG056",) else
                                                                   RULES[rule].severity) for d in found)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_leaves_the_valid_case_alone(tmp_path, rule):
    case = CASES[rule]
    files = {**case.files, **VALID_FILES.get(rule, {})}
    found = _findings(tmp_path / "valid", case, case.valid, files, rule)
    assert not found, "\n".join(d.format() for d in found)


def test_every_rule_has_a_table_row():
    assert sorted(RULES) == sorted(CASES)


def test_file_prefixed_paths_are_local_paths(tmp_path):
    """azure-ai-ml reads file:./x (and the examples' file://data) as local paths: lint checks them too."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "MLTable").write_text("paths:\n  - file: ./x.csv\n")
    for path, found in (("file:./nope", True), ("file://nope", True), ("file://data", False), ("file:data", False)):
        (tmp_path / "job.yml").write_text(JOB + f"inputs:\n  data: {{type: mltable, path: '{path}'}}\n")
        missing = [d for d in lint_paths([tmp_path / "job.yml"], azure=False) if d.rule == "JG043"]
        assert bool(missing) == found, (path, missing)
        if found:
            assert missing[0].line == 7 and "does not exist" in missing[0].message


def test_a_disable_comment_silences_a_rule_for_a_line_or_the_file(tmp_path):
    text = JOB + "inputs:\n  path: 1  # jobgen: disable=JG041\n  home: 2\n"
    (tmp_path / "job.yml").write_text(text)
    rules = [(d.rule, d.line) for d in lint_paths([tmp_path / "job.yml"], azure=False)]
    assert ("JG041", 8) in rules and ("JG041", 7) not in rules
    (tmp_path / "job.yml").write_text("# jobgen: disable=JG041\n" + text)
    assert not [d for d in lint_paths([tmp_path / "job.yml"], azure=False) if d.rule == "JG041"]


def test_disable_flag_and_list_rules(cli, tmp_path):
    (tmp_path / "job.yml").write_text(JOB + "inputs:\n  path: 1\n")
    rc, out, err = cli("lint", tmp_path / "job.yml", "--no-azure")
    assert rc == 1 and "[JG041]" in out
    rc, out, err = cli("lint", tmp_path / "job.yml", "--no-azure", "--disable", "JG041,JG003")
    assert rc == 0 and "JG041" not in out
    rc, out, err = cli("lint", tmp_path / "job.yml", "--disable", "JG999")
    assert rc == 1 and "unknown rule JG999" in err
    rc, out, err = cli("lint", "--list-rules")
    assert rc == 0 and len(out.splitlines()) == len(RULES) and out.startswith("JG001  error")


def test_a_pipeline_steps_queue_settings_and_identity_are_judged_where_the_step_runs(tmp_path):
    """A step on the pipeline's cluster asking for the spot tier gets JG067; a step that runs serverless
    (the pipeline's default_compute) with a managed identity and no id of one gets JG068."""
    step = "    type: command\n    command: echo hi\n    environment: azureml:env@latest\n"
    (tmp_path / "on-cluster.yml").write_text(PIPELINE + "jobs:\n  train:\n" + step + "    queue_settings: {job_tier: spot}\n")
    (tmp_path / "serverless.yml").write_text(PIPELINE.replace("azureml:cpu", "azureml:serverless") + "jobs:\n  train:\n"
                                             + step + "    resources: {instance_type: Standard_E4s_v3}\n"
                                             "    identity: {type: managed}\n")
    found = {(Path(d.path).name, d.rule, d.line) for d in lint_paths(sorted(tmp_path.iterdir()), azure=False)}
    assert ("on-cluster.yml", "JG067", 10) in found
    assert ("serverless.yml", "JG068", 11) in found


def test_a_sweep_whose_trial_names_a_vm_size_is_serverless_for_its_identity(tmp_path):
    """A sweep without compute whose trial gives resources.instance_type runs on serverless compute:
    a managed identity without an id of one cannot work there (JG068)."""
    text = SWEEP.replace("compute: azureml:cpu\n", "") + "  resources: {instance_type: Standard_E4s_v3}\n" \
        "search_space: {lr: {type: uniform, min_value: 0.01, max_value: 0.1}}\nidentity: {type: managed}\n"
    (tmp_path / "sweep.yml").write_text(text)
    found = [d for d in lint_paths([tmp_path / "sweep.yml"], azure=False) if d.rule == "JG068"]
    assert found and found[0].line == 10


def test_a_key_file_in_a_docker_build_context_is_found_as_in_a_code_folder(tmp_path):
    """The build context is uploaded whole for the image build: a private key in it is JG024."""
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "Dockerfile").write_text("FROM python:3.11\n")
    (tmp_path / "docker" / ".env").write_text("TOKEN=x\n")
    (tmp_path / "env.yml").write_text(f"$schema: {SCHEMA}environment.schema.json\nname: e\nbuild:\n  path: docker\n")
    found = [d for d in lint_paths([tmp_path / "env.yml"], azure=False) if d.rule == "JG024"]
    assert found and "build context 'docker' holds .env" in found[0].format()
    assert "move it out of the build context" in found[0].format()
