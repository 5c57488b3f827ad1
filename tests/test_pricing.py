"""Blended price arithmetic, direct output cost, per-level pricing and the Price List API."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from jupyter_ext import pricing
from jupyter_ext.errors import PricingError
from jupyter_ext.pricing import (
    blended_price,
    fetch_on_demand_rate,
    instance_rate,
    output_cost_per_1m,
    price_filters,
    price_levels,
)

boto3 = pytest.importorskip("boto3")
from botocore.stub import Stubber  # noqa: E402


def test_blended_price_hand_computed():
    # total_throughput_tok_s = (1 / 0.02) * 8 = 400 tok/s
    # 400 * 3600 / 1e6 = 1.44 M tokens/hour
    # blended_usd_per_1M = (1 - 0) * 10 / 1.44 / 4 = 1.7361111
    bp = blended_price(10.0, 0.02, 8)
    assert bp.total_throughput_tok_s == pytest.approx(400)
    assert bp.million_tokens_per_hour == pytest.approx(1.44)
    assert bp.blended_usd_per_1M == pytest.approx(1.736111, abs=1e-6)
    assert not bp.estimate
    text = str(bp)
    assert "(1 / 0.02) * 8 = 400" in text and "1.736111" in text
    assert bp.to_dict()["p50_inter_token_latency_s"] == 0.02


def test_blended_price_discount():
    # (1 - 0.25) * 10 / 1.44 / 4 = 1.3020833
    assert blended_price(10.0, 0.02, 8, discount=0.25).blended_usd_per_1M == pytest.approx(1.302083, abs=1e-6)
    assert blended_price(0.0, 0.02, 8).blended_usd_per_1M == 0.0  # a free machine costs nothing


@pytest.mark.parametrize("args,match", [
    ((10.0, 0.0, 8), "p50_inter_token_latency_s"),
    ((10.0, -0.02, 8), "p50_inter_token_latency_s"),
    ((10.0, None, 8), "p50_inter_token_latency_s"),
    ((10.0, 0.02, 0), "concurrency"),
    ((-1.0, 0.02, 8), "instance_usd_per_hour"),
    ((10.0, 0.02, 8, 1.0), "discount"),
    ((10.0, 0.02, 8, -0.1), "discount"),
])
def test_blended_price_errors(args, match):
    with pytest.raises(PricingError, match=match):
        blended_price(*args)


def test_output_cost_per_1m():
    # 400 tok/s -> 1.44 M tokens/hour -> 10 / 1.44 = 6.944444 $ per 1M output tokens.
    assert output_cost_per_1m(10.0, 400) == pytest.approx(6.944444, abs=1e-6)
    assert output_cost_per_1m(10.0, 400, discount=0.5) == pytest.approx(3.472222, abs=1e-6)
    for bad in (0, -3, None):
        with pytest.raises(PricingError, match="output_tok_s"):
            output_cost_per_1m(10.0, bad)


def _level(concurrency, tpot_p50, output_throughput):
    return SimpleNamespace(concurrency=concurrency, metrics=SimpleNamespace(
        tpot=SimpleNamespace(p50=tpot_p50), output_throughput=output_throughput))


def test_price_levels_on_fake_result():
    result = SimpleNamespace(levels=[_level(1, 0.05, 19.0), _level(4, 0.08, 45.0)])
    table = price_levels(result, instance=1.0)
    assert len(table) == 2 and table.usd_per_hour == 1.0
    first, second = list(table)
    # c=1: 1/0.05 = 20 tok/s -> 0.072 M/h -> 1 / 0.072 / 4 = 3.472222; direct 1 / 0.0684 = 14.619883
    assert first.blended_usd_per_1M == pytest.approx(3.472222, abs=1e-6)
    assert first.output_usd_per_1M == pytest.approx(14.619883, abs=1e-6)
    # c=4: 4/0.08 = 50 tok/s -> 0.18 M/h -> 1 / 0.18 / 4 = 1.388889
    assert second.total_throughput_tok_s == pytest.approx(50)
    assert second.blended_usd_per_1M == pytest.approx(1.388889, abs=1e-6)
    assert "<table>" in table._repr_html_() and "blended_usd_per_1M" in str(table)
    g5 = price_levels(result, instance="ml.g5.2xlarge", discount=0.1)
    assert g5.rows[0].blended_usd_per_1M == pytest.approx(0.9 * 1.515 / 0.072 / 4)


def test_price_levels_errors_name_the_level():
    result = SimpleNamespace(levels=[_level(1, 0.05, 19.0), _level(4, None, 45.0)])
    with pytest.raises(PricingError, match="concurrency level 4"):
        price_levels(result, instance=1.0)
    with pytest.raises(PricingError, match="no concurrency levels"):
        price_levels(SimpleNamespace(levels=[]), instance=1.0)


# --- AWS Price List API ---------------------------------------------------------------

def _price_item(instance: str, usd: str) -> str:
    """One PriceList entry shaped like the API's (a JSON document as a string)."""
    sku = "ABCDEFGHJKLMNPQR"
    return json.dumps({
        "product": {"productFamily": "ML Instance", "sku": sku, "attributes": {
            "regionCode": "us-east-1", "instanceName": instance, "platoinstancetype": "Hosting",
            "usagetype": f"USE1-Host:{instance}", "location": "US East (N. Virginia)",
            "locationType": "AWS Region", "servicecode": "AmazonSageMaker", "vCpu": "48"}},
        "serviceCode": "AmazonSageMaker",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {
            "priceDimensions": {f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                "unit": "Hrs", "endRange": "Inf", "beginRange": "0", "appliesTo": [],
                "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7",
                "description": f"${usd} per Hosting {instance} hour",
                "pricePerUnit": {"USD": usd}}},
            "sku": sku, "effectiveDate": "2024-07-01T00:00:00Z", "offerTermCode": "JRTCKXETXF",
            "termAttributes": {}}}},
        "version": "20240701000000", "publicationDate": "2024-07-01T00:00:00Z",
    })


class _Session:
    """Stands in for a boto3 Session: hands out the client the test prepared, and keeps the
    botocore Config the code asked for."""

    def __init__(self, client):
        self._client = client
        self.config = None

    def client(self, name, region_name=None, config=None):
        assert (name, region_name) == ("pricing", "us-east-1")
        self.config = config
        return self._client


def _stubbed_client():
    client = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="y").client(
        "pricing", region_name="us-east-1")
    return client, Stubber(client)


def test_fetch_on_demand_rate_parses_price_list():
    client, stub = _stubbed_client()
    expected = {"ServiceCode": "AmazonSageMaker", "MaxResults": 100,
                "Filters": price_filters("ml.g5.12xlarge", "us-east-1")}
    stub.add_response("get_products", {"FormatVersion": "aws_v1",
                                       "PriceList": [_price_item("ml.g5.12xlarge", "7.0900000000")]}, expected)
    with stub:
        assert fetch_on_demand_rate("ml.g5.12xlarge", session=_Session(client)) == pytest.approx(7.09)
    stub.assert_no_pending_responses()
    fields = {f["Field"]: f["Value"] for f in expected["Filters"]}
    assert fields["platoinstancetype"] == "Hosting" and fields["instanceName"] == "ml.g5.12xlarge"


def test_fetch_on_demand_rate_access_denied_names_fallback():
    client, stub = _stubbed_client()
    stub.add_client_error("get_products", service_error_code="AccessDeniedException", http_status_code=403)
    with stub, pytest.raises(PricingError, match=r"AccessDeniedException.*falls back to the bundled snapshot of 2024-07"):
        fetch_on_demand_rate("ml.g5.12xlarge", session=_Session(client))


def test_fetch_on_demand_rate_empty_price_list():
    client, stub = _stubbed_client()
    stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": []})
    with stub, pytest.raises(PricingError, match="found none"):
        fetch_on_demand_rate("ml.g5.12xlarge", session=_Session(client))


def test_fetch_on_demand_rate_reads_every_page_with_the_shared_retries():
    """The Price List API pages its products: the paginator follows NextToken (a rate on the
    second page is still found, and two different rates are still refused), and the client
    is made with the retry budget every other AWS client of the toolkit has."""
    from jupyter_ext.base.aws_config import retry_config

    client, stub = _stubbed_client()
    base = {"ServiceCode": "AmazonSageMaker", "MaxResults": 100, "Filters": price_filters("ml.g5.12xlarge", "us-east-1")}
    stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [], "NextToken": "page2"}, base)
    stub.add_response("get_products", {"FormatVersion": "aws_v1",
                                       "PriceList": [_price_item("ml.g5.12xlarge", "7.09")]},
                      {**base, "NextToken": "page2"})
    session = _Session(client)
    with stub:
        assert fetch_on_demand_rate("ml.g5.12xlarge", session=session) == pytest.approx(7.09)
    stub.assert_no_pending_responses()
    assert session.config.retries == retry_config().retries == {"mode": "adaptive", "total_max_attempts": 8}

    client, stub = _stubbed_client()
    stub.add_response("get_products", {"FormatVersion": "aws_v1", "NextToken": "p2",
                                       "PriceList": [_price_item("ml.g5.12xlarge", "7.09")]}, base)
    stub.add_response("get_products", {"FormatVersion": "aws_v1",
                                       "PriceList": [_price_item("ml.g5.12xlarge", "8.00")]}, {**base, "NextToken": "p2"})
    with stub, pytest.raises(PricingError, match="found 7.09, 8"):
        fetch_on_demand_rate("ml.g5.12xlarge", session=_Session(client))


def test_fetch_on_demand_rate_without_credentials(monkeypatch, tmp_path):
    """A real client with no credentials anywhere: botocore raises NoCredentialsError when it
    signs the first page's request, before anything is sent."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(PricingError, match="no AWS credentials.*falls back"):
        fetch_on_demand_rate("ml.g5.12xlarge", session=boto3.session.Session())


def test_instance_rate_snapshot_and_api_fallback(monkeypatch):
    snap = instance_rate("ml.p4d.24xlarge")
    assert snap.usd_per_hour == 37.688 and "catalog" in snap.source and snap.date == "2024-07"

    def refuse(name, region="us-east-1", session=None):
        raise PricingError("no AWS credentials")

    monkeypatch.setattr(pricing, "fetch_on_demand_rate", refuse)
    fallback = instance_rate("ml.p4d.24xlarge", use_api=True)
    assert fallback.usd_per_hour == 37.688 and "Price List API failed" in fallback.source
    monkeypatch.setattr(pricing, "fetch_on_demand_rate", lambda name, region="us-east-1", session=None: 25.25)
    live = instance_rate("ml.p4d.24xlarge", use_api=True)
    assert live.usd_per_hour == 25.25 and "Price List API" in live.source
