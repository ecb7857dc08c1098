"""Small workflow documents shared by tests."""

from __future__ import annotations

SMALL_YAML = """\
name: small
params:
  periods: 600
  target: temperature
steps:
  raw:
    op: source.synthetic
    with: {periods: "${params.periods}", seed: 3}
  clean:
    op: preprocess
    inputs: {table: raw}
    with: {scale: zscore, exclude: [is_anomaly]}
  splits:
    op: split
    inputs: {table: clean}
    with: {train: 0.6, val: 0.2}
  model:
    op: train
    inputs: {train: splits.train}
    with: {model: linear, target: "${params.target}", lookback: 24, horizon: 6}
  score:
    op: evaluate
    inputs: {model: model, table: splits.test}
    with: {target: "${params.target}"}
  alarms:
    op: detect.zscore
    inputs: {table: raw}
    with: {label: is_anomaly}
"""
