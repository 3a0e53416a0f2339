"""Which properties Graph v1.0 knows, returns by default and lets clients write, for users and groups.

Property names follow msgraph-sdk 1.65.0's models (structural properties only, no navigation properties).
"""

from __future__ import annotations

import re

# Directory extension properties (extension_<app id without hyphens>_<name>), used for provenance.
EXTENSION_RE = re.compile(r"^extension_[0-9a-f]{32}_[A-Za-z0-9_]+$")

USER_PROPERTIES = frozenset(
    [
        "id",
        "deletedDateTime",
        "aboutMe",
        "accountEnabled",
        "ageGroup",
        "assignedLicenses",
        "assignedPlans",
        "authorizationInfo",
        "birthday",
        "businessPhones",
        "city",
        "companyName",
        "consentProvidedForMinor",
        "country",
        "createdDateTime",
        "creationType",
        "customSecurityAttributes",
        "department",
        "deviceEnrollmentLimit",
        "displayName",
        "employeeHireDate",
        "employeeId",
        "employeeLeaveDateTime",
        "employeeOrgData",
        "employeeType",
        "externalUserState",
        "externalUserStateChangeDateTime",
        "faxNumber",
        "givenName",
        "hireDate",
        "identities",
        "imAddresses",
        "interests",
        "isManagementRestricted",
        "isResourceAccount",
        "jobTitle",
        "lastPasswordChangeDateTime",
        "legalAgeGroupClassification",
        "licenseAssignmentStates",
        "mail",
        "mailNickname",
        "mailboxSettings",
        "mobilePhone",
        "mySite",
        "officeLocation",
        "onPremisesDistinguishedName",
        "onPremisesDomainName",
        "onPremisesExtensionAttributes",
        "onPremisesImmutableId",
        "onPremisesLastSyncDateTime",
        "onPremisesProvisioningErrors",
        "onPremisesSamAccountName",
        "onPremisesSecurityIdentifier",
        "onPremisesSyncEnabled",
        "onPremisesUserPrincipalName",
        "otherMails",
        "passwordPolicies",
        "passwordProfile",
        "pastProjects",
        "postalCode",
        "preferredDataLocation",
        "preferredLanguage",
        "preferredName",
        "provisionedPlans",
        "proxyAddresses",
        "responsibilities",
        "schools",
        "securityIdentifier",
        "serviceProvisioningErrors",
        "showInAddressList",
        "signInActivity",
        "signInSessionsValidFromDateTime",
        "skills",
        "state",
        "streetAddress",
        "surname",
        "usageLocation",
        "userPrincipalName",
        "userType",
    ]
)

# What GET /users returns without $select (learn.microsoft.com/graph/api/user-list, "default properties").
USER_DEFAULT = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)

USER_COLLECTIONS = frozenset(
    [
        "businessPhones",
        "otherMails",
        "proxyAddresses",
        "assignedLicenses",
        "assignedPlans",
        "imAddresses",
        "identities",
        "interests",
        "pastProjects",
        "responsibilities",
        "schools",
        "skills",
        "provisionedPlans",
        "licenseAssignmentStates",
        "onPremisesProvisioningErrors",
        "serviceProvisioningErrors",
    ]
)

USER_WRITABLE = frozenset(
    [
        "accountEnabled",
        "ageGroup",
        "businessPhones",
        "city",
        "companyName",
        "consentProvidedForMinor",
        "country",
        "department",
        "displayName",
        "employeeHireDate",
        "employeeId",
        "employeeLeaveDateTime",
        "employeeType",
        "faxNumber",
        "givenName",
        "jobTitle",
        "mail",
        "mailNickname",
        "mobilePhone",
        "officeLocation",
        "onPremisesImmutableId",
        "otherMails",
        "passwordPolicies",
        "passwordProfile",
        "postalCode",
        "preferredDataLocation",
        "preferredLanguage",
        "preferredName",
        "showInAddressList",
        "state",
        "streetAddress",
        "surname",
        "usageLocation",
        "userPrincipalName",
        "userType",
    ]
)

USER_REQUIRED = ("accountEnabled", "displayName", "mailNickname", "userPrincipalName", "passwordProfile")

# $filter support on users (learn.microsoft.com/graph/api/resources/user, "Supports $filter").
USER_FILTERABLE = frozenset(
    [
        "id",
        "userPrincipalName",
        "mail",
        "mailNickname",
        "displayName",
        "givenName",
        "surname",
        "employeeId",
        "employeeType",
        "jobTitle",
        "department",
        "companyName",
        "accountEnabled",
        "userType",
        "usageLocation",
    ]
)

GROUP_PROPERTIES = frozenset(
    [
        "id",
        "deletedDateTime",
        "assignedLabels",
        "assignedLicenses",
        "classification",
        "createdDateTime",
        "description",
        "displayName",
        "expirationDateTime",
        "groupTypes",
        "hasMembersWithLicenseErrors",
        "isAssignableToRole",
        "licenseProcessingState",
        "mail",
        "mailEnabled",
        "mailNickname",
        "membershipRule",
        "membershipRuleProcessingState",
        "onPremisesDomainName",
        "onPremisesLastSyncDateTime",
        "onPremisesNetBiosName",
        "onPremisesProvisioningErrors",
        "onPremisesSamAccountName",
        "onPremisesSecurityIdentifier",
        "onPremisesSyncEnabled",
        "preferredDataLocation",
        "preferredLanguage",
        "proxyAddresses",
        "renewedDateTime",
        "securityEnabled",
        "securityIdentifier",
        "serviceProvisioningErrors",
        "theme",
        "visibility",
        "allowExternalSenders",
        "autoSubscribeNewMembers",
        "hideFromAddressLists",
        "hideFromOutlookClients",
        "isSubscribedByMail",
        "unseenCount",
        "resourceBehaviorOptions",
        "resourceProvisioningOptions",
        "uniqueName",
    ]
)

# Graph returns this set without $select (learn.microsoft.com/graph/api/group-list).
GROUP_DEFAULT = (
    "id",
    "deletedDateTime",
    "classification",
    "createdDateTime",
    "description",
    "displayName",
    "expirationDateTime",
    "groupTypes",
    "isAssignableToRole",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesDomainName",
    "onPremisesLastSyncDateTime",
    "onPremisesNetBiosName",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "preferredDataLocation",
    "preferredLanguage",
    "proxyAddresses",
    "renewedDateTime",
    "resourceBehaviorOptions",
    "resourceProvisioningOptions",
    "securityEnabled",
    "securityIdentifier",
    "theme",
    "visibility",
    "onPremisesProvisioningErrors",
    "serviceProvisioningErrors",
)

GROUP_COLLECTIONS = frozenset(
    [
        "groupTypes",
        "proxyAddresses",
        "resourceBehaviorOptions",
        "resourceProvisioningOptions",
        "assignedLabels",
        "assignedLicenses",
        "onPremisesProvisioningErrors",
        "serviceProvisioningErrors",
    ]
)

GROUP_WRITABLE = frozenset(
    [
        "classification",
        "description",
        "displayName",
        "groupTypes",
        "isAssignableToRole",
        "mailEnabled",
        "mailNickname",
        "membershipRule",
        "membershipRuleProcessingState",
        "preferredDataLocation",
        "preferredLanguage",
        "securityEnabled",
        "theme",
        "visibility",
        "resourceBehaviorOptions",
        "resourceProvisioningOptions",
        "uniqueName",
    ]
)

GROUP_REQUIRED = ("displayName", "mailEnabled", "mailNickname", "securityEnabled")

GROUP_FILTERABLE = frozenset(
    [
        "id",
        "displayName",
        "mail",
        "mailNickname",
        "mailEnabled",
        "securityEnabled",
        "groupTypes",
        "description",
        "isAssignableToRole",
        "visibility",
    ]
)

# Allowed characters in the local part of a UPN
# (learn.microsoft.com/entra/identity/hybrid/connect/plan-connect-userprincipalname).
UPN_LOCAL_RE = re.compile(r"^[A-Za-z0-9'.\-_!#^~]+$")
# mailNickname: ASCII 0-127 except these (learn.microsoft.com/graph/api/group-post-groups).
NICKNAME_FORBIDDEN = set(' @()\\[]";:.<>,')
USAGE_LOCATION_RE = re.compile(r"^[A-Z]{2}$")
