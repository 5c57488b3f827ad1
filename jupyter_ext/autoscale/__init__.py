"""Autoscaling for SageMaker endpoints: policies to attach and a fleet simulation to try them first."""
