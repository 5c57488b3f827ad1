"""The verb layer: one typed core function per verb, and the one option table of the faces.

`run` (models, instances, plan, recipe, bench, compare, price, chart, prepare, serve, stop)
`deploy` (deploy, endpoints, undeploy, invoke, autoscale, simulate), `optimize` (optimize,
recommend, export) and `tune` (tune, report) hold the functions;
`table` holds the declarative verb and option table that builds the CLI's and the magic's
parsers; `results` the result objects and the readers of `@name` arguments. Nothing here
imports IPython or ipywidgets: the faces (jupyter_ext/faces/, widgets/) sit on top.
"""

from . import deploy, optimize, results, run, table, tune

# verb name -> core function; a face calls FUNCTIONS[verb](**the verb's parsed options)
FUNCTIONS = {
    "models": run.models, "instances": run.instances, "plan": run.plan, "recipe": run.recipe,
    "compare": run.compare, "price": run.price, "chart": run.chart, "prepare": run.prepare,
    "serve": run.serve, "stop": run.stop, "tune": tune.tune, "report": tune.report,
    "deploy": deploy.deploy, "endpoints": deploy.endpoints, "undeploy": deploy.undeploy,
    "invoke": deploy.invoke, "autoscale": deploy.autoscale, "simulate": deploy.simulate,
    "optimize": optimize.optimize, "recommend": optimize.recommend, "export": optimize.export,
}

__all__ = ["FUNCTIONS", "deploy", "optimize", "results", "run", "table", "tune"]
