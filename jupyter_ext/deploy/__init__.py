"""Deploying a recipe: on this machine (a local vLLM server) or to a SageMaker endpoint.

`sagemaker.plan_deployment` turns a recipe into the exact AWS requests (pure, so it can be
shown with `dry_run` before anything is paid for); `sagemaker.deploy` makes them, waits for
the endpoint and rolls back on failure; `aws` holds the boto3 plumbing both share with
`jupyter_ext.autoscale`.
"""
