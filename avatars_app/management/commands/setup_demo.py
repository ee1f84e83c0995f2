"""``manage.py setup_demo``: the demo tenant, an admin and a member, and a ready-to-talk role."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from avatars_app.demo_data import ensure_demo_data


class Command(BaseCommand):
    help = (
        "Create the demo tenant, the superuser 'admin' (its owner), the member 'demo', voices, prompts and the roles"
        " 'Demo' (English) and '演示助手' (Chinese). Safe to run again: existing rows and passwords are left unchanged."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        demo = ensure_demo_data()
        roles = f"{demo.role.name}, {demo.chinese_role.name}"
        self.stdout.write(f"Tenant: {demo.tenant.name} ({demo.tenant.slug}); roles: {roles}")
        for user, password in ((demo.admin, demo.admin_password), (demo.member, demo.member_password)):
            if password:
                self.stdout.write(
                    self.style.SUCCESS(f"User {user.username}, password: {password}  (shown only now; keep it)")
                )
            else:
                self.stdout.write(f"User {user.username} already exists; its password is unchanged.")
        summary = ", ".join(demo.created) if demo.created else "nothing (everything already existed)"
        self.stdout.write(f"Created: {summary}")
