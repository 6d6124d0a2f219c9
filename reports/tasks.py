"""Background work for reports and alerts. Thin: each task loads its org by id and calls a
service; the exactly-once logic lives in `reports.services`."""

from __future__ import annotations

from procrastinate import RetryStrategy
from procrastinate.contrib.django import app

from reports import services
from tenants.context import acting_for_org

# Waits 5 s, 25 s, 2 min, 10 min between attempts: a receiver that is deploying recovers,
# one that is down for an hour ends FAILED after WEBHOOK_MAX_ATTEMPTS (the log shows why).
WEBHOOK_RETRY = RetryStrategy(max_attempts=services.WEBHOOK_MAX_ATTEMPTS - 1, exponential_wait=5)


class DeliveryPending(Exception):
    """The endpoint did not accept the delivery yet; procrastinate retries the job."""


@app.periodic(cron="* * * * *", periodic_id="reports.dispatch")
@app.task(queue="reports", name="reports.dispatch", queueing_lock="reports.dispatch")
def dispatch(timestamp: int) -> None:
    """Every minute: claim due report periods (catching up after downtime) and queue them;
    emit `feedback.flagged` webhooks."""
    services.reports_dispatch()
    services.webhooks_flagged_scan()


@app.periodic(cron="*/5 * * * *", periodic_id="reports.detect_alerts")
@app.task(queue="reports", name="reports.detect_alerts", queueing_lock="reports.detect_alerts")
def detect_alerts(timestamp: int) -> None:
    services.alerts_detect_all()


@app.task(queue="reports", name="reports.process_report")
def process_report(*, report_id: int, org_id: int) -> None:
    with acting_for_org(org_id) as org:
        services.report_process(org=org, report_id=report_id)


@app.task(
    queue="reports",
    name="reports.notify_alert",
    retry=RetryStrategy(max_attempts=3, exponential_wait=10),
)
def notify_alert(*, event_id: int, org_id: int) -> None:
    with acting_for_org(org_id) as org:
        services.alert_notify(org=org, event_id=event_id)


@app.task(queue="webhooks", name="reports.deliver_webhook", retry=WEBHOOK_RETRY)
def deliver_webhook(*, delivery_id: int, org_id: int) -> None:
    with acting_for_org(org_id) as org:
        status = services.webhook_attempt(org=org, delivery_id=delivery_id)
    if status == "pending":
        raise DeliveryPending(f"delivery {delivery_id} not accepted yet")
