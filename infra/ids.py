"""Well-known Azure and Entra identifiers the baseline refers to (built-in definitions, roles, templates)."""

from __future__ import annotations

POLICY = "/providers/Microsoft.Authorization/policyDefinitions/"
POLICY_SET = "/providers/Microsoft.Authorization/policySetDefinitions/"

ALLOWED_LOCATIONS = POLICY + "e56962a6-4747-49cd-b67b-bf8b01975c4c"
STORAGE_SECURE_TRANSFER = POLICY + "404c3081-a854-4457-ae30-26a93ef643f9"
SUBNETS_NEED_NSG = POLICY + "e71308d3-144b-4262-b144-efdc3cc90517"
MANAGEMENT_PORTS_CLOSED = POLICY + "22730e10-96f6-4aac-ad84-9383d35b5917"
ACTIVITY_LOG_TO_WORKSPACE = POLICY + "2465583e-4e78-4c15-b6be-a36cbc7c8b0f"
UK_OFFICIAL_INITIATIVE = POLICY_SET + "3937f550-eedd-4639-9c5e-294358be442e"

ROLE_CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
ROLE_OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
ROLE_USER_ACCESS_ADMIN = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
# Bulk file engine staging (issue 16): user delegation keys, and data access limited by a condition.
ROLE_STORAGE_BLOB_DELEGATOR = "db58b8e5-c6ad-4a2a-8342-4190687cbf4a"
ROLE_STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
ROLE_STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"

ENTRA_USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
ENTRA_GROUPS_ADMIN = "fdd7a751-b60b-444a-984c-02652fe8fa1c"
ENTRA_HELPDESK_ADMIN = "729827e3-9c14-49f7-bb1b-9608f156bbb8"
ENTRA_GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
ENTRA_SECURITY_ADMIN = "194ae4cb-b126-40b2-bd5b-6091b380977d"
ENTRA_PRIVILEGED_ROLE_ADMIN = "e8611ab8-c189-46e8-94e1-60213ab1f814"

# Admin roles conditional access must always cover with MFA.
ADMIN_ROLE_TEMPLATES = (
    ENTRA_GLOBAL_ADMIN,
    ENTRA_PRIVILEGED_ROLE_ADMIN,
    ENTRA_SECURITY_ADMIN,
    ENTRA_USER_ADMIN,
    ENTRA_GROUPS_ADMIN,
    ENTRA_HELPDESK_ADMIN,
)
# Roles an academy's IT admins hold, scoped to their administrative unit only.
ACADEMY_ADMIN_ROLES = {
    "user-admin": ENTRA_USER_ADMIN,
    "groups-admin": ENTRA_GROUPS_ADMIN,
    "helpdesk-admin": ENTRA_HELPDESK_ADMIN,
}

MANAGEMENT_PORTS = (22, 3389, 5985, 5986)
