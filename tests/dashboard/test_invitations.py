"""Invitations: an email to accept, the same words whether or not the address has an
account, and nobody joins a workspace until they accept."""

from __future__ import annotations

import re

from django.core import mail
from django.test import Client

from tenants.models import Invitation, Membership
from tests.dashboard.conftest import signed_in
from tests.plugins.actors import PASSWORD, Actor


def _invite(owner: Actor, email: str, role: str = "member") -> str:
    response = signed_in(owner).post("/members/", {"email": email, "role": role}, follow=True)
    assert response.redirect_chain[-1][0] == "/members/"
    return response.content.decode()


def _link(email: str) -> str:
    [message] = [m for m in mail.outbox if m.to == [email.lower()]]
    match = re.search(r"http://testserver(/invitations/\S+/)", message.body)
    assert match, message.body
    return match.group(1)


def test_inviting_a_user_of_another_workspace_sends_an_invitation_and_adds_nobody(
    owner: Actor, outsider: Actor
) -> None:
    page = _invite(owner, outsider.user.email, "admin")

    assert not Membership.objects.filter(tenant=owner.tenant, user=outsider.user).exists()
    assert f"Invitation sent to {outsider.user.email}. They join when they accept it." in page
    assert 'data-testid="invitation-row"' in page
    [message] = mail.outbox
    assert message.to == [outsider.user.email] and "Acme" in message.subject


def test_the_message_and_email_are_the_same_with_or_without_an_account(
    owner: Actor, outsider: Actor
) -> None:
    with_account = _invite(owner, outsider.user.email)
    without = _invite(owner, "nobody.yet@else.test")

    def said(page: str, email: str) -> str:
        return page.split(email, 1)[1].split("<", 1)[0].replace(email, "")

    assert said(with_account, outsider.user.email) == said(without, "nobody.yet@else.test")
    bodies = [m.body.replace(m.to[0], "<email>") for m in mail.outbox]
    links = [re.sub(r"/invitations/\S+/", "<link>", b) for b in bodies]
    assert links[0] == links[1]


def test_an_existing_user_accepts_after_signing_in_and_then_works_there(
    owner: Actor, outsider: Actor
) -> None:
    _invite(owner, outsider.user.email, "admin")
    link = _link(outsider.user.email)

    anonymous = Client().get(link).content.decode()
    client = signed_in(outsider)
    offer = client.get(link).content.decode()
    accepted = client.post(link)

    assert 'data-testid="invitation-sign-in"' in anonymous and "/login/?next=" in anonymous
    assert 'data-testid="invitation-accept"' in offer
    assert accepted["Location"] == "/"
    membership = Membership.objects.get(tenant=owner.tenant, user=outsider.user)
    assert membership.role == "admin"
    assert client.get("/members/").status_code == 200  # working in Acme now
    assert Client().get(link).status_code == 404  # a link works once


def test_a_new_address_chooses_a_password_and_joins(owner: Actor) -> None:
    _invite(owner, "New.Person@acme.test")
    link = _link("new.person@acme.test")
    invited = Client()

    form = invited.get(link).content.decode()
    joined = invited.post(
        link, {"password1": "pick-a-good-one-42", "password2": "pick-a-good-one-42"}
    )

    assert 'data-testid="invitation-new"' in form
    assert joined["Location"] == "/"
    assert Membership.objects.get(tenant=owner.tenant, user__email="new.person@acme.test")
    assert invited.get("/gallery/").status_code == 200
    assert Client().login(username="new.person@acme.test", password="pick-a-good-one-42")


def test_someone_else_signed_in_cannot_accept_anothers_invitation(
    owner: Actor, outsider: Actor, member: Actor
) -> None:
    _invite(owner, outsider.user.email)
    link = _link(outsider.user.email)
    intruder = Client()
    assert intruder.login(username=member.user.username, password=PASSWORD)

    page = intruder.get(link).content.decode()
    intruder.post(link)

    assert "This invitation is for" in page
    assert not Membership.objects.filter(tenant=owner.tenant, user=outsider.user).exists()
    assert Invitation.objects.get(email=outsider.user.email).accepted_at is None


def test_an_expired_or_unknown_invitation_is_a_designed_404(owner: Actor) -> None:
    response = Client().get("/invitations/not-a-real-token/")

    assert response.status_code == 404
    assert b"This invitation has expired" in response.content
