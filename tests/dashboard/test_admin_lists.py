"""Admin changelists at scale: the tenant filter is a box (not a link per tenant), and
each row's action checkbox is Django's HTML without rendering its widget templates."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.sites import site
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from generation.models import Image, Job
from tenants.models import Plan
from tenants.services import tenant_create
from tests.dashboard import test_admin
from tests.dashboard.test_admin import ROWS, _jobs
from tests.plugins.actors import Actor

pytestmark = pytest.mark.django_db
operator = test_admin.operator  # the fixture: a signed-in superuser
JOBS = "/admin/generation/job/"


def _rows(response: Any) -> int:
    assert response.status_code == 200, response.status_code
    return int(response.content.decode().count('class="field-status"'))


def test_the_tenant_filter_narrows_by_id_or_slug_without_listing_every_tenant(
    operator: Client, owner: Actor, outsider: Actor, plan: Plan
) -> None:
    others = [tenant_create(name=f"Other {i}", slug=f"other-{i}", plan=plan) for i in range(30)]
    _jobs(owner)
    _jobs(outsider)

    everything = operator.get(JOBS)
    by_id = operator.get(f"{JOBS}?tenant__id__exact={outsider.tenant.pk}&status__exact=queued")
    by_slug = operator.get(f"{JOBS}?tenant__id__exact={outsider.tenant.slug}")
    unknown = operator.get(f"{JOBS}?tenant__id__exact=no-such-tenant")
    empty_one = operator.get(f"{JOBS}?tenant__id__exact={others[0].pk}")

    assert _rows(everything) == ROWS  # a page of 100 of the 200
    body = everything.content.decode()
    assert 'name="tenant__id__exact"' in body  # the box
    assert not [t for t in others if t.name in body]  # no link per tenant
    assert _rows(by_id) == _rows(by_slug) == ROWS
    chosen = by_id.content.decode()
    assert f'<a href="?status__exact=queued&amp;tenant__id__exact={outsider.tenant.pk}"' in chosen
    assert '<input type="hidden" name="status__exact" value="queued">' in chosen  # kept
    assert str(outsider.tenant) in chosen
    assert Job.objects.filter(tenant=outsider.tenant).count() == ROWS
    assert _rows(unknown) == 0 and "No tenant “no-such-tenant”" in unknown.content.decode()
    assert _rows(empty_one) == 0


def test_the_changelists_queries_do_not_grow_with_the_number_of_tenants(
    operator: Client, owner: Actor, plan: Plan
) -> None:
    _jobs(owner)
    operator.get(JOBS)

    def queries() -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            assert operator.get(JOBS).status_code == 200
        return [q["sql"] for q in captured]

    few = queries()
    for i in range(40):
        tenant_create(name=f"More {i}", slug=f"more-{i}", plan=plan)
    many = queries()

    assert len(many) == len(few)
    assert not [sql for sql in many if 'FROM "tenants_tenant"' in sql.split(" WHERE ")[0]]


@pytest.mark.parametrize("model", [Job, Image])
def test_the_action_checkbox_is_djangos_html(owner: Actor, model: type) -> None:
    _jobs(owner)
    job = Job.objects.first()
    assert job is not None
    obj = job if model is Job else Image(tenant=owner.tenant, job=job, index=0, width=1, height=1)
    model_admin = site._registry[model]

    mine = model_admin.action_checkbox(obj)
    djangos = admin.ModelAdmin.action_checkbox(model_admin, obj)

    assert str(mine) == str(djangos)
    assert 'class="action-select"' in mine


def test_a_tenant_with_a_name_to_escape_is_escaped_in_the_checkbox_and_filter(
    operator: Client, plan: Plan
) -> None:
    tenant = tenant_create(name='<b>"Acme" & co</b>', slug="acme-co", plan=plan)
    Job.objects.create(tenant=tenant, prompt="p", model_prompt="p", aspect_ratio="1:1")

    body = operator.get(f"{JOBS}?tenant__id__exact=acme-co").content.decode()

    assert "<b>" not in body and "&lt;b&gt;&quot;Acme&quot; &amp; co&lt;/b&gt;" in body
