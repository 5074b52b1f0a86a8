"""Job lifecycle events sent to the tenant's webhook endpoints."""

from __future__ import annotations

from generation.models import Job

EVENT_FOR_STATUS = {
    Job.Status.SUCCEEDED: "job.succeeded",
    Job.Status.FAILED: "job.failed",
    Job.Status.CANCELED: "job.canceled",
}


def job_event_emit(*, job: Job) -> None:
    """Call inside the transaction that finishes the job."""
    from generation.selectors import job_get_for_tenant
    from generation.serializers import JobOut
    from webhooks.services import event_emit

    event_type = EVENT_FOR_STATUS.get(job.status)  # type: ignore[call-overload]
    if event_type is None:
        return
    data = dict(JobOut(job_get_for_tenant(job.tenant, job.pk)).data)
    event_emit(tenant=job.tenant, event_type=event_type, data={"job": data})
