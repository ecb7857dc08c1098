"""The language layer: two front-ends (Python builder, YAML loader) and one IR."""

from amml.lang.builder import ParamRef, StepRef, Workflow, active_workflow
from amml.lang.ir import LoadedWorkflow, SourceMap, StepIR, WorkflowIR
from amml.lang.spec import Input
from amml.lang.triggers import Cron, Drift, Labels, NewData, TriggerIR
from amml.lang.validate import ResolvedStep, ValidatedWorkflow, validate
from amml.lang.yaml_loader import load_yaml_file, load_yaml_text

__all__ = [
    "Cron",
    "Drift",
    "Input",
    "Labels",
    "LoadedWorkflow",
    "NewData",
    "ParamRef",
    "ResolvedStep",
    "SourceMap",
    "StepIR",
    "StepRef",
    "TriggerIR",
    "ValidatedWorkflow",
    "Workflow",
    "WorkflowIR",
    "active_workflow",
    "load_yaml_file",
    "load_yaml_text",
    "validate",
]
