"""Planning: which instance and precision fit a model (planner) and what decode speed and price
to expect before measuring (roofline). Sits above the catalog and pricing, which it reads."""

from .planner import PRECISIONS, Plan, PlanRow, plan, weight_bytes
from .roofline import RooflineEstimate, estimate_blended_price, predict_decode

__all__ = ["PRECISIONS", "Plan", "PlanRow", "RooflineEstimate", "estimate_blended_price", "plan",
           "predict_decode", "weight_bytes"]
