"""Which instance each target reports as, as Prometheus names it."""

from __future__ import annotations

import pytest

from stethoscope.sources.scrape.config import ScrapeConfig, target_instance


@pytest.mark.parametrize(
    ("url", "instance"),
    [
        pytest.param("http://10.0.0.5:9100/metrics", "10.0.0.5:9100", id="host-and-port"),
        pytest.param("http://shop.internal/metrics", "shop.internal:80", id="http-default-port"),
        pytest.param("https://shop.internal/metrics", "shop.internal:443", id="https-default-port"),
        pytest.param("http://[::1]:8080/metrics", "[::1]:8080", id="ipv6-literal"),
    ],
)
def test_the_instance_defaults_to_host_and_port(url: str, instance: str) -> None:
    assert target_instance(url) == instance
    assert ScrapeConfig(targets=(url,), service="s").instances() == [instance]


def test_an_explicit_instance_wins() -> None:
    config = ScrapeConfig(targets=("http://h:1/m",), service="s", instance="shop-7")
    config.validate()
    assert config.instances() == ["shop-7"]
