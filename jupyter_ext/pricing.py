"""Dollars per million tokens, from an instance rate and measured (or estimated) speed.

The blended price is the seed toolkit's formula (input:output tokens weighted 3:1), with
its parts named exactly as written so a user can redo it by hand:

    total_throughput_tok_s = (1 / p50_inter_token_latency_s) * concurrency
    blended_usd_per_1M     = (1 - discount) * instance_usd_per_hour
                             / (total_throughput_tok_s * 3600 / 1e6) / 4

Beside it, `output_cost_per_1m` is the direct cost of output tokens from the throughput a
benchmark measured over its wall time. Instance rates come from the bundled catalog
snapshot (dated) or, on request, from the AWS Price List API.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

from .catalog import get_instance
from .catalog.specs import InstanceSpec, html_table, pricing_snapshot, text_table
from .errors import PricingError

PRICING_API_REGION = "us-east-1"  # the Price List API's endpoint; prices of any region
log = logging.getLogger(__name__)


def _positive(name: str, value: Any) -> float:
    """A finite number > 0, or PricingError naming the input."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise PricingError(f"{name} must be a number > 0, got {value!r}.")
    return float(value)


def _rate(value: Any) -> float:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value < 0:
        raise PricingError(f"instance_usd_per_hour must be a number >= 0, got {value!r}.")
    return float(value)


def check_discount(value: Any) -> float:
    """The one check of a discount (a fraction in [0, 1)); PricingError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise PricingError(
            f"discount must be a fraction in [0, 1) (0.3 = 30% off), got {value!r}."
        )
    return float(value)


@dataclass(frozen=True)
class BlendedPrice:
    """Every input and intermediate of the blended price, so the figure can be checked."""

    instance_usd_per_hour: float
    p50_inter_token_latency_s: float
    concurrency: float
    discount: float
    total_throughput_tok_s: float
    million_tokens_per_hour: float  # total_throughput_tok_s * 3600 / 1e6
    blended_usd_per_1M: float
    estimate: bool = False  # True when the latency came from a model, not a measurement
    instance: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        label = "ESTIMATE " if self.estimate else ""
        on = f" on {self.instance}" if self.instance else ""
        return (
            f"{label}blended price{on}: ${self.blended_usd_per_1M:.6f} per 1M tokens\n"
            f"  total_throughput_tok_s = (1 / p50_inter_token_latency_s) * concurrency\n"
            f"                         = (1 / {self.p50_inter_token_latency_s:g}) * "
            f"{self.concurrency:g} = {self.total_throughput_tok_s:g} tok/s\n"
            f"  blended_usd_per_1M     = (1 - discount) * instance_usd_per_hour"
            f" / (total_throughput_tok_s * 3600 / 1e6) / 4\n"
            f"                         = (1 - {self.discount:g}) * {self.instance_usd_per_hour:g}"
            f" / {self.million_tokens_per_hour:g} / 4 = {self.blended_usd_per_1M:.6f}"
        )

    def _repr_html_(self) -> str:
        rows = list(self.to_dict().items())
        return html_table(["field", "value"], rows, caption=str(self).splitlines()[0])


def blended_price(
    instance_usd_per_hour: float,
    p50_inter_token_latency_s: float,
    concurrency: float,
    discount: float = 0.0,
    *,
    estimate: bool = False,
    instance: str | None = None,
) -> BlendedPrice:
    """The blended $/1M tokens (3:1 input:output), exactly the formula in the module docstring."""
    rate = _rate(instance_usd_per_hour)
    itl = _positive("p50_inter_token_latency_s", p50_inter_token_latency_s)
    conc = _positive("concurrency", concurrency)
    disc = check_discount(discount)
    total_throughput_tok_s = (1 / itl) * conc
    million_tokens_per_hour = total_throughput_tok_s * 3600 / 1e6
    blended_usd_per_1M = (1 - disc) * rate / million_tokens_per_hour / 4
    return BlendedPrice(rate, itl, conc, disc, total_throughput_tok_s, million_tokens_per_hour,
                        blended_usd_per_1M, estimate, instance)


def output_cost_per_1m(instance_usd_per_hour: float, output_tok_s: float, discount: float = 0.0) -> float:
    """Direct cost of 1M output tokens at a measured output throughput:

    (1 - discount) * instance_usd_per_hour / (output_tok_s * 3600 / 1e6)
    """
    rate, tput, disc = _rate(instance_usd_per_hour), _positive("output_tok_s", output_tok_s), check_discount(discount)
    return (1 - disc) * rate / (tput * 3600 / 1e6)


@dataclass(frozen=True)
class InstanceRate:
    """An hourly rate and where it came from (catalog snapshot, Price List API, or user)."""

    instance: str
    usd_per_hour: float
    source: str
    date: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        when = f", {self.date}" if self.date else ""
        return f"{self.instance}: ${self.usd_per_hour:g}/hour ({self.source}{when})"


def instance_rate(instance: str | InstanceSpec | float, use_api: bool = False) -> InstanceRate:
    """The on-demand rate of an instance: the catalog snapshot, or the live API if asked.

    With use_api=True and the API unavailable (no credentials, no permission, no boto3), the
    snapshot is used and `source` says so and why; a number passed in is taken as the rate.
    """
    if isinstance(instance, (int, float)) and not isinstance(instance, bool):
        return InstanceRate("custom", _rate(instance), "given by the caller")
    spec = get_instance(instance)
    where = f"local rate: {spec.rate_source}" if spec.kind == "cpu" else f"catalog snapshot: {spec.source}"
    snap = InstanceRate(spec.name, spec.usd_per_hour, where, spec.date)
    if not use_api or spec.kind == "cpu":
        return snap
    try:
        usd = fetch_on_demand_rate(spec.name)
    except PricingError as err:
        log.info("Price List API failed for %s; using the catalog snapshot: %s", spec.name, err)
        return InstanceRate(spec.name, spec.usd_per_hour,
                            f"catalog snapshot, because the Price List API failed: {err}", spec.date)
    return InstanceRate(spec.name, usd, "AWS Price List API (AmazonSageMaker, us-east-1, Hosting)")


def _fallback_text() -> str:
    snap = pricing_snapshot()
    return f"instance_rate() falls back to the bundled snapshot of {snap['date']} ({snap['source']})"


def price_filters(instance_type: str, region: str) -> list[dict[str, str]]:
    """Price List filters for SageMaker real-time hosting of one instance type in a region."""
    return [
        {"Type": "TERM_MATCH", "Field": "instanceName", "Value": instance_type},
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
        {"Type": "TERM_MATCH", "Field": "productFamily", "Value": "ML Instance"},
        # "Hosting" is real-time inference (other values: Training, Notebook, Processing, ...).
        {"Type": "TERM_MATCH", "Field": "platoinstancetype", "Value": "Hosting"},
    ]


def fetch_on_demand_rate(instance_type: str, region: str = "us-east-1", session: Any = None) -> float:
    """Today's on-demand USD/hour for SageMaker real-time inference, from the Price List API.

    `session` is a boto3 Session (or anything with `.client(name, region_name=..., config=...)`);
    the client retries throttling like every other AWS client here (`base.aws_config`), and
    boto3's paginator follows NextToken through every page of products.
    Raises PricingError without credentials, without permission (pricing:GetProducts), or
    when the API has no single hourly USD price for the filters.
    """
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        from .base.aws_config import retry_config
    except ImportError:
        raise PricingError(f"boto3 is not installed (pip install boto3); {_fallback_text()}.") from None
    client = (session or boto3.session.Session()).client("pricing", region_name=PRICING_API_REGION,
                                                        config=retry_config())
    pages = client.get_paginator("get_products").paginate(
        ServiceCode="AmazonSageMaker", Filters=price_filters(instance_type, region),
        PaginationConfig={"PageSize": 100})
    try:
        price_list = [item for page in pages for item in page.get("PriceList", [])]
    except NoCredentialsError:
        raise PricingError(f"no AWS credentials for the Price List API; {_fallback_text()}.") from None
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "ClientError")
        raise PricingError(
            f"the Price List API refused the call ({code}; it needs pricing:GetProducts); "
            f"{_fallback_text()}."
        ) from None
    except BotoCoreError as err:
        raise PricingError(f"the Price List API could not be reached ({err}); {_fallback_text()}.") from None
    return _hourly_usd(price_list, instance_type, region)


def _hourly_usd(price_list: list[Any], instance_type: str, region: str) -> float:
    """The single OnDemand hourly USD price in a PriceList (items are JSON strings)."""
    prices: set[float] = set()
    for item in price_list:
        doc = json.loads(item) if isinstance(item, str) else item
        for term in doc.get("terms", {}).get("OnDemand", {}).values():
            for dim in term.get("priceDimensions", {}).values():
                usd = dim.get("pricePerUnit", {}).get("USD")
                if dim.get("unit", "").lower() in ("hrs", "hours", "hour") and usd and float(usd) > 0:
                    prices.add(float(usd))
    if len(prices) != 1:
        found = "none" if not prices else ", ".join(f"{p:g}" for p in sorted(prices))
        raise PricingError(
            f"expected one hourly on-demand price for {instance_type} in {region}, found {found}; "
            f"{_fallback_text()}."
        )
    return prices.pop()


@dataclass(frozen=True)
class PriceRow:
    """Prices at one concurrency level of a benchmark."""

    concurrency: int
    p50_tpot_s: float
    total_throughput_tok_s: float
    blended_usd_per_1M: float
    output_throughput_tok_s: float
    output_usd_per_1M: float


_PRICE_COLUMNS = ("concurrency", "p50_tpot_s", "total_throughput_tok_s", "blended_usd_per_1M",
                  "output_throughput_tok_s", "output_usd_per_1M")


@dataclass
class PriceTable:
    """Blended and direct $/1M for each concurrency level of one benchmark result."""

    instance: str
    usd_per_hour: float
    rate_source: str
    discount: float
    rows: list[PriceRow] = field(default_factory=list)

    def __iter__(self) -> Iterator[PriceRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _caption(self) -> str:
        return (f"{self.instance} at ${self.usd_per_hour:g}/h ({self.rate_source}), "
                f"discount {self.discount:g}; blended = 3:1 input:output formula fed p50 TPOT")

    def __str__(self) -> str:
        rows = [[getattr(r, c) for c in _PRICE_COLUMNS] for r in self.rows]
        return self._caption() + "\n" + text_table(_PRICE_COLUMNS, rows)

    def _repr_html_(self) -> str:
        rows = [[getattr(r, c) for c in _PRICE_COLUMNS] for r in self.rows]
        return html_table(_PRICE_COLUMNS, rows, caption=self._caption())


def price_levels(result: Any, instance: str | InstanceSpec | float = "local", discount: float = 0.0) -> PriceTable:
    """$/1M tokens for every concurrency level of a benchmark result.

    `result.levels[i]` needs `.concurrency`, `.metrics.tpot.p50` (s) and
    `.metrics.output_throughput` (tok/s). The blended formula is fed vLLM's TPOT p50 as
    `p50_inter_token_latency_s`, not the per-chunk ITL: a streamed chunk can carry several
    tokens (speculative decoding), so per-chunk gaps overstate the time per token.
    """
    rate = instance_rate(instance)
    disc = check_discount(discount)
    rows = []
    for level in getattr(result, "levels", None) or []:
        conc, metrics = level.concurrency, level.metrics
        try:
            bp = blended_price(rate.usd_per_hour, metrics.tpot.p50, conc, disc)
            direct = output_cost_per_1m(rate.usd_per_hour, metrics.output_throughput, disc)
        except PricingError as err:
            raise PricingError(f"concurrency level {conc}: {err}") from None
        rows.append(PriceRow(conc, bp.p50_inter_token_latency_s, bp.total_throughput_tok_s,
                             bp.blended_usd_per_1M, float(metrics.output_throughput), direct))
    if not rows:
        raise PricingError("the result has no concurrency levels to price (expected result.levels).")
    return PriceTable(rate.instance, rate.usd_per_hour, rate.source, disc, rows)
