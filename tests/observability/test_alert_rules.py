"""The example alert rules (deploy/prometheus/alerts.yml) watch metrics that exist: every
asyncgate_ series their expressions name is exposed by the server or the bridge. (promtool
checks their syntax and behaviour in CI: .ci/run.)"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.conftest import StackFactory
from tests.observability.scrape import scrape
from tests.rest import edit_form, submit, wait_terminal

ALERTS = Path(__file__).parents[2] / "deploy" / "prometheus" / "alerts.yml"


def names_in_rules() -> set[str]:
    doc = yaml.safe_load(ALERTS.read_text())
    expressions = [rule["expr"] for group in doc["groups"] for rule in group["rules"]]
    return {name for expr in expressions for name in re.findall(r"\basyncgate_[a-z_]+", expr)}


async def test_every_metric_the_alerts_use_is_exposed(make_stack: StackFactory) -> None:
    stack = await make_stack(metrics_port=0)
    _, accepted = await submit(stack.http, edit_form())
    await wait_terminal(stack.http, accepted["id"])
    exposed = {name for name, _ in await scrape(f"http://127.0.0.1:{stack.server.metrics.port}/metrics")}
    exposed |= {name for name, _ in await scrape(f"{stack.base_url}/metrics")}
    used = names_in_rules()
    assert len(used) >= 8
    assert used - exposed == set()
