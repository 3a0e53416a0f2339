"""EntraStructure: delegated administration per academy and the trust's conditional access baseline."""

from __future__ import annotations

import pulumi
import pulumi_azuread as azuread

from infra import ids
from trust import Trust


class EntraStructure(pulumi.ComponentResource):
    """An administrative unit per academy with staff, pupils and IT admin groups; MFA and no legacy auth."""

    it_admin_group_ids: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, trust: Trust, opts: pulumi.ResourceOptions | None = None):
        super().__init__("trustfold:entra:EntraStructure", name, None, opts)
        names = trust.names
        child = pulumi.ResourceOptions(parent=self)
        s = trust.settings

        break_glass = azuread.Group(
            "entra-break-glass",
            display_name=s.entra.break_glass_group,
            security_enabled=True,
            mail_enabled=False,
            prevent_duplicate_names=True,
            description="Emergency access accounts, excluded from conditional access; monitor every sign-in",
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )

        roles = {
            key: azuread.DirectoryRole(f"entra-role-{key}", template_id=template, opts=child)
            for key, template in ids.ACADEMY_ADMIN_ROLES.items()
        }

        staff_groups: list[pulumi.Output[str]] = []
        admin_groups: list[pulumi.Output[str]] = []
        self.it_admin_group_ids = {}
        self.units: dict[str, azuread.AdministrativeUnit] = {}
        self.groups: dict[str, dict[str, azuread.Group]] = {}
        self.role_members: dict[str, list[azuread.AdministrativeUnitRoleMember]] = {}
        for academy in trust.academies:
            code = academy.code
            unit = azuread.AdministrativeUnit(
                f"{code}-au",
                display_name=names.administrative_unit(academy),
                description=f"{academy.name} (DfE URN {academy.urn}): delegated administration",
                hidden_membership_enabled=False,
                opts=child,
            )
            groups = {}
            for purpose in ("staff", "pupils", "it-admins"):
                display, nick = names.entra_group(academy, purpose)
                groups[purpose] = azuread.Group(
                    f"{code}-group-{purpose}",
                    display_name=display,
                    mail_nickname=nick,
                    security_enabled=True,
                    mail_enabled=False,
                    administrative_unit_ids=[unit.object_id],
                    assignable_to_role=purpose == "it-admins",
                    prevent_duplicate_names=True,
                    description=f"{academy.name} {purpose.replace('-', ' ')} (managed by trustfold)",
                    opts=child,
                )
            self.units[code], self.groups[code], self.role_members[code] = unit, groups, []
            for key, role in roles.items():
                member = azuread.AdministrativeUnitRoleMember(
                    f"{code}-au-{key}",
                    administrative_unit_object_id=unit.object_id,
                    member_object_id=groups["it-admins"].object_id,
                    role_object_id=role.object_id,
                    opts=child,
                )
                self.role_members[code].append(member)
            staff_groups.append(groups["staff"].object_id)
            admin_groups.append(groups["it-admins"].object_id)
            self.it_admin_group_ids[code] = groups["it-admins"].object_id

        self.break_glass = break_glass
        self.ca_mfa = azuread.ConditionalAccessPolicy(
            "entra-ca-mfa",
            display_name=names.conditional_access_policy("require MFA for staff and admins"),
            state="enabled",
            conditions=azuread.ConditionalAccessPolicyConditionsArgs(
                client_app_types=["all"],
                applications=azuread.ConditionalAccessPolicyConditionsApplicationsArgs(
                    included_applications=["All"]
                ),
                users=azuread.ConditionalAccessPolicyConditionsUsersArgs(
                    included_groups=[*staff_groups, *admin_groups],
                    included_roles=list(ids.ADMIN_ROLE_TEMPLATES),
                    excluded_groups=[break_glass.object_id],
                ),
            ),
            grant_controls=azuread.ConditionalAccessPolicyGrantControlsArgs(
                operator="OR", built_in_controls=["mfa"]
            ),
            opts=child,
        )
        self.ca_block_legacy = azuread.ConditionalAccessPolicy(
            "entra-ca-block-legacy",
            display_name=names.conditional_access_policy("block legacy authentication"),
            state="enabled",
            conditions=azuread.ConditionalAccessPolicyConditionsArgs(
                client_app_types=["exchangeActiveSync", "other"],
                applications=azuread.ConditionalAccessPolicyConditionsApplicationsArgs(
                    included_applications=["All"]
                ),
                users=azuread.ConditionalAccessPolicyConditionsUsersArgs(
                    included_users=["All"], excluded_groups=[break_glass.object_id]
                ),
            ),
            grant_controls=azuread.ConditionalAccessPolicyGrantControlsArgs(
                operator="OR", built_in_controls=["block"]
            ),
            opts=child,
        )
        self.register_outputs(
            {"break_glass_group_id": break_glass.object_id, "it_admin_group_ids": self.it_admin_group_ids}
        )
