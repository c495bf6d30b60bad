"""Zero to JupyterHub: deploy/z2jh's Helm values are valid for the chart, and its files agree.

No Kubernetes cluster and no `helm` binary are needed (neither can run here): the values are checked
as `helm` checks them before rendering, the chart's own values merged with ours and validated against
the chart's values schema (tests/fixtures/z2jh, from the chart's repository). The single-user image is
built and run by hand (docs/classroom.md, "A class on Kubernetes").
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
FIX = REPO / "tests" / "fixtures" / "z2jh"
VALUES = REPO / "deploy" / "z2jh" / "values.yaml"


def helm_merge(base: dict, over: dict) -> dict:
    """Helm's coalescing of values: maps merge key by key, anything else (lists too) replaces."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = helm_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def merged(values: dict) -> dict:
    return helm_merge(yaml.safe_load((FIX / "values.yaml").read_text()), values)


def schema() -> dict:
    return yaml.safe_load((FIX / "values.schema.yaml").read_text())


def test_the_course_values_pass_the_charts_schema():
    ours = yaml.safe_load(VALUES.read_text())
    jsonschema.validate(merged(ours), schema())


@pytest.mark.parametrize(
    "bad, where",
    [
        ({"singleuser": {"memory": {"limitt": "2G"}}}, "limitt"),  # a misspelt key
        ({"singleuser": {"cmd": 3}}, "cmd"),  # a wrong type
        ({"cull": {"enabled": "yes"}}, "enabled"),
    ],
)
def test_the_schema_check_rejects_what_helm_would(bad, where):
    ours = helm_merge(yaml.safe_load(VALUES.read_text()), bad)
    with pytest.raises(jsonschema.ValidationError) as e:
        jsonschema.validate(merged(ours), schema())
    assert where in str(e.value)


def test_pods_start_the_course_and_its_vm_engine_unprivileged():
    ours = yaml.safe_load(VALUES.read_text())
    su = ours["singleuser"]
    start = "/opt/dockercourse/src/deploy/z2jh/start"
    assert su["cmd"] == [start, "jupyterhub-singleuser"]
    assert (REPO / "deploy" / "z2jh" / "start").stat().st_mode & 0o111
    dockerfile = (REPO / "deploy" / "z2jh" / "Dockerfile").read_text()
    assert f'CMD ["{start}", "jupyterhub-singleuser"]' in dockerfile
    # no privileged pod, no host socket: the engine is the VM in the pod
    text = VALUES.read_text()
    assert "privileged" not in text.replace("no privileged", "") and "docker.sock" not in text
    # the memory limit holds what the Binder session measured (a 768 MB guest: about 1.25 GB in all)
    assert su["extraEnv"]["DOCKERCOURSE_VM_MEMORY"] == "768"
    assert su["memory"]["limit"] == "2G" and su["memory"]["guarantee"] == "1.5G"
    # the culler stops idle servers, and the pod (with its VM) goes with the server
    assert ours["cull"]["enabled"] is True


def test_the_image_context_leaves_out_the_checkout_s_bulk():
    lines = (REPO / "deploy" / "z2jh" / "Dockerfile.dockerignore").read_text().splitlines()
    ignore = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    assert {".git", ".venv", "tests"} <= set(ignore)
    assert not {"src", "notebooks", "checks", "lessons", "binder"} & set(ignore)
