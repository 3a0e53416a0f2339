"""Microsoft Graph access: connections, retries, write and resource-unit budgets, the sandbox credential."""
