"""SharePoint's Migration API in the sandbox: CreateMigrationJob(Encrypted), ProvisionMigrationContainers,
ProvisionMigrationQueue, GetMigrationJobStatus, plus the few web/list/folder reads a client needs to address a
package (ids). docs/sandbox.md "SharePoint Migration API" lists what is emulated and from which page.

Paths are the site's own: `/sites/{name}/_api/...` and `/personal/{name}/_api/...`. Tokens must be for the
SharePoint resource (`https://{tenant}.sharepoint.com`), not Graph. Jobs run on the server's event loop: the
package is read from Azurite with exactly the SAS the job was given (blob I/O in worker threads), validated
(sandbox.migration_package), decrypted and imported into the tenant's drives at `rate` files a second, with
the documented events posted (encrypted) to the report queue.

The parts: migration_service (state, configure, ids), migration_rest (the REST surface), migration_jobs
(job creation and the worker), migration_import (one file), migration_storage (SharePoint's storage side).
"""

from sandbox.migration_rest import migration_routes
from sandbox.migration_service import MigrationService, configure, item_guid, service

__all__ = ["MigrationService", "configure", "item_guid", "migration_routes", "service"]
